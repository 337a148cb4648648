"""The committed benchmark results are well-formed, self-consistent and kept per machine; the
validators reject broken documents; and the time-to-accuracy script runs end to end (on a tiny
subset, one epoch: seconds, not a benchmark), both into an empty folder and beside the
committed runs of another machine."""

import copy
import json
from pathlib import Path

import pytest

from benchmarks import _machines, app_metrics, inference, load, ood, peer, recipe_switches, step_profile, tta_ensembles
from benchmarks import time_to_accuracy as tta

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"


def _committed(name, command):
    path = RESULTS / name
    if not path.is_file():
        pytest.fail(
            f"{path} is not committed: run `CNN_DATA_DIR=... {command}` on an otherwise idle machine "
            f"and commit benchmarks/results/."
        )
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def committed():
    return _committed("time_to_accuracy.json", "python -m benchmarks.time_to_accuracy")


def _only_machine(doc):
    """The entry of a document that holds exactly one machine."""
    (entry,) = doc["machines"].values()
    return entry


# -- the shared per-machine layout -------------------------------------------------------------


def _fake_machine(cpu="Imaginary CPU 9000", cores=2, flags=("avx2", "fma")):
    return {"cpu": cpu, "cores": cores, "visible_cpus": cores, "flags": list(flags), "gpus": [], "platform": "test"}


def test_a_run_replaces_only_its_own_machines_entry():
    zen3 = _fake_machine("AMD EPYC", flags=("avx2", "fma"))
    zen4 = _fake_machine("AMD EPYC", flags=("avx2", "fma", "avx512f", "avx512_bf16"))
    doc = _machines.merge(None, "demo", {"machine": zen4, "value": 1})
    doc = _machines.merge(doc, "demo", {"machine": zen3, "value": 2})
    # One CPU name, two kinds of machine: the flags keep them apart.
    assert len(doc["machines"]) == 2 and len({key.split(" | ")[0] for key in doc["machines"]}) == 1
    doc = _machines.merge(doc, "demo", {"machine": zen3, "value": 3})
    assert [e["value"] for e in doc["machines"].values()] == [1, 3]
    _machines.validate(doc, "demo", lambda entry, where: None)


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda d: d.update(schema_version=1), "schema_version"),
        (lambda d: d["machines"].clear(), "at least one machine"),
        (lambda d: _only_machine(d)["machine"].pop("flags"), "flags"),
        (lambda d: _only_machine(d)["machine"].update(cores=64), "wrong machine key"),
    ],
)
def test_the_shared_layout_rejects_broken_documents(break_it, message):
    doc = _machines.merge(None, "demo", {"machine": _fake_machine()})
    break_it(doc)
    with pytest.raises(ValueError, match=message):
        _machines.validate(doc, "demo", lambda entry, where: None)


def test_a_document_in_the_old_single_machine_layout_is_refused_not_overwritten(tmp_path):
    old = tmp_path / "inference.json"
    old.write_text(json.dumps({"schema_version": 1, "benchmark": "inference", "machine": _fake_machine()}))
    with pytest.raises(ValueError, match="per-machine"):
        _machines.load(old, "inference")


# -- time to accuracy ---------------------------------------------------------------------------


def test_committed_time_to_accuracy_results_follow_the_schema(committed):
    tta.validate_results(committed)
    for key, entry in committed["machines"].items():
        # Both datasets of the issue, each with the original recipe and at least one fast one, or
        # (CIFAR-10, on a machine where only the peer has run so far) the peer's runs alone.
        assert set(entry["datasets"]) == {"mnist", "cifar10"}, key
        for dataset, block in entry["datasets"].items():
            if not block["runs"]:
                assert dataset == peer.PEER_DATASET and block["peer"], (key, dataset)
                continue
            # The original recipe is the yardstick, or (CIFAR-10 on the AVX2-only Zen 3, where the
            # original has not been run) the peer's runs are.
            assert tta.BASELINE in block["runs"] or block.get("peer"), (key, dataset)
            if tta.BASELINE in block["runs"]:
                assert set(block["speedup"]) == set(block["runs"]) - {tta.BASELINE}
                assert block["speedup"], dataset
            assert block["test_size"] == 10_000, "committed results are tested on the whole test set"
            for run in block["runs"].values():
                assert run["subset"] is None, "committed results must come from full training sets"
                assert _machines.key_of(run["source"]["machine"]) == key


