"""Benchmark results kept per machine, shared by every script in benchmarks/.

A results document holds each machine's runs side by side:

    {"schema_version": 2, "benchmark": "inference", ...fields that do not depend on the machine...,
     "machines": {"AMD EPYC | 2 cores | avx2+fma": {"machine": {...}, ...that machine's runs...}}}

The key is `cnn_core.base.runtime.machine_key`: CPU model, usable cores and the speed-relevant CPU
flags. The flags are part of it because two CPUs sold under one name can differ where it
matters (an AMD EPYC Zen 3 has AVX2 only, a Zen 4 adds AVX-512 with bfloat16). A run replaces
only its own machine's entry; the other machines' entries are kept untouched, and timings,
speed-ups and goals are computed and compared only within one entry.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SCHEMA_VERSION = 2
NOTES_MARKER = "<!-- notes: everything below this line is kept when the script rewrites this file -->"


def this_machine() -> dict:
    """The machine this process runs on, as `cnn_core.base.runtime.machine_info` describes it."""
    from cnn_core.base import runtime

    return runtime.machine_info()


def key_of(machine: dict) -> str:
    from cnn_core.base.runtime import machine_key

    return machine_key(machine)


def load(path: Path, benchmark: str) -> dict | None:
    """The results document at `path`, or None when there is none yet. A document in another
    layout is refused rather than overwritten, so no machine's runs are lost silently."""
    path = Path(path)
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    if doc.get("schema_version") != SCHEMA_VERSION or doc.get("benchmark") != benchmark or "machines" not in doc:
        raise ValueError(
            f"{path} is not a per-machine '{benchmark}' results document (schema_version "
            f"{SCHEMA_VERSION}); move it away or convert it before writing new runs into it."
        )
    return doc


def entry_for(doc: dict | None, machine: dict) -> dict | None:
    """`machine`'s entry in a document, if it has one."""
    return (doc or {}).get("machines", {}).get(key_of(machine))


def merge(previous: dict | None, benchmark: str, entry: dict, shared: dict | None = None) -> dict:
    """`previous` with `entry` filed under the key of `entry["machine"]`, replacing that machine's
    earlier entry and keeping every other machine's. `shared`: top-level fields that do not depend
    on the machine (they replace the previous ones)."""
    machines = dict((previous or {}).get("machines", {}))
    machines[key_of(entry["machine"])] = entry
    return {"schema_version": SCHEMA_VERSION, "benchmark": benchmark, **(shared or {}), "machines": machines}


def entries(doc: dict) -> Iterator[tuple[str, dict]]:
    return iter(doc["machines"].items())


def need(ok, where: str, message: str) -> None:
    """A results validator's one check: ValueError('where: message') unless `ok`."""
    if not ok:
        raise ValueError(f"{where}: {message}")


def validate(doc: dict, benchmark: str, validate_entry: Callable[[dict, str], None]) -> None:
    """Raise ValueError unless `doc` has the per-machine layout, every entry sits under its own
    machine's key, and `validate_entry(entry, where)` accepts every entry."""
    need(isinstance(doc, dict), benchmark, "must be an object")
    need(doc.get("schema_version") == SCHEMA_VERSION, f"{benchmark}.schema_version", f"must be {SCHEMA_VERSION}")
    need(doc.get("benchmark") == benchmark, f"{benchmark}.benchmark", f"must be '{benchmark}'")
    machines = doc.get("machines")
    need(isinstance(machines, dict) and machines, f"{benchmark}.machines", "must hold at least one machine")
    for key, entry in machines.items():
        where = f"{benchmark}.machines[{key}]"
        need(isinstance(entry, dict), where, "must be an object")
        machine = entry.get("machine")
        need(isinstance(machine, dict), f"{where}.machine", "missing")
        need(isinstance(machine.get("cpu"), str) and machine["cpu"], f"{where}.machine.cpu", "must be a string")
        need(
            isinstance(machine.get("cores"), int) and not isinstance(machine["cores"], bool) and machine["cores"] > 0,
            f"{where}.machine.cores",
            "must be a positive integer",
        )
        need(
            isinstance(machine.get("flags"), list) and all(isinstance(f, str) for f in machine["flags"]),
            f"{where}.machine.flags",
            "must list the CPU's speed-relevant flags",
        )
        need(key == key_of(machine), where, f"filed under the wrong machine key (its machine is '{key_of(machine)}')")
        validate_entry(entry, where)


def describe(key: str, entry: dict) -> list[str]:
    """Markdown lines introducing one machine's section: its key as a heading, then what it is."""
    m = entry["machine"]
    lines = [
        f"## Machine: {key}",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores usable"
        + (f" of {m['visible_cpus']} visible" if m.get("visible_cpus") not in (None, m["cores"]) else "")
        + f"; flags {', '.join(m['flags']) or 'none of ' + 'avx2/fma/avx512f/avx512_bf16/amx_bf16'}"
        + (f"; GPUs: {', '.join(m['gpus'])}" if m.get("gpus") else "; no GPU")
        + (f"; `{m['platform']}`" if m.get("platform") else ""),
    ]
    if m.get("flags_source"):
        lines.append(f"- Flags: {m['flags_source']}")
    return lines


def table_cell(text: str) -> str:
    """`text` safe inside a Markdown table cell (a machine key has '|' in it)."""
    return text.replace("|", "\\|")


def read_notes(md_path: Path) -> str:
    """The hand-written text below the notes marker of an existing report ('' if none)."""
    md_path = Path(md_path)
    if md_path.is_file() and NOTES_MARKER in md_path.read_text():
        return md_path.read_text().split(NOTES_MARKER, 1)[1]
    return ""


def write(out_dir: Path, stem: str, doc: dict, markdown: str) -> tuple[Path, Path]:
    """Write `stem`.json and `stem`.md into `out_dir` atomically (a reader never sees half a file)."""
    from cnn_core.base.store import atomic_write

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    atomic_write(json_path, lambda tmp: Path(tmp).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n"))
    atomic_write(md_path, lambda tmp: Path(tmp).write_text(markdown))
    return json_path, md_path
