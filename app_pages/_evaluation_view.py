"""A model's test-set evaluation for the Results page: the saved one, else one computed on demand when the
dataset is on this server; and its per-class report."""

import pandas as pd
import streamlit as st

from app_pages._common import get_predictor
from cnn_core.analysis.evaluation import per_class_rows
from cnn_core.base.errors import CnnError
from cnn_core.data.datasets import dataset_available, load_dataset
from cnn_core.train.cards import deferred_end_note


@st.cache_data(show_spinner="Evaluating on the test set…", max_entries=8)
def _evaluate_on_demand(name: str, version: float) -> dict:
    from cnn_core.analysis.evaluation import evaluate

    predictor = get_predictor(name)
    return evaluate(predictor.model, load_dataset(predictor.info.name), tta=predictor.tta, model_name=name)


def model_evaluation(store, name: str, card: dict) -> dict | None:
    """The saved evaluation (shipped models and finished runs), else a fresh one (interrupted runs) when the
    test set is here; None, with a message saying why, when neither is possible."""
    if note := deferred_end_note(card):
        st.info(note)
    try:
        evaluation = store.load_eval(name)
    except CnnError as err:
        st.error(str(err))
        evaluation = None
    if evaluation is None and dataset_available(card["dataset"]):
        evaluation = _evaluate_on_demand(name, store.model_path(name).stat().st_mtime)
    elif evaluation is None:
        st.info(
            f"`{name}` has no saved evaluation and the {card['dataset']} test set is not on this server, so "
            "only its card is shown. Set `CNN_DATA_DIR` to a folder with the `.npz` files to evaluate it."
        )
    return evaluation


def per_class_report(evaluation: dict) -> None:
    st.dataframe(
        pd.DataFrame(per_class_rows(evaluation))
        .set_index("class")
        .style.format({"precision": "{:.3f}", "recall": "{:.3f}", "F1": "{:.3f}"}),
        width="stretch",
    )
    st.caption(
        f"Macro F1 {evaluation['report']['macro avg']['f1-score']:.4f} · accuracy "
        f"{evaluation['report']['accuracy']:.4f} on {evaluation['test_size']:,} test images"
    )