def test_committed_markdown_and_plot_match_the_json(committed):
    md = (RESULTS / "time_to_accuracy.md").read_text()
    assert tta.NOTES_MARKER in md
    generated = md.split(tta.NOTES_MARKER)[0]
    assert generated == tta.render_markdown(committed).split(tta.NOTES_MARKER)[0]
    notes = md.split(tta.NOTES_MARKER)[1]
    assert "limit" in notes.lower(), "the notes must say what limits the results"
    png = (RESULTS / "time_to_accuracy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def _first_run(doc):
    block = next(iter(_only_machine(doc)["datasets"].values()))
    return block, next(iter(block["runs"].values()))


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda d: _only_machine(d).pop("git_commit"), "git_commit"),
        (lambda d: _only_machine(d).pop("command"), "command"),
        (lambda d: d.pop("clock"), "clock"),
        (lambda d: d.update(schema_version=99), "schema_version"),
        (lambda d: _first_run(d)[1]["epochs"][0].update(test_accuracy=1.5), "test_accuracy"),
        (lambda d: _first_run(d)[1]["epochs"][0].update(epoch_seconds=-1.0), "epoch_seconds"),
        (lambda d: _first_run(d)[1]["epochs"][-1].update(train_seconds=1e9), "train_seconds"),
        (lambda d: _first_run(d)[1].pop("train_size"), "train_size"),
        (lambda d: _first_run(d)[1].update(time_to_target=0.123), "time_to_target"),
        (lambda d: _first_run(d)[1].update(best_test_accuracy=0.0), "best_test_accuracy"),
        (lambda d: _first_run(d)[1]["source"].pop("machine"), "machine"),
        (lambda d: next(iter(_first_run(d)[0]["speedup"].values())).update(value=1234.5), "value"),
        (lambda d: _first_run(d)[0].update(target=0.5), "target"),
        # A run of another machine filed under this one would give a speed-up across machines.
        (lambda d: _first_run(d)[1]["source"]["machine"].update(flags=["avx2"]), "same machine"),
    ],
)
def test_validator_rejects_broken_documents(committed, break_it, message):
    doc = copy.deepcopy(committed)
    doc["machines"] = dict(list(doc["machines"].items())[:1])
    break_it(doc)
    with pytest.raises(ValueError, match=message):
        tta.validate_results(doc)


def test_every_machine_has_a_summary_row_per_dataset_and_target_from_its_own_runs(committed):
    for key, entry in committed["machines"].items():
        rows = {(r["dataset"], r["target"]): r for r in entry["summary"]}
        assert set(rows) == {(d, t) for d in entry["datasets"] for t in tta.SUMMARY_TARGETS[d]}, key
        for (dataset, target), row in rows.items():
            assert row["machine"] == key
            runs = entry["datasets"][dataset]["runs"]
            if row["ours_s"] is not None:  # the fastest non-original run's first epoch at the target
                epochs = runs[row["ours_recipe"]]["epochs"]
                first = next(e for e in epochs if e["test_accuracy"] >= target)
                assert row["ours_s"] == first["train_seconds"] and row["ours_recipe"] != tta.BASELINE
            if row["seed_s"] is not None and row["ours_s"] is not None:
                assert row["ratio_vs_seed"] == pytest.approx(row["ours_s"] / row["seed_s"])
            if dataset != peer.PEER_DATASET:
                assert row["peer_s"] is None and row["ratio_vs_peer"] is None  # the peer trains CIFAR-10 only
            elif row["peer_s"] is not None:
                run = entry["datasets"][dataset]["peer"][peer.PEER_RUN_FOR_TARGET[target]]
                assert row["peer_s"] == run["total_train_seconds"]
                assert row["ratio_vs_peer"] == pytest.approx(row["ours_s"] / row["peer_s"]) if row["ours_s"] else True


def test_a_summary_that_does_not_follow_from_the_runs_is_refused(committed):
    doc = copy.deepcopy(committed)
    next(iter(doc["machines"].values()))["summary"][0]["ours_s"] = 1.0
    with pytest.raises(ValueError, match="summary: must be what the runs give"):
        tta.validate_results(doc)


