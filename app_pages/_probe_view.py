"""The Probe page's three views: what-if edits with the occlusion map, adversarial examples, and the
nearest training images. Each lays out controls and pictures; the work is cnn_core's."""

import numpy as np
import streamlit as st

from app_pages._common import upscale
from cnn_core.analysis import explain
from cnn_core.analysis.adversarial import MAX_EPSILON, attack, smallest_flip
from cnn_core.analysis.neighbours import NeighbourIndex, cached_index, index_path
from cnn_core.analysis.whatif import Edit, apply_edit, occlusion_map
from cnn_core.base.store import find_model, runs_store
from cnn_core.data.datasets import dataset_available, load_dataset

NEIGHBOURS = 8


def _answer(predictor, probs) -> str:
    best = int(np.argmax(probs))
    return f"{predictor.info.class_names[best]} ({probs[best]:.0%})"


def probability_shift(predictor, before: np.ndarray, after: np.ndarray, what: str) -> None:
    """Every class's probability before and after a change, as paired bars."""
    rows = [
        {"class": c, "input": label, "probability": float(p)}
        for label, probs in (("original", before), (what, after))
        for c, p in zip(predictor.info.class_names, probs, strict=False)
    ]
    st.vega_lite_chart(
        {
            "data": {"values": rows},
            "mark": "bar",
            "height": 22 * len(before) * 2,
            "encoding": {
                "y": {"field": "class", "type": "nominal", "sort": list(predictor.info.class_names), "title": None},
                "yOffset": {"field": "input", "sort": ["original", what]},
                "x": {"field": "probability", "type": "quantitative", "scale": {"domain": [0, 1]}},
                "color": {
                    "field": "input",
                    "type": "nominal",
                    "sort": ["original", what],
                    "title": None,
                    "scale": {"range": ["#9ecae1", "#d62728"]},
                    "legend": {"orient": "bottom"},
                },
            },
        },
        width="stretch",
    )


def whatif_view(predictor, sample: np.ndarray) -> None:
    h = sample.shape[0]
    cols = st.columns(5)
    edit = Edit(
        rotate=cols[0].slider("Rotate (°)", -90, 90, 0, 5, key="wi_rotate", help="Counter-clockwise"),
        shift_x=cols[1].slider("Shift right (px)", -8, 8, 0, key="wi_dx", help="Negative: left"),
        shift_y=cols[2].slider("Shift down (px)", -8, 8, 0, key="wi_dy", help="Negative: up"),
        scale=cols[3].slider("Scale", 0.5, 2.0, 1.0, 0.05, key="wi_scale", help="Enlarge about the centre"),
        blur=cols[4].slider("Blur (px)", 0.0, 3.0, 0.0, 0.25, key="wi_blur", help="Gaussian blur, sigma"),
        occlude=_occluder(h),
    )
    edited = apply_edit(sample, edit)
    before, after = predictor.predict_samples(np.stack([sample, edited]))
    left, right = st.columns([1, 2])
    left.image(upscale(edited, 196), caption=f"Edited: {_answer(predictor, after)} (was {_answer(predictor, before)})")
    with right:
        probability_shift(predictor, before, after, "edited")
    st.markdown("**Occlusion sensitivity** beside Grad-CAM: which parts of the (edited) picture the answer depends on.")
    if st.toggle(
        "Slide a grey patch over the picture",
        key="wi_occlusion",
        help="Covers every place in turn and records how much the predicted class's probability drops",
    ):
        shown = int(np.argmax(after))
        with st.spinner("Covering every place in turn…"):
            drop = occlusion_map(predictor.predict_samples, edited, shown)
        c1, c2 = st.columns(2)
        heat = np.clip(drop / max(drop.max(), 1e-6), 0, 1)
        c1.image(
            upscale(explain.heat_picture(edited, heat), 196),
            caption="Occlusion: bright where covering it lowers the answer most",
        )
        c2.image(
            upscale(explain.grad_cam_picture(predictor.model, edited, predictor.info, shown), 196),
            caption="Grad-CAM: bright where the last convolution's evidence is",
        )


