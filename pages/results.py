"""Results: test accuracy, per-class report, confusion matrix, mistakes by cell, sample predictions,
training curves and augmentation examples for any saved model.

Shipped models (and finished runs) carry a saved evaluation artefact, so nothing here needs the
dataset; interrupted runs are evaluated on demand when it is there."""

import pandas as pd
import streamlit as st

from cnn_core import figures
from cnn_core.augment import augmented_views
from cnn_core.datasets import dataset_available, load_dataset
from cnn_core.errors import CnnError
from cnn_core.evaluation import decode_png, per_class_rows
from cnn_core.inference import tta_label
from cnn_core.store import find_model
from pages._common import URL, download_buttons, get_predictor, model_picker, show_figure
from pages._confusion_view import confusion_explorer
from pages._export_view import export_buttons
from pages._history_view import epoch_replay

st.title("📊 Results")


@st.cache_data(show_spinner="Evaluating on the test set…", max_entries=8)
def evaluate_on_demand(name: str, version: float) -> dict:
    from cnn_core.evaluation import evaluate

    predictor = get_predictor(name)
    return evaluate(predictor.model, load_dataset(predictor.info.name), tta=predictor.tta, model_name=name)


name = model_picker("Model", None, key="results_model")
if name is None:
    st.stop()
store = find_model(name)
card = store.load_card(name)
classes = card["class_names"]
try:
    evaluation = store.load_eval(name)
except CnnError as err:
    st.error(str(err))
    evaluation = None
if evaluation is None and dataset_available(card["dataset"]):
    evaluation = evaluate_on_demand(name, store.model_path(name).stat().st_mtime)
elif evaluation is None:
    st.info(f"`{name}` has no saved evaluation and the {card['dataset']} test set is not on this server, so only "
            "its card is shown. Set `CNN_DATA_DIR` to a folder with the `.npz` files to evaluate it.")

c1, c2, c3, c4, c5 = st.columns(5)
if evaluation:
    c1.metric("Test accuracy" + (f" ({tta_label(evaluation['tta'])} TTA)" if evaluation["tta"] else ""),
              f"{evaluation['accuracy']:.2%}")
    c2.metric("Test loss", f"{evaluation['loss']:.4f}")
c3.metric("Parameters", f"{card['params']:,}")
c4.metric("Training time", f"{card['train_seconds'] / 60:.1f} min")
c5.metric("Epochs", f"{card['epochs_run']} (best {card['best_epoch']})")
st.caption(f"{card['dataset_title']} · {card['architecture']} recipe · status: {card['status']} · "
           f"trained on {card['train_size']:,} images ({card['trained_on']}) · {card['machine']['cpu']}")
tabs = st.tabs(["Confusion matrix & mistakes", "Per-class report", "Sample predictions", "Training curves",
                "Epoch by epoch", "Augmentation", "Model card"])

with tabs[0]:
    confusion_explorer(evaluation, classes, name) if evaluation else st.info("No evaluation available.")
if evaluation:
    with tabs[1]:
        st.dataframe(pd.DataFrame(per_class_rows(evaluation)).set_index("class").style.format(
            {"precision": "{:.3f}", "recall": "{:.3f}", "F1": "{:.3f}"}), width="stretch")
        st.caption(f"Macro F1 {evaluation['report']['macro avg']['f1-score']:.4f} · accuracy "
                   f"{evaluation['report']['accuracy']:.4f} on {evaluation['test_size']:,} test images")
    with tabs[2]:
        show_figure(figures.sample_predictions([{**s, "image": decode_png(s["image"])} for s in evaluation["samples"]],
                                               classes))
        st.caption("Random test images: ✓ correct (blue), ✗ wrong (vermillion), with the model's confidence.")
with tabs[3]:
    history = card.get("history") or []
    if history:
        show_figure(figures.training_curves(history))
        if all(h.get("val_accuracy") is None for h in history):
            st.caption("This run trained on the full training set with a fixed schedule, so there is no "
                       "validation curve.")
    else:
        st.info("No training history recorded.")
with tabs[4]:
    epoch_replay(store, name, classes, key=f"results_{name}")
with tabs[5]:
    aug = card.get("augmentation") or {}
    if evaluation and evaluation.get("augment_sources"):
        st.markdown("Augmentation used in training: " + ", ".join(f"{k} {v}" for k, v in aug.items() if v)
                    if any(aug.values()) else "No augmentation was used.")
    if evaluation and evaluation.get("augment_sources") and any(aug.values()):
        originals = [decode_png(s) for s in evaluation["augment_sources"]]
        seed = st.number_input("Random seed", 0, 10_000, 0, key="aug_seed", bind=URL)
        show_figure(figures.augmentation_examples(originals, [augmented_views(o, card["dataset"], aug, n=6, seed=int(
            seed) + i) for i, o in enumerate(originals)]))
with tabs[6]:
    st.code(card.get("command") or "(no command recorded)", language="bash")
    st.json({k: v for k, v in card.items() if k != "history"}, expanded=False)
    download_buttons(store, name)
    export_buttons(store, name)
