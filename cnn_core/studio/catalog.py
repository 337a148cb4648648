"""Which saved models exist and how they rank: the one listing the CLI (`list`) and the app share.

A listing row is a model's card plus its `name`, its `store` ("shipped" or "runs") and its
`display_status`; a card that cannot be read is a row with `name`, `store` and `error` instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from cnn_core.base.errors import CnnError
from cnn_core.base.store import ModelStore, all_stores
from cnn_core.train.cards import display_status


def store_cards(store: ModelStore) -> list[dict]:
    """Every saved model of one store, in name order: its card, or the reason it cannot be read."""
    rows = []
    for name in store.names():
        try:
            rows.append({**store.load_card(name), "name": name, "store": store.kind})
        except CnnError as err:
            rows.append({"name": name, "store": store.kind, "error": str(err)})
    return rows


def cards_version(store: ModelStore) -> tuple:
    """The names and modification times of a store's card files: a key that changes when any card
    does, for callers that cache `store_cards`. A file that vanishes while it is read makes it the
    current time: that read then misses any cache."""
    try:
        return tuple((p.name, p.stat().st_mtime_ns) for p in sorted(store.root.glob("*.json")))
    except OSError:
        return (time.time_ns(),)


_CARDS_READ: dict[tuple[str, str], tuple[tuple, list[dict]]] = {}


def cached_store_cards(store: ModelStore) -> list[dict]:
    """store_cards, read again only when the store's card files change (cards_version). For a server
    that lists the models on every rerun of every visitor's page. The rows are shared between callers,
    which must not change them (list_models copies each row it returns)."""
    key = (str(store.root), store.kind)
    version = cards_version(store)
    known = _CARDS_READ.get(key)
    if known is not None and known[0] == version:
        return known[1]
    rows = store_cards(store)
    _CARDS_READ[key] = (version, rows)  # a race only reads the same cards twice
    return rows


def list_models(
    dataset: str | None = None,
    include_damaged: bool = False,
    read_store: Callable[[ModelStore], list[dict]] = store_cards,
) -> list[dict]:
    """Every saved model, shipped first, each store in name order; optionally of one dataset only.

    Damaged cards (rows with `error`) are left out unless `include_damaged`; they have no dataset,
    so a dataset filter drops them too. `read_store` lets a caller cache the card reading."""
    rows = []
    for store in all_stores():
        for row in read_store(store):
            if "error" in row:
                if include_damaged and dataset is None:
                    rows.append(dict(row))
                continue
            if dataset and row.get("dataset") != dataset:
                continue
            # Computed on every call, never cached: a run's process can die without its card changing.
            rows.append({**row, "display_status": display_status(row)})
    return rows


def rank_for_choice(rows: list[dict]) -> list[dict]:
    """The models worth offering in a model picker, best first: shipped models with a test accuracy,
    most accurate first (the first is the default), then the user's own runs in their listed order."""
    offered = [r for r in rows if r.get("test_accuracy") is not None or r["store"] == "runs"]
    return sorted(
        offered,
        key=lambda r: (r["store"] != "shipped", -(r.get("test_accuracy") or 0) if r["store"] == "shipped" else 0),
    )


def ensemble_partners(rows: list[dict], name: str) -> list[str]:
    """Names of the evaluated models an ensemble with `name` may add (pass rows of one dataset)."""
    return [r["name"] for r in rows if r["name"] != name and r.get("test_accuracy")]


def choice_label(row: dict) -> str:
    """How a model reads in a picker: name · store · test accuracy."""
    accuracy = row.get("test_accuracy")
    return f"{row['name']} · {row['store']}" + (f" · {accuracy:.2%}" if accuracy else "")