PEER_OUTPUT = """{"epoch": 1, "clock_s": 430.8, "test_acc": 0.705}
{"epoch": 2, "clock_s": 845.6, "test_acc": 0.84}
{"epoch": 3, "clock_s": 1242.0, "test_acc": 0.885}
{"peer": "airbench94 (CPU port)", "epochs": 3.0, "threads": 2, "log": [{"epoch": 1, "clock_s": 430.8, "test_acc": 0.705}, {"epoch": 2, "clock_s": 845.6, "test_acc": 0.84}, {"epoch": 3, "clock_s": 1242.0, "test_acc": 0.885}], "precision": "fp32", "tta_test_acc": 0.8922, "clock_s_with_tta": 1409.0, "torch": "2.13.0+cpu"}
"""


def test_the_peers_printed_result_becomes_a_run_that_the_summary_compares_with(committed):
    # The port's output format (see ../shared/peers/airbench94_cpu.py), with the figures ../shared/README.md
    # gives for the Zen 3.
    run = peer.as_run(peer.parse_output(PEER_OUTPUT), "peer --epochs 3")
    assert [e["train_seconds"] for e in run["epochs"]] == [430.8, 845.6, 1242.0]
    assert run["total_train_seconds"] == 1242.0 and run["tta_test_accuracy"] == 0.8922
    doc = copy.deepcopy(committed)
    _key, entry = next(iter(doc["machines"].items()))
    entry["datasets"]["cifar10"]["peer"] = {"3": {**run, "source": {"machine": entry["machine"]}}}
    tta.with_summaries(doc)
    tta.validate_results(doc)
    row = next(r for r in entry["summary"] if r["dataset"] == "cifar10" and r["target"] == 0.85)
    assert row["peer_s"] == 1242.0 and row["peer_run"] == "--epochs 3"
    assert row["ratio_vs_peer"] == pytest.approx(row["ours_s"] / 1242.0)
    # A peer run from another machine under this entry would compare across machines.
    entry["datasets"]["cifar10"]["peer"]["3"]["source"] = {"machine": {**entry["machine"], "flags": ["avx2"]}}
    with pytest.raises(ValueError, match="must be measured on the entry's machine"):
        tta.validate_results(tta.with_summaries(doc))
    with pytest.raises(ValueError, match="no final result line"):
        peer.parse_output('{"epoch": 1, "clock_s": 1.0, "test_acc": 0.5}\nTraceback ...')


def test_speedup_is_a_lower_bound_when_the_original_was_capped():
    base = {"time_to_target": None, "total_train_seconds": 600.0}
    assert tta.ratio_entry(base, {"time_to_target": 60.0}) == {"baseline": "seed", "value": 10.0, "kind": "lower_bound"}
    assert tta.ratio_entry({**base, "time_to_target": 300.0}, {"time_to_target": 60.0})["kind"] == "exact"
    assert tta.ratio_entry(base, {"time_to_target": None})["value"] is None


TINY_RUN = ["--datasets", "mnist", "--recipes", "turbo", "--subset", "600", "--epochs", "1", "--test-limit", "500"]


def _check_tiny_run(run, out):
    assert run["subset"] == 600 and run["train_size"] == 600 and len(run["epochs"]) == 1
    assert run["source"]["command"].endswith("--out " + str(out))
    assert run["epochs"][0]["eval_seconds"] > 0 and run["epochs"][0]["epoch_seconds"] > 0
    assert 0 <= run["best_test_accuracy"] <= 1


@pytest.mark.slow  # trains on real data
def test_time_to_accuracy_script_runs_end_to_end_into_an_empty_folder(data_dir, tmp_path):
    out = tmp_path / "results"
    assert tta.main([*TINY_RUN, "--data-dir", str(data_dir), "--out", str(out)]) == 0
    doc = json.loads((out / "time_to_accuracy.json").read_text())
    tta.validate_results(doc)
    entry = _only_machine(doc)
    assert _machines.key_of(entry["machine"]) == _machines.key_of(_machines.this_machine())
    assert set(entry["datasets"]) == {"mnist"} and entry["datasets"]["mnist"]["test_size"] == 500
    _check_tiny_run(entry["datasets"]["mnist"]["runs"]["turbo"], out)
    assert entry["datasets"]["mnist"]["speedup"]["turbo"]["kind"] == "no_baseline"
    md = (out / "time_to_accuracy.md").read_text()
    assert f"## Machine: {_machines.key_of(entry['machine'])}" in md and "| turbo | turbo |" in md
    assert (out / "time_to_accuracy.png").stat().st_size > 10_000


