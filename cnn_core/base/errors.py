"""Errors that carry a message meant for a person, not a traceback.

Every failure a user can cause (missing data, a bad file, a wrong name) is raised
as a `CnnError` subclass; the CLI prints `str(err)` and exits 2, the app shows it
in an `st.error` box.
"""


class CnnError(Exception):
    """Base class: `str(err)` is a complete, human-readable sentence."""


class DataError(CnnError):
    """A dataset could not be found, downloaded or read."""


class ModelStoreError(CnnError):
    """A model name is invalid, missing, unreadable or could not be saved."""


class ImageError(CnnError):
    """An uploaded or given image cannot be used."""


class ConfigError(CnnError):
    """A training or evaluation setting is impossible (e.g. epochs < 1)."""


class TrainingBusyError(CnnError):
    """A training run is already active in this process."""
