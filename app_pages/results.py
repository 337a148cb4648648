"""Results: test accuracy, per-class report, confusion matrix, mistakes by cell, sample predictions,
training curves and augmentation examples for any saved model.

Shipped models (and finished runs) carry a saved evaluation artefact, so nothing here needs the
dataset; interrupted runs are evaluated on demand when it is there."""

import streamlit as st

from app_pages._common import URL, download_buttons, model_picker, model_version
from app_pages._confusion_view import confusion_explorer
from app_pages._evaluation_view import model_evaluation, per_class_report
from app_pages._export_view import export_buttons
from app_pages._history_view import epoch_replay
from app_pages._results_view import augmentation_examples, sample_predictions, training_curves
from cnn_core.base.store import find_model
from cnn_core.predict.inference import tta_label

st.title("📊 Results")

name = model_picker("Model", None, key="results_model")
if name is None:
    st.stop()
store = find_model(name)
card = store.load_card(name)
classes = card["class_names"]
evaluation = model_evaluation(store, name, card)

c1, c2, c3, c4, c5 = st.columns(5)
if evaluation:
    c1.metric(
        "Test accuracy" + (f" ({tta_label(evaluation['tta'], card['dataset'])} TTA)" if evaluation["tta"] else ""),
        f"{evaluation['accuracy']:.2%}",
    )
    c2.metric("Test loss", f"{evaluation['loss']:.4f}")
c3.metric("Parameters", f"{card['params']:,}")
c4.metric("Training time", f"{card['train_seconds'] / 60:.1f} min")
c5.metric("Epochs", f"{card['epochs_run']} (best {card['best_epoch']})")
st.caption(
    f"{card['dataset_title']} · {card['architecture']} recipe · status: {card['status']} · "
    f"trained on {card['train_size']:,} images ({card['trained_on']}) · {card['machine']['cpu']}"
)
# Only the open tab runs (Streamlit's lazy tabs, `.open`): a visit draws one section, not seven, and the
# address names the tab, so a shared link opens on it.
confusion, report, samples, curves, replay, augment, model_card = st.tabs(
    [
        "Confusion matrix & mistakes",
        "Per-class report",
        "Sample predictions",
        "Training curves",
        "Epoch by epoch",
        "Augmentation",
        "Model card",
    ],
    key="results_tab",
    bind=URL,
)
version = model_version(store, name)
if not evaluation and (confusion.open or report.open or samples.open):
    st.info("No evaluation available.")
elif confusion.open:
    with confusion:
        confusion_explorer(evaluation, classes, name, version)
elif report.open:
    with report:
        per_class_report(evaluation)
elif samples.open:
    with samples:
        sample_predictions(evaluation, classes, name, version)
elif curves.open:
    with curves:
        training_curves(card, name, version)
elif replay.open:
    with replay:
        epoch_replay(store, name, classes, key=f"results_{name}")
elif augment.open:
    with augment:
        augmentation_examples(card, evaluation, name, version)
else:
    with model_card:
        st.code(card.get("command") or "(no command recorded)", language="bash")
        st.json({k: v for k, v in card.items() if k != "history"}, expanded=False)
        download_buttons(store, name)
        export_buttons(store, name)