@pytest.mark.slow  # trains on real data
def test_a_run_on_another_machine_is_added_beside_the_committed_runs(data_dir, tmp_path, committed, monkeypatch):
    import cnn_core.base.runtime

    out = tmp_path / "results"
    out.mkdir()
    (out / "time_to_accuracy.json").write_text(json.dumps(committed))
    (out / "time_to_accuracy.md").write_text(f"old\n{tta.NOTES_MARKER}\nLimits: hand-written notes.\n")
    other = _fake_machine("Imaginary CPU 9000 (not a committed machine)", cores=3)
    monkeypatch.setattr(cnn_core.base.runtime, "machine_info", lambda: dict(other))
    assert tta.main([*TINY_RUN, "--data-dir", str(data_dir), "--out", str(out)]) == 0
    doc = json.loads((out / "time_to_accuracy.json").read_text())
    tta.validate_results(doc)
    new_key = _machines.key_of(other)
    assert new_key not in committed["machines"]
    assert list(doc["machines"]) == [*committed["machines"], new_key]
    for key, entry in committed["machines"].items():  # every committed machine kept untouched
        assert doc["machines"][key] == entry
    mine = doc["machines"][new_key]
    _check_tiny_run(mine["datasets"]["mnist"]["runs"]["turbo"], out)
    # No speed-up against another machine's `seed` run.
    assert set(mine["datasets"]["mnist"]["runs"]) == {"turbo"}
    assert mine["datasets"]["mnist"]["speedup"]["turbo"]["value"] is None
    md = (out / "time_to_accuracy.md").read_text()
    assert md.endswith("Limits: hand-written notes.\n")
    sections = md.split("## Machine: ")[1:]
    assert [s.splitlines()[0] for s in sections] == list(doc["machines"])
    assert all("| recipe | arch |" in s for s in sections), "every machine gets its own tables"
    assert "| turbo | turbo |" in sections[-1] and "| seed | seed |" in sections[0]


# -- inference ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def committed_inference():
    return _committed("inference.json", "python -m benchmarks.inference")


def test_committed_inference_results_follow_the_schema(committed_inference):
    inference.validate_results(committed_inference)
    assert (RESULTS / "inference.md").read_text() == inference.render_markdown(committed_inference)


def test_committed_inference_results_cover_every_shipped_model_and_the_pages_defaults(committed_inference):
    from cnn_core.base.store import shipped_store

    store = shipped_store()
    newest = max(committed_inference["machines"].values(), key=lambda e: e["created"])
    assert set(newest["models"]) == set(store.names()), "rerun benchmarks.inference after shipping a model"
    assert newest["page_defaults"] == inference.page_defaults(), "the pages' defaults changed: rerun it"
    for name, model in newest["models"].items():
        card = store.load_card(name)
        assert ("single_image_tta" in model) == bool(card.get("tta")), name
        # Models trained in bfloat16 are measured in bfloat16 too, beside the default.
        assert ("bf16" in model or model["precision"] == "bf16") == (inference.trained_precision(card) == "bf16")
    md = (RESULTS / "inference.md").read_text()
    for key, entry in committed_inference["machines"].items():
        assert f"## Machine: {key}" in md
        for name in entry["page_defaults"].values():
            assert f"| {_machines.table_cell(key)} |" in md and f"`{name}`" in md


def _inference_entry(doc):
    return _only_machine(doc)


def _first_model(doc):
    return next(iter(_inference_entry(doc)["models"].values()))


