"""Teach your own classes: make 2–10 classes, give each a few pictures (uploads, a zip, the webcam, the canvas),
train in seconds on a shipped network's features, see the accuracy on held-out pictures, classify new ones."""

import streamlit as st

from app_pages._teach_view import class_editor, classified, curves_chart, lesson_report, pictures_to_try, warming
from cnn_core.base.errors import CnnError
from cnn_core.export.lesson import lesson_zip
from cnn_core.teach.learner import default_backbone, teach
from cnn_core.teach.pictures import MAX_CLASSES, MIN_CLASSES, PictureSet, read_zip

KINDS = {"cifar10": "📷 Photos (the Photo page's network)", "mnist": "✏️ Drawings (the Draw page's network)"}

st.title("🎓 Teach your own classes")
st.caption(
    "Make classes of your own and give each a few pictures. The studio keeps a shipped network as it is and "
    "trains a new last layer on what its layers see in your pictures (transfer learning), in seconds. Your "
    "pictures stay in this browser tab; download them as a zip to keep them."
)
kind = st.segmented_control("Learn from", list(KINDS), format_func=KINDS.get, default="cifar10", key="teach_kind")
backbone_name = default_backbone(kind or "cifar10")
pictures = st.session_state.setdefault("teach_pictures", PictureSet({"Class 1": [], "Class 2": []}))

archive = st.file_uploader("Import a picture set (.zip with one folder per class)", type=["zip"], key="teach_zip")
if archive is not None and st.session_state.get("teach_zip_id") != archive.file_id:
    st.session_state["teach_zip_id"] = archive.file_id
    try:
        st.session_state["teach_pictures"] = pictures = read_zip(archive.getvalue())
        st.rerun()
    except CnnError as err:
        st.error(f"{archive.name}: {err}")

if any(pictures.counts().values()):  # a visitor who starts adding pictures will train: load the network now
    warming(backbone_name)
for index, class_name in enumerate(list(pictures.classes)):
    class_editor(pictures, class_name, index, drawings=kind == "mnist")
left, right = st.columns(2)
if left.button("➕ Add a class", disabled=len(pictures.classes) >= MAX_CLASSES, key="teach_add_class"):
    pictures.add_class(next(f"Class {n}" for n in range(1, 99) if f"Class {n}" not in pictures.classes))
    st.rerun()
if any(pictures.counts().values()):
    right.download_button(
        "⬇️ Download the pictures (.zip)", pictures.to_zip(), "my_classes.zip", "application/zip", key="teach_save_set"
    )

st.subheader("Train")
total = sum(pictures.counts().values())
if st.button(f"🎓 Train on {total} picture{'s' if total != 1 else ''}", type="primary", key="teach_train"):
    events, chart, status = [], st.empty(), st.status("Teaching…", expanded=True)

    def listen(event):
        events.append(event)
        if event["type"] == "phase":
            status.write(event["phase"])
        elif event["epoch"] % 5 == 0:
            with chart.container():
                curves_chart(events)

    try:
        pictures.check_trainable()  # before waiting for the network: a set that cannot train says so at once
        warming(backbone_name).join()
        taught = teach(pictures, backbone_name, listener=listen)
        st.session_state["teach_taught"] = (
            taught,
            taught.keras_model(),
            events,
            lesson_zip(taught, "my_classes_model"),
        )
        status.update(label=f"Taught in {taught.card['seconds']:.1f} s", state="complete", expanded=False)
    except CnnError as err:
        status.update(label="Not taught", state="error")
        st.error(str(err))
    chart.empty()
lesson = st.session_state.get("teach_taught")
if lesson is None:
    st.info(f"Give {MIN_CLASSES} or more classes a few pictures each, then train.")
    st.stop()
taught, model, events, model_zip = lesson
curves_chart(events)
lesson_report(taught.card)
st.download_button(
    "⬇️ Download the taught network (.keras, card, script to teach it again)",
    model_zip,
    "my_classes_model.zip",
    "application/zip",
    key="teach_save_model",
)

st.subheader("Try it")


@st.fragment
def try_it() -> None:
    """A new picture reruns only this part, not the class editors above."""
    for label, data in pictures_to_try(drawings=taught.backbone.info.name == "mnist"):
        classified(taught, model, label, data)


try_it()
