"""The epoch slider that replays how a run learned, on the Results and Train pages: the validation
confusion matrix and per-class accuracy as they were at that epoch, the first trainable
convolution's filters and its feature maps of the probe image. The records are cnn_core.train.snapshots'.
Drawn without matplotlib (a Vega heatmap and plain pictures), so that a page that shows it stays fast."""

from pathlib import Path

import streamlit as st

from app_pages._common import URL
from app_pages._confusion_view import confusion_spec
from cnn_core.analysis.explain import montage
from cnn_core.base.store import ModelStore
from cnn_core.data.preprocess import preprocessor
from cnn_core.train.snapshots import SUFFIX, confusion_at, filter_tiles, load_snapshots, map_tiles


@st.cache_resource(max_entries=16, show_spinner=False)
def _snapshots(root: str, kind: str, name: str, version: float):
    """A run's snapshots, read once per version of the file (it grows by one epoch at a time)."""
    return load_snapshots(ModelStore(Path(root), kind, writable=False), name)


def epoch_replay(store, name: str, classes: list[str], key: str) -> None:
    path = store.path(name, SUFFIX)
    if not path.is_file():
        st.info(
            f"`{name}` was trained before runs recorded a snapshot per epoch, so there is nothing to replay. "
            "Runs trained now record them."
        )
        return
    snaps = _snapshots(str(store.root), store.kind, name, path.stat().st_mtime)
    epochs = snaps.epochs.tolist()
    epoch = st.select_slider(
        "Epoch",
        epochs,
        value=epochs[-1],
        key=f"{key}_epoch",
        bind=URL,
        format_func=lambda e: "before training" if e == 0 else f"after epoch {e}",
    )
    if len(snaps.val_labels):
        cm, per_class = confusion_at(snaps, epoch, len(classes))
        left, right = st.columns([3, 2])
        left.vega_lite_chart(confusion_spec(cm, classes), width="stretch")
        left.caption(
            f"Validation confusion matrix (rows: true class, row-normalised) on {cm.sum():,} images: "
            f"{cm.trace() / cm.sum():.1%} correct"
        )
        right.vega_lite_chart(
            {
                "data": {
                    "values": [{"class": c, "accuracy": float(a)} for c, a in zip(classes, per_class, strict=False)]
                },
                "mark": "bar",
                "encoding": {
                    "y": {"field": "class", "type": "nominal", "sort": list(classes), "title": None},
                    "x": {
                        "field": "accuracy",
                        "type": "quantitative",
                        "title": "Validation accuracy",
                        "scale": {"domain": [0, 1]},
                    },
                },
            },
            width="stretch",
        )
    else:
        st.caption("This run had no validation split, so its confusion matrix cannot be replayed.")
    left, right = st.columns([3, 1])
    ins = snaps.filters.shape[3]
    averaged = "" if ins in (1, 3) else f", averaged over its {ins} input channels"
    left.image(
        montage(filter_tiles(snaps, epoch), ncols=16, scale=12),
        caption=f"Filters of `{snaps.layer}`, each scaled to its own range{averaged}",
    )
    left.image(
        montage(map_tiles(snaps, epoch), ncols=8, scale=3),
        caption=f"`{snaps.layer}`'s feature maps of the probe ({snaps.probe_source})",
    )
    right.image(montage([snaps.probe], ncols=1, scale=4), caption=f"Probe: {snaps.probe_source}")


def probe_choice(dataset: str):
    """The visitor's own drawing or photo (carried from the Draw or Photo page) as the run's probe image,
    if they have one for this dataset and keep the box ticked; else None (the first validation image)."""
    carried = st.session_state.get("explain_input")
    if not carried or carried["dataset"] != dataset:
        return None
    if st.checkbox(
        f"Show how the first filters see your {carried['source']}, epoch by epoch",
        True,
        key="probe_own",
        help="Its feature maps are recorded after every epoch (otherwise a validation image's are).",
    ):
        return preprocessor(dataset).from_image(carried["image"])
    return None
