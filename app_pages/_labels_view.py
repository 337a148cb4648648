"""The Suspicious labels page's views: an audit's figures, the gallery of disputed images with a verdict for
each (pre-set where the project's own audit judged the image), the tally and a CSV of the verdicts."""

from __future__ import annotations

import csv
import io

import streamlit as st

from app_pages._common import get_predictor, upscale
from cnn_core.analysis.evaluation import decode_png
from cnn_core.base.store import find_model, runs_store
from cnn_core.data.datasets import dataset_available, dataset_info, load_dataset
from cnn_core.studio.label_issues import VERDICTS, audit_name, test_audit

COLUMNS = 5
SHORT = {"label": "Label wrong", "model": "Model wrong", "unsure": "Unsure"}  # fits a fifth of the page


def test_audit_for(name: str) -> dict | None:
    """Audit the model's test set on a click (it predicts every test image once), saved to the runs folder;
    None until then."""
    info = dataset_info(find_model(name).load_card(name)["dataset"])
    if not dataset_available(info.name):
        st.info(
            f"Auditing needs the {info.title} test set on the server: `python -m cnn_core download --dataset "
            f"{info.name}`, or set `CNN_DATA_DIR` to a folder with `{info.name}.npz`."
        )
        return None
    if not st.button(
        f"Find the suspicious labels of the {info.title} test set",
        key="labels_run",
        help="Runs every test image through the model once (seconds to a minute); kept after",
    ):
        st.caption(f"No audit of `{name}` yet. The shipped judges have theirs; this model's is made once and kept.")
        return None
    with st.spinner(f"Running the {info.title} test images through `{name}`…"):
        audit = test_audit(get_predictor(name), load_dataset(info.name))
        runs_store().save_json(*audit_name("test", name), audit)
    return audit


def audit_summary(audit: dict) -> None:
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Held-out accuracy", f"{audit['heldout_accuracy']:.2%}", help="On images the judge never trained on")
    c2.metric("Labels the model disputes", f"{audit['disputed']:,}", help="Its top answer is another class")
    c3.metric(
        "Flagged by confident learning",
        f"{audit['flagged']:,}",
        help="Another class clears that class's own confidence threshold (⚑ below)",
    )
    c4.metric(
        "Estimated wrong labels",
        f"{audit['estimated_label_errors']:,}",
        help="Confident learning's estimate for the whole set, from the flagged counts per pair of classes",
    )
    st.caption(
        f"{audit['images']:,} {audit['split']} images judged by {audit['judged_by']}. Ranked by the "
        "probability the model gives the given label, lowest first."
    )


def gallery(audit: dict, verdicts: dict[int, str], top: int) -> None:
    names = dataset_info(audit["dataset"]).class_names
    rows = audit["suspects"][:top]
    chosen = {}
    for start in range(0, len(rows), COLUMNS):
        for col, row in zip(st.columns(COLUMNS), rows[start : start + COLUMNS], strict=False):
            index = row["index"]
            col.image(
                upscale(decode_png(row["image"]), 112),
                width=112,
                caption=f"{'⚑ ' if row['flagged'] else ''}#{index} · labelled {names[row['given']]} · model: "
                f"{names[row['suggested']]} {row['suggested_probability']:.1%}",
            )
            preset = verdicts.get(index)
            chosen[index] = col.selectbox(
                f"Verdict on #{index}",
                list(VERDICTS),
                index=None if preset is None else list(VERDICTS).index(preset),
                format_func=SHORT.get,
                placeholder="Who is wrong?",
                label_visibility="collapsed",
                key=f"verdict_{audit['dataset']}_{audit['split']}_{index}",
                help=("Pre-set from the project's own audit. " if preset else "") + "The label is wrong: the image "
                "is another class. The model is wrong: the label is right. Unsure: both fit, or neither.",
            )
    _tally(audit, rows, chosen, names)


def _tally(audit: dict, rows: list[dict], chosen: dict, names) -> None:
    counts = {kind: sum(v == kind for v in chosen.values()) for kind in VERDICTS}
    st.markdown(
        f"**Of these {len(rows)}:** "
        + " · ".join(f"{SHORT[k].lower()} {n}" for k, n in counts.items())
        + f" · not judged {len(rows) - sum(counts.values())}"
    )
    table = io.StringIO()
    writer = csv.writer(table)
    writer.writerow(["rank", "index", "given_label", "model_answer", "p_given", "flagged", "verdict"])
    for rank, row in enumerate(rows, 1):
        writer.writerow(
            [
                rank,
                row["index"],
                names[row["given"]],
                names[row["suggested"]],
                row["given_probability"],
                row["flagged"],
                chosen.get(row["index"]) or "",
            ]
        )
    st.download_button(
        "Download the verdicts (CSV)",
        table.getvalue(),
        key="labels_csv",
        file_name=f"{audit['dataset']}_{audit['split']}_label_verdicts.csv",
        mime="text/csv",
    )
