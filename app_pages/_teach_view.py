"""The Teach page's parts: one class's pictures and how to add them, the lesson's live curves, its report and
the answer for one new picture. The picture set lives in the visitor's session (st.session_state) only."""

import io
import threading

import numpy as np
import pandas as pd
import streamlit as st
from PIL import Image

from app_pages._canvas import digit_canvas
from app_pages._common import upscale
from cnn_core.base.errors import ImageError
from cnn_core.data.preprocess import MAX_UPLOAD_BYTES, load_image, preview
from cnn_core.predict.inference import top_k
from cnn_core.teach.pictures import MIN_PICTURES, PictureSet

THUMB = 64


@st.cache_resource(show_spinner=False)
def warming(backbone_name: str) -> threading.Thread:
    """Loads the network and the warning's photos in the background once per server, from the first picture a
    visitor adds (a visit that adds none costs nothing); Train waits for it (`.join()`)."""
    from cnn_core.teach.learner import warm_up

    thread = threading.Thread(target=warm_up, args=(backbone_name,), name=f"warm {backbone_name}", daemon=True)
    thread.start()
    return thread


def _add_new(pictures: PictureSet, class_name: str, files, seen: set) -> None:
    """Add each file not added before (a widget returns its files on every rerun); a bad one gets its message."""
    for file in files:
        if file is None or file.file_id in seen:
            continue
        seen.add(file.file_id)
        try:
            pictures.add(class_name, file.name, file.getvalue())
        except ImageError as err:
            st.error(str(err))


def class_editor(pictures: PictureSet, class_name: str, index: int, drawings: bool) -> None:
    """One class: its name, its pictures, and uploads, a webcam shot or (for drawings) the canvas to add more."""
    seen = st.session_state.setdefault("teach_seen", set())
    with st.container(border=True):
        left, right = st.columns([4, 1])
        new_name = left.text_input("Class name", class_name, key=f"teach_name_{index}_{class_name}")
        if right.button("🗑️ Remove", key=f"teach_remove_{index}", help="Remove this class and its pictures"):
            pictures.remove_class(class_name)
            st.rerun()
        if new_name != class_name:
            try:
                pictures.rename_class(class_name, new_name)
                st.rerun()
            except ImageError as err:
                st.error(str(err))
        sources = ["⬆️ Upload", "📸 Webcam"] + (["✏️ Draw"] if drawings else [])
        default = sources[-1] if drawings else sources[0]  # doodles are drawn; photos come as files
        kind = "drawings" if drawings else "photos"  # a switch of kind opens every class on its default again
        source = st.segmented_control("Add pictures", sources, default=default, key=f"teach_source_{index}_{kind}")
        if source == "⬆️ Upload":
            files = st.file_uploader(
                f"Pictures of '{class_name}' (many at once; up to {MAX_UPLOAD_BYTES // 2**20} MB each)",
                accept_multiple_files=True,
                key=f"teach_upload_{index}",
            )
            _add_new(pictures, class_name, files or [], seen)
        elif source == "📸 Webcam":
            _add_new(pictures, class_name, [st.camera_input("Take a picture", key=f"teach_camera_{index}")], seen)
        elif source == "✏️ Draw":
            _canvas_adder(pictures, class_name, index)
        _thumbnails(pictures, class_name, index)