@pytest.mark.parametrize(
    "break_it, message",
    [
        (
            lambda d: _inference_entry(d)["models"].pop(_inference_entry(d)["page_defaults"]["draw"]),
            r"page_defaults\.draw: must name a measured model",
        ),
        (
            lambda d: _inference_entry(d)["page_defaults"].pop("photo"),
            r"page_defaults\.photo: must name a measured model",
        ),
        (
            lambda d: _first_model(d)["single_image"].update(p50_ms=-1),
            r"single_image\.p50_ms: must be a positive number",
        ),
        (lambda d: _first_model(d)["single_image"].update(p95_ms=0.0001), "needs min ≤ p50 ≤ p95"),
        (
            lambda d: _first_model(d)["batch"].update(images_per_sec=1.0),
            r"batch\.images_per_sec: must be images / seconds",
        ),
        (lambda d: _first_model(d).update(precision="fp16"), r"\.precision: must be 'fp32' or 'bf16'"),
        (
            lambda d: _inference_entry(d)["memory"].pop("serving_process"),
            r"memory\.serving_process\.peak_rss_mb: must be a positive number",
        ),
        (lambda d: _inference_entry(d)["machine"].update(cpu="Another CPU"), "wrong machine key"),
    ],
)
def test_inference_validator_rejects_broken_documents(committed_inference, break_it, message):
    doc = copy.deepcopy(committed_inference)
    doc["machines"] = dict(list(doc["machines"].items())[:1])
    inference.validate_results(doc)  # whole before it is broken: the error below is the break's
    break_it(doc)
    with pytest.raises(ValueError, match=message):
        inference.validate_results(doc)


# -- the other results files --------------------------------------------------------------------


@pytest.mark.parametrize(
    "module, name",
    [
        (app_metrics, "app_metrics"),
        (load, "load"),
        (recipe_switches, "recipe_switches"),
        (tta_ensembles, "tta_ensembles"),
    ],
)
def test_committed_per_machine_results_follow_the_schema_and_match_their_markdown(module, name):
    doc = _committed(f"{name}.json", f"python -m benchmarks.{name}")
    module.validate_results(doc)
    md = (RESULTS / f"{name}.md").read_text()
    if _machines.NOTES_MARKER in md:
        assert md == module.render_markdown(doc, _machines.read_notes(RESULTS / f"{name}.md"))
    else:
        assert md == module.render_markdown(doc)
    for key in doc["machines"]:
        assert key in md


def _app_metrics_entry(idle=0.25, busy=0.3, paint=1.5):
    """A made-up app_metrics entry as `--while-training` writes it."""
    return {
        "machine": _fake_machine(),
        "command": "python -m benchmarks.app_metrics --while-training",
        "git_commit": "abc",
        "date": "2026-01-01T00:00:00Z",
        "repeats": 1,
        "page_load_seconds": {
            "draw": {"first": 2.5, "median_warm": 1.9, "p95_warm": 2.1},
            "results": {"first": 3.0, "median_warm": 2.6, "p95_warm": 2.8},
        },
        "first_paint_seconds": {
            "draw": {"median_warm": paint, "p95_warm": paint + 0.1, "n": 1},
            "results": {"median_warm": 2.4, "p95_warm": 2.5, "n": 1},
        },
        "draw_to_prediction_seconds": {"median": idle, "p95": idle + 0.1, "n": 4},
        "drawn_digits_recognised": "4/4",
        "redrawn": 0,
        "server_rss_mb": {"started": 50.0, "models_loaded": 800.0, "after_drawing": 810.0},
        "goals": dict(app_metrics.GOALS),
        "while_training": {
            "dataset": "cifar10",
            "epochs": 1,
            "recipe": "the Train page's default",
            "seconds_start_to_first_batch": 20.0,
            "progress_when_drawing_began": "Epoch 1/1 · batch 3/196",
            "progress_when_drawing_ended": "Epoch 1/1 · batch 40/196",
            "trained_throughout": True,
            "seconds_stop_to_ended": 2.0,
            "draw_to_prediction_seconds": {"median": busy, "p95": busy + 0.1, "n": 4},
            "drawn_digits_recognised": "4/4",
            "redrawn": 0,
            "median_over_idle_median": round(busy / idle, 2),
            "server_rss_mb": {"before_start": 810.0, "median": 1500.0, "peak": 1600.0, "samples": 40},
        },
    }


