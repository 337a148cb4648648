"""Model cards: the JSON record saved beside every model, and how its status reads.

A card says what a model is (dataset, architecture, recipe), how it was made (the exact
command, data checksum, machine, library versions, time) and how well it does (test
accuracy, per-class accuracy, the training history). The trainer writes it after every
epoch; the CLI, the app and the benchmarks only read it.
"""

from __future__ import annotations

STATUS_RUNNING = "running"
STATUS_FINISHED = "finished"
STATUS_EARLY_STOPPED = "early_stopped"
STATUS_STOPPED = "stopped"
STATUS_NOTHING_SAVED = "stopped_before_first_epoch"


def display_status(card: dict) -> str:
    """The card's status, with runs whose process died shown as 'interrupted'."""
    from .store import process_alive

    status = card.get("status", "unknown")
    if status == STATUS_RUNNING and not process_alive(card.get("pid")):
        return "interrupted"
    return status