def _png(drawing: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(drawing).save(buffer, "PNG")
    return buffer.getvalue()


def _canvas(key: str):
    """The Draw page's canvas; a new round (after a drawing is taken) is a fresh, blank one."""
    rounds = st.session_state.setdefault("teach_canvas_rounds", {})
    return digit_canvas(18, key=f"{key}_{rounds.get(key, 0)}"), rounds


def _canvas_adder(pictures: PictureSet, class_name: str, index: int) -> None:
    key = f"teach_canvas_{index}"
    drawing, rounds = _canvas(key)
    if st.button("➕ Add this drawing", key=f"teach_add_drawing_{index}", disabled=drawing is None):
        pictures.add(class_name, "drawing.png", _png(drawing))
        rounds[key] = rounds.get(key, 0) + 1
        st.rerun()


def pictures_to_try(drawings: bool) -> list[tuple[str, bytes]]:
    """(name, file bytes) of what the visitor gives to classify: uploads, a webcam shot, a drawing."""
    new = st.file_uploader("Pictures to classify", accept_multiple_files=True, key="teach_try_upload")
    items = [(f.name, f.getvalue()) for f in new or []]
    if st.toggle("📸 Webcam", key="teach_try_cam"):
        shot = st.camera_input("A webcam shot to classify", key="teach_try_camera")
        items += [("webcam shot.jpg", shot.getvalue())] if shot is not None else []
    if drawings:
        drawing, rounds = _canvas("teach_try_canvas")
        if st.button("🧹 Clear the drawing", key="teach_try_clear"):
            rounds["teach_try_canvas"] = rounds.get("teach_try_canvas", 0) + 1
            st.rerun(scope="fragment")
        items += [("your drawing", _png(drawing))] if drawing is not None else []
    return items


def _thumbnails(pictures: PictureSet, class_name: str, index: int) -> None:
    items = pictures.classes.get(class_name, [])
    need = f" (at least {MIN_PICTURES} to train)" if len(items) < MIN_PICTURES else ""
    count, undo, clear = st.columns([3, 1, 1])
    count.caption(f"**{len(items)}** picture{'s' if len(items) != 1 else ''}{need}")
    if undo.button("↩️ Remove the last", key=f"teach_undo_{index}", disabled=not items):
        pictures.remove(class_name, len(items) - 1)
        st.rerun()
    if clear.button("🧹 Remove all", key=f"teach_clear_{index}", disabled=not items):
        pictures.classes[class_name] = []
        st.rerun()
    if items:
        thumbs = [preview(load_image(p.data, filename=p.name), THUMB) for p in items[-24:]]
        st.image(thumbs, width=THUMB, caption=[p.name[:12] for p in items[-24:]])


def curves_chart(events: list[dict]):
    """The lesson's curves so far: each phase's accuracy on the training views and on its held-out pictures."""
    rows = [
        {"pass": e["epoch"], "curve": f"{e['phase']}: {kind.replace('_', ' ')}", "value": e[kind]}
        for e in events
        if e["type"] == "epoch"
        for kind in ("accuracy", "held_out_accuracy")
        if kind in e
    ]
    if rows:
        frame = pd.DataFrame(rows).pivot_table(index="pass", columns="curve", values="value")
        st.line_chart(frame, x_label="pass over the pictures and their copies", y_label="accuracy", height=260)


def lesson_report(card: dict) -> None:
    estimate, warning = card["estimate"], card["none_of_these"]
    c1, c2, c3 = st.columns(3)
    c1.metric("Accuracy on held-out pictures", f"{estimate['accuracy']:.1%}", help=estimate["method"])
    c2.metric("Taught in", f"{card['seconds']:.1f} s")
    if warning.get("auroc") is not None:
        c3.metric("'None of these' AUROC", f"{warning['auroc']:.3f}", help="against CIFAR-10 test photos")
    st.caption(
        f"Estimated by {estimate['method']} over {estimate['pictures']} pictures: each was classified by a network "
        f"that never saw it (nor its augmented copies). Per class: "
        + ", ".join(f"{name} {acc:.0%}" for name, acc in card["per_class_accuracy"].items())
        + "."
        + (
            f" The 'none of these classes' warning lets {warning['pass_rate']:.0%} of the held-out pictures pass and "
            f"flagged {warning['foreign_flagged']:.0%} of {warning['foreign_photos']} CIFAR-10 test photos."
            if warning.get("auroc") is not None
            else " (CIFAR-10 is not in this server's data folder, so the warning's AUROC is not measured.)"
        )
        + (" Training stopped early at the time limit." if card.get("deadline_hit") else "")
    )


def classified(taught, model, label: str, data: bytes) -> None:
    """One new picture: what the network sees, its top classes, Grad-CAM for the top one, and the warning."""
    from cnn_core.analysis.explain import grad_cam_picture

    try:
        img = load_image(data, filename=label)
    except ImageError as err:
        st.error(f"**{label}**: {err}")
        return
    sample = taught.sample(data, label)
    probs, foreign = taught.classify(sample[None])
    top = int(np.argmax(probs[0]))
    with st.container(border=True):
        c1, c2, c3 = st.columns([2, 1, 3])
        c1.image(preview(img), caption=label, width="stretch")
        c2.image(upscale(grad_cam_picture(model, sample, taught.info, top), 128), caption="Grad-CAM: where it looked")
        with c3:
            for rank, (cls, p) in enumerate(top_k(probs[0], taught.class_names, 3), 1):
                st.progress(float(p), text=f"{rank}. **{cls}** — {p:.1%}")
            if foreign[0]:
                st.warning("This looks like none of your classes: it is unlike every picture the lesson held out.")
