"""Suspicious labels: images whose given label the model confidently disputes, found by confident learning on
held-out predictions (the test set judged by a saved model; the training set by networks trained on the other
folds). Each one is a question for a person: is the label wrong, or the model?"""

import streamlit as st

from app_pages._common import URL, model_picker
from app_pages._labels_view import audit_summary, gallery, test_audit_for
from cnn_core.data.datasets import DATASETS
from cnn_core.studio.label_issues import PICTURED, load_audit, load_verdicts

SPLITS = {"test": "Test images, judged by a model", "train": "Training images, judged out-of-fold"}

st.title("🏷️ Suspicious labels")
st.caption(
    "Famous datasets have wrong labels. These are the images whose label the model disputes most: decide "
    "for each whether the label is wrong or the model is."
)
split = (
    st.segmented_control(
        "Images",
        list(SPLITS),
        format_func=SPLITS.get,
        default="test",
        key="labels_split",
        bind=URL,
        help="A model judges only images it never trained on: the test set, or "
        "training images predicted by networks trained without them",
    )
    or "test"
)
if split == "train":
    dataset = st.selectbox(
        "Dataset", list(DATASETS), format_func=lambda d: DATASETS[d].title, key="labels_dataset", bind=URL
    )
    audit = load_audit("train", dataset=dataset)
    if audit is None:
        st.info(
            f"No audit of the {DATASETS[dataset].title} training set yet. It needs networks trained on the "
            f"other folds (each a training run): `python -m cnn_core labels --dataset {dataset} --split train`."
        )
        st.stop()
else:
    # It opens on a model with an audit at hand (a shipped judge, with a person's verdicts), not one to compute.
    name = model_picker(
        "Model (the judge)", None, key="labels_model", prefer=lambda model: load_audit("test", model=model) is not None
    )
    if name is None:
        st.stop()
    audit = load_audit("test", model=name) or test_audit_for(name)
    if audit is None:
        st.stop()

audit_summary(audit)
top = st.slider("How many of the most disputed", 10, PICTURED, 20, step=10, key="labels_top", bind=URL)
gallery(audit, load_verdicts(audit["dataset"], audit["split"]), top)