def test_app_metrics_while_training_states_each_goal_met_or_not_with_its_numbers():
    doc = _machines.merge(None, "app_metrics", _app_metrics_entry(idle=0.25, busy=0.3, paint=1.5))
    app_metrics.validate_results(doc)
    md = app_metrics.render_markdown(doc)
    assert "- Draw-to-prediction idle ≤ 0.3 s median: met (median 0.25 s)." in md
    assert "- Draw-to-prediction while training ≤ 1.3× idle: met (median 0.3 s = 1.2× the idle 0.25 s)." in md
    assert "draw met (1.5 s); results NOT met (2.4 s)." in md
    assert "| draw | 2.5 | 1.9 | 2.1 | 1.5 | 1.6 |" in md  # the old columns, then first paint
    assert "median 1500.0 MB, peak 1600.0 MB" in md

    slow = _machines.merge(None, "app_metrics", _app_metrics_entry(idle=0.4, busy=0.8))
    md = app_metrics.render_markdown(slow)
    assert "idle ≤ 0.3 s median: NOT met (median 0.4 s)" in md and "1.3× idle: NOT met (median 0.8 s = 2.0×" in md


def test_app_metrics_without_while_training_says_the_training_goal_was_not_measured():
    entry = _app_metrics_entry()
    del entry["while_training"]
    doc = _machines.merge(None, "app_metrics", entry)
    app_metrics.validate_results(doc)
    assert "while training ≤ 1.3× idle: not measured (run with --while-training)" in app_metrics.render_markdown(doc)


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda e: e["while_training"].update(median_over_idle_median=1.0), "median_over_idle_median"),
        (lambda e: e["while_training"].update(drawn_digits_recognised="4/5"), "hits/drawings"),
        (lambda e: e["first_paint_seconds"]["draw"].update(median_warm=9.0), "median ≤ p95"),
        (lambda e: e["first_paint_seconds"].update(photo={"median_warm": 1, "p95_warm": 1, "n": 1}), "no load times"),
        (lambda e: e["goals"].pop("first_paint_warm_s"), "goals"),
    ],
)
def test_app_metrics_validator_rejects_broken_while_training_entries(break_it, message):
    entry = _app_metrics_entry()
    break_it(entry)
    with pytest.raises(ValueError, match=message):
        app_metrics.validate_results(_machines.merge(None, "app_metrics", entry))


def test_the_compare_page_still_finds_the_tta_rows_at_the_top_of_the_document():
    doc = _committed("tta_ensembles.json", "python -m benchmarks.tta_ensembles")
    assert doc["rows"] and {"dataset", "models", "tta", "accuracy", "loss"} <= set(doc["rows"][0])
    assert isinstance(doc["command"], str) and "git_commit" in doc


def test_committed_ood_results_follow_the_schema_and_the_cards():
    from cnn_core.base.store import shipped_store

    doc = _committed("ood.json", "python -m benchmarks.ood")
    ood.validate_results(doc)
    md = (RESULTS / "ood.md").read_text()
    assert md.split(ood.NOTES_MARKER)[0] == ood.render_markdown(doc).split(ood.NOTES_MARKER)[0]
    store = shipped_store()
    calibrated = {n for n in store.names() if store.load_card(n).get("ood")}
    assert {row["model"] for row in doc["models"]} == calibrated, "rerun benchmarks.ood after calibrating"
    for row in doc["models"]:
        # The results belong to the calibration the shipped card carries now.
        assert row["threshold"] == store.load_card(row["model"])["ood"]["threshold"], row["model"]
    if "cifar10" in {row["dataset"] for row in doc["models"]}:
        labels = next(r for r in doc["models"] if r["dataset"] == "cifar10")["off_distribution"]
        assert {"mnist test images", "fashion_mnist test images"} <= set(labels)


