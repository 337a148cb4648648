"""The Compare page's measured figures: what test-time augmentation and ensembles buy, and what each of
the original's improvements buys, as the benchmarks wrote them beside the shipped models
(cnn_core.studio.benchmark_figures); nothing is drawn for a dataset they have not measured."""

import pandas as pd
import streamlit as st

from cnn_core.predict.inference import tta_label
from cnn_core.studio.benchmark_figures import ensemble_figures, switch_figures, switch_table


def tta_and_ensembles(dataset: str) -> None:
    """The test accuracy and loss of each measured model, TTA level and ensemble."""
    measured = ensemble_figures(dataset)  # written beside the shipped models by benchmarks.tta_ensembles
    if measured and measured["rows"]:
        st.subheader("What test-time augmentation and ensembles buy")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "models": " + ".join(r["models"]),
                        "TTA": tta_label(r["tta"], dataset),
                        "test accuracy": r["accuracy"],
                        "test loss": r["loss"],
                    }
                    for r in measured["rows"]
                ]
            ).style.format({"test accuracy": "{:.2%}", "test loss": "{:.4f}"}),
            hide_index=True,
            width="stretch",
        )
        st.caption(
            f"Measured on the full test set by `{measured['command']}` (commit {measured['git_commit']}). "
            "Use these options on the Classify a photo page."
        )


def recipe_switches(dataset: str) -> None:
    """The seed recipe's test accuracy with each improvement switched on alone, over several seeds."""
    switches = switch_figures(dataset)  # written beside the shipped models by benchmarks.recipe_switches
    if switches:
        plan = switches["schedule"]
        st.subheader("What the original's improvements buy, one switch at a time")
        st.dataframe(
            pd.DataFrame(switch_table(switches)).style.format(
                {
                    "test accuracy (mean)": "{:.2%}",
                    "± sd": "{:.2%}",
                    "lowest": "{:.2%}",
                    "highest": "{:.2%}",
                    "change (points)": "{:+.2f}",
                    "training s": "{:.0f}",
                    "parameters": "{:,}",
                }
            ),
            hide_index=True,
            width="stretch",
        )
        st.caption(
            f"The seed recipe, {plan['epochs']} epochs on {plan['subset']:,} training images, with each switch on "
            f"alone; test accuracy on the whole test set over {len(switches['rows'][0]['seeds'])} seeds. Measured by "
            f"`{switches['command']}` (commit {switches['git_commit']}) on {switches['machine']}; "
            '"beyond seed noise" means its range and the base\'s do not overlap. Try them on the Train page.'
        )
