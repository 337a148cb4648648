"""The Results page's export: the model with a standalone Keras script that retrains it (cnn_core.export.export)."""

import streamlit as st

from cnn_core.base.errors import CnnError
from cnn_core.export.export import export_zip, script_name, script_text


@st.cache_data(show_spinner=False, max_entries=8)
def _export(name: str, root: str, version: float, _store) -> tuple[bytes, str]:
    """The zip and the script of one version of a model (its .keras file's modification time)."""
    return export_zip(name, _store), script_text({**_store.load_card(name), "name": name})


def export_buttons(store, name: str) -> None:
    """Download buttons for the export zip (model, card, script, README.txt) and the script alone."""
    st.markdown(
        "**Export** — the model with a standalone Keras script (no cnn_core) that rebuilds the same "
        "network and trains it with the same recipe; its README says what the script approximates."
    )
    try:
        archive, script = _export(name, str(store.root), store.model_path(name).stat().st_mtime, store)
    except (CnnError, OSError) as err:
        st.error(f"This model cannot be exported: {err}")
        return
    left, right = st.columns(2)
    left.download_button(
        "Download model + training script (.zip)",
        archive,
        file_name=f"{name}_export.zip",
        mime="application/zip",
        key=f"export_zip_{name}",
    )
    right.download_button(
        "Download the training script (.py)",
        script,
        file_name=script_name(name),
        mime="text/x-python",
        key=f"export_script_{name}",
    )