def test_an_ood_run_for_some_models_keeps_the_other_current_rows(tmp_path):
    from cnn_core.base.store import shipped_store

    doc = copy.deepcopy(_committed("ood.json", "python -m benchmarks.ood"))
    store = shipped_store()
    first, second = doc["models"][:2]
    stale = {**copy.deepcopy(second), "threshold": second["threshold"] / 2}  # calibrated anew since
    gone = {**copy.deepcopy(first), "model": "no_longer_shipped"}
    previous = {**doc, "models": [first, stale, gone]}
    (tmp_path / "ood.json").write_text(json.dumps(previous))
    new_row = {**copy.deepcopy(second), "measured_by": {"command": "now", "git_commit": "c", "date": "d"}}
    rows = ood.merged_rows(tmp_path / "ood.json", [new_row])
    assert [r["model"] for r in rows] == sorted([first["model"], second["model"]])
    kept = next(r for r in rows if r["model"] == first["model"])
    assert kept["measured_by"]["command"] == (first.get("measured_by") or doc)["command"]
    assert kept["threshold"] == store.load_card(first["model"])["ood"]["threshold"]
    assert next(r for r in rows if r["model"] == second["model"]) is new_row
    assert ood.merged_rows(tmp_path / "absent.json", [new_row]) == [new_row]


def test_an_ood_rewrite_keeps_the_notes_as_they_were(tmp_path):
    doc = _committed("ood.json", "python -m benchmarks.ood")
    md = tmp_path / "ood.md"
    ood.write_markdown(md, doc)
    assert md.read_text() == ood.render_markdown(doc)  # no notes yet: the marker ends the file
    md.write_text(md.read_text() + "\nA note.\n")
    written = md.read_text()
    for _ in range(2):  # every rewrite leaves the notes, blank lines and all, as they were
        ood.write_markdown(md, doc)
        assert md.read_text() == written


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda d: d.pop("models"), "missing 'models'"),
        (lambda d: d["models"][0].update(threshold=1.5), "threshold"),
        (lambda d: d["models"][0]["off_distribution"].clear(), "no off-distribution"),
        (lambda d: next(iter(d["models"][0]["off_distribution"].values())).update(auroc=1.2), "must lie in"),
    ],
)
def test_ood_validator_rejects_broken_documents(break_it, message):
    doc = copy.deepcopy(_committed("ood.json", "python -m benchmarks.ood"))
    break_it(doc)
    with pytest.raises(ValueError, match=message):
        ood.validate_results(doc)


# -- step profile: arithmetic counted by one rule for both networks ------------------------------


def test_training_flops_follow_the_layer_shapes():
    import keras

    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    outputs = keras.layers.Dense(10)(keras.layers.GlobalMaxPooling2D()(x))
    model = keras.Model(inputs, outputs)
    # forward multiply-adds × 2 FLOPs × 3 (forward, input gradient, weight gradient)
    assert step_profile.keras_training_flops_per_image(model) == 3 * 2 * (8 * 8 * 3 * 3 * 3 * 4 + 4 * 10)


def test_the_peer_network_counted_is_the_one_in_the_peer_script():
    import re

    source = peer.DEFAULT_SCRIPT.read_text()
    widths = re.search(r"'widths': \{'block1': (\d+), 'block2': (\d+), 'block3': (\d+)\}", source).groups()
    convs = [layer for layer in step_profile.PEER_LAYERS if layer[0] == "conv"]
    assert [c[4] for c in convs] == [int(widths[0])] * 2 + [int(widths[1])] * 2 + [int(widths[2])] * 2
    assert "Conv(3, 24, 2, padding=0" in source and step_profile.PEER_LAYERS[0] == ("conv_frozen", 32, 32, 3, 24, 2)
    assert "'batch_size': 1024" in source and step_profile.PEER_BATCH == 1024


def test_the_app_reads_the_committed_recipe_figures_of_every_machine(committed):
    """trained_models/DATASET.recipe_times.json (the Train page's labels) is what the committed
    time-to-accuracy results say, run by run: written by the benchmark, never by hand."""
    from cnn_core.base.store import read_json
    from cnn_core.studio.benchmark_figures import recipe_times_path

    for dataset in tta.TARGETS:
        expected = tta.recipe_figures(committed, dataset)
        assert expected, f"no recipe measured on {dataset}"
        assert read_json(recipe_times_path(dataset))["machines"] == expected
        for key, figures in expected.items():
            runs = committed["machines"][key]["datasets"][dataset]["runs"]
            assert set(figures["recipes"]) == set(runs)
            for recipe, row in figures["recipes"].items():
                assert row["test_accuracy"] == runs[recipe]["epochs"][-1]["test_accuracy"]
                assert row["train_seconds"] == runs[recipe]["epochs"][-1]["train_seconds"]
