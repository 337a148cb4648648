"""Results: test accuracy, per-class report, confusion matrix, mistakes by cell,
sample predictions, training curves and augmentation examples for any saved model.

Shipped models (and finished runs) carry a saved evaluation artefact, so nothing
here needs the dataset; interrupted runs are evaluated on demand when it is there.
"""

import numpy as np
import pandas as pd
import streamlit as st

from cnn_core import figures
from cnn_core.augment import augmented_views
from cnn_core.datasets import dataset_available, load_dataset
from cnn_core.errors import CnnError
from cnn_core.evaluation import decode_png, mistakes_for_cell
from cnn_core.store import find_model
from pages._common import get_predictor, model_picker, show_figure

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
class_names = card["class_names"]
try:
    evaluation = store.load_eval(name)
except CnnError as err:
    st.error(str(err))
    evaluation = None
if evaluation is None:
    if dataset_available(card["dataset"]):
        evaluation = evaluate_on_demand(name, store.model_path(name).stat().st_mtime)
    else:
        st.info(f"`{name}` has no saved evaluation and the {card['dataset']} test set is not on this server, so only "
                "its card is shown. Set `CNN_DATA_DIR` to a folder with the `.npz` files to evaluate it.")

c1, c2, c3, c4, c5 = st.columns(5)
if evaluation:
    c1.metric("Test accuracy" + (" (TTA)" if evaluation["tta"] else ""), f"{evaluation['accuracy']:.2%}")
    c2.metric("Test loss", f"{evaluation['loss']:.4f}")
c3.metric("Parameters", f"{card['params']:,}")
c4.metric("Training time", f"{card['train_seconds'] / 60:.1f} min")
c5.metric("Epochs", f"{card['epochs_run']} (best {card['best_epoch']})")
st.caption(f"{card['dataset_title']} · {card['architecture']} recipe · status: {card['status']} · "
           f"trained on {card['train_size']:,} images ({card['trained_on']}) · {card['machine']['cpu']}")

tabs = st.tabs(["Confusion matrix & mistakes", "Per-class report", "Sample predictions", "Training curves",
                "Augmentation", "Model card"])

with tabs[0]:
    if not evaluation:
        st.info("No evaluation available.")
    else:
        cm = np.asarray(evaluation["confusion_matrix"])
        off = cm.copy()
        np.fill_diagonal(off, 0)
        worst_true, worst_pred = np.unravel_index(off.argmax(), off.shape)
        left, right = st.columns([3, 2])
        with right:
            normalize = st.toggle("Row-normalised", value=False, key="cm_norm",
                                  help="Each row as a fraction of its true class")
            st.markdown("**Pick a cell** (true → predicted) to see exactly those mistakes:")
            true_idx = st.selectbox("True class", range(len(class_names)), index=int(worst_true),
                                    format_func=lambda i: class_names[i], key=f"cm_true_{name}")
            pred_idx = st.selectbox("Predicted class", range(len(class_names)), index=int(worst_pred),
                                    format_func=lambda i: class_names[i], key=f"cm_pred_{name}")
        with left:
            show_figure(figures.confusion_heatmap(cm, class_names, normalize, highlight=(true_idx, pred_idx)))
        if true_idx == pred_idx:
            st.info(f"{int(cm[true_idx, true_idx]):,} test images of **{class_names[true_idx]}** were classified "
                    "correctly. Pick two different classes to see mistakes.")
        else:
            items = mistakes_for_cell(evaluation, true_idx, pred_idx)
            st.markdown(f"**{len(items)}** test image(s) of **{class_names[true_idx]}** predicted as "
                        f"**{class_names[pred_idx]}** (most confident first)")
            shown = [it for it in items if it["image"] is not None]
            if shown:
                show_figure(figures.image_grid([it["image"] for it in shown],
                                             [f"#{it['index']} · {it['confidence']:.0%}" for it in shown],
                                             ncols=min(8, max(4, len(shown)))))
                if len(shown) < len(items):
                    st.caption(f"The saved evaluation keeps images for the {len(shown)} most confident of these.")

with tabs[1]:
    if evaluation:
        report = evaluation["report"]
        rows = [{"class": c, "precision": report[c]["precision"], "recall": report[c]["recall"],
                 "F1": report[c]["f1-score"], "support": int(report[c]["support"])} for c in class_names]
        st.dataframe(pd.DataFrame(rows).set_index("class").style.format(
            {"precision": "{:.3f}", "recall": "{:.3f}", "F1": "{:.3f}"}), width="stretch")
        st.caption(f"Macro F1 {report['macro avg']['f1-score']:.4f} · accuracy {report['accuracy']:.4f} on "
                   f"{evaluation['test_size']:,} test images")

with tabs[2]:
    if evaluation:
        samples = [{**s, "image": decode_png(s["image"])} for s in evaluation["samples"]]
        show_figure(figures.sample_predictions(samples, class_names))
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
    if evaluation and evaluation.get("augment_sources"):
        aug = card["augmentation"]
        st.markdown("Augmentation used in training: " + ", ".join(
            f"{k} {v}" for k, v in aug.items() if v) if any(aug.values()) else "No augmentation was used.")
        if any(aug.values()):
            originals = [decode_png(s) for s in evaluation["augment_sources"]]
            seed = st.number_input("Random seed", 0, 10_000, 0, key="aug_seed")
            views = [augmented_views(o, card["dataset"], aug, n=6, seed=int(seed) + i) for i, o in enumerate(originals)]
            show_figure(figures.augmentation_examples(originals, views))

with tabs[5]:
    st.code(card.get("command") or "(no command recorded)", language="bash")
    st.json({k: v for k, v in card.items() if k != "history"}, expanded=False)
    for label, path in (("model (.keras)", store.model_path(name)), ("card (.json)", store.card_path(name)),
                        ("evaluation (.json)", store.eval_path(name))):
        if path.is_file():
            st.download_button(f"Download {label}", path.read_bytes(), file_name=path.name, key=f"dl_{path.name}")