def _occluder(h: int):
    with st.expander("Cover a square of the picture"):
        size = st.slider("Square size (px, 0: off)", 0, h // 2, 0, key="wi_occ_size", help="A grey square, value 128")
        row = st.slider("Square top (px)", 0, h - 1, h // 3, key="wi_occ_row", help="Distance from the top edge")
        col = st.slider("Square left (px)", 0, h - 1, h // 3, key="wi_occ_col", help="Distance from the left edge")
    return (row, col, size) if size else None


def adversarial_view(predictor, sample: np.ndarray) -> None:
    method = st.radio(
        "Attack",
        ["fgsm", "pgd"],
        horizontal=True,
        key="adv_method",
        format_func={"fgsm": "FGSM (one step)", "pgd": "PGD (10 smaller steps)"}.get,
        help="FGSM moves every pixel once, against the current answer; PGD repeats smaller moves",
    )
    epsilon = st.slider(
        "ε: how far each pixel may move (share of its 0–255 range)",
        0.0,
        0.25,
        0.02,
        0.005,
        key="adv_eps",
        format="%.3f",
        help="0.02 is about 5 grey levels: invisible to a person",
    )
    result = attack(predictor, sample, epsilon, method)
    _attack_pictures(predictor, sample, result)
    if st.button(
        "🔎 Find the smallest ε that changes the answer",
        key="adv_find",
        help=f"Bisection on ε between 0 and {MAX_EPSILON}",
    ):
        with st.spinner("Searching…"):
            found = smallest_flip(predictor, sample, method)
        if found is None:
            st.info(f"Even ε = {MAX_EPSILON} does not change the answer with this attack.")
        else:
            st.success(
                f"ε = **{found.epsilon:.3f}** (≈ {found.epsilon * 255:.1f} grey levels per pixel) turns the "
                f"answer into **{_answer(predictor, found.probs)}**."
            )
            _attack_pictures(predictor, sample, found)


def _attack_pictures(predictor, sample, result) -> None:
    before = predictor.predict_samples(np.asarray(sample)[None])[0]
    delta = result.picture - np.asarray(sample, np.float32)
    magnified = np.clip(128 + delta * (127 / max(np.abs(delta).max(), 1e-6)), 0, 255).astype(np.uint8)
    c1, c2, c3 = st.columns(3)
    c1.image(upscale(np.asarray(sample, np.uint8), 168), caption=f"Original: {_answer(predictor, before)}", width=168)
    c2.image(
        upscale(np.rint(result.picture).astype(np.uint8), 168),
        width=168,
        caption=f"Perturbed (ε = {result.epsilon:.3f}): {_answer(predictor, result.probs)}",
    )
    c3.image(
        upscale(magnified, 168), caption="The perturbation, magnified to full contrast (grey = unchanged)", width=168
    )


@st.cache_resource(max_entries=4, show_spinner=False)
def _index(path: str, version: float) -> NeighbourIndex:
    from pathlib import Path

    return NeighbourIndex.from_bytes(Path(path).read_bytes())


def neighbours_view(predictor, sample: np.ndarray) -> None:
    info, name = predictor.info, predictor.name
    if not dataset_available(info.name):
        st.info(
            f"This needs the {info.title} training set on the server: `python -m cnn_core download --dataset "
            f"{info.name}`, or set `CNN_DATA_DIR` to a folder with `{info.name}.npz`."
        )
        return
    cache, version = runs_store(), find_model(name).model_path(name).stat().st_mtime_ns
    path = index_path(cache, name)
    if not path.is_file() or NeighbourIndex.from_bytes(path.read_bytes()).model_version != version:
        if not st.button(
            f"Build the index of the {info.title} training images",
            key="nn_build",
            help="Runs every training image through the network once (a minute or two); kept after",
        ):
            st.caption("The index is built once per model and kept on the server.")
            return
        bar = st.progress(0.0, text="Running the training images through the network…")
        cached_index(
            cache,
            name,
            predictor.model,
            load_dataset(info.name),
            version,
            progress=lambda f: bar.progress(f, text=f"Running the training images through the network… {f:.0%}"),
        )
        bar.empty()
    index = _index(str(path), version)
    found = index.nearest(predictor.model, sample, info, NEIGHBOURS)
    x_train = load_dataset(info.name).x_train
    cols = st.columns(NEIGHBOURS)
    for col, item in zip(cols, found, strict=False):
        col.image(
            upscale(x_train[item["index"]], 112),
            caption=f"{info.class_names[item['label']]} · d {item['distance']:.1f} · #{item['index']}",
        )
    labels = [info.class_names[item["label"]] for item in found]
    st.caption(
        f"The {NEIGHBOURS} training images nearest to the input in the network's last hidden layer (PCA "
        f"to {index.points.shape[1]} numbers): label · distance · training-set index. Their labels: "
        + ", ".join(f"{labels.count(c)}× {c}" for c in dict.fromkeys(labels))
        + "."
    )
