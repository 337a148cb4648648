"""What flip test-time augmentation and small ensembles buy, measured on the test sets.

    CNN_DATA_DIR=../shared/datasets python benchmarks/tta_ensembles.py

Evaluates every shipped model with TTA off and on, and every ensemble of two or more shipped
models of one dataset (TTA as each card says), through the same code as
`python -m cnn_core evaluate`. Writes benchmarks/results/tta_ensembles.json and .md; the
Compare page shows the JSON.
"""

from __future__ import annotations

import itertools
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

RESULT = HERE / "results" / "tta_ensembles.json"


def main():
    from cnn_core.datasets import load_dataset
    from cnn_core.evaluation import evaluate_predictor
    from cnn_core.inference import load_ensemble
    from cnn_core.runtime import git_commit, import_tensorflow_quietly, machine_info
    from cnn_core.store import shipped_store

    import_tensorflow_quietly()
    store = shipped_store()
    by_dataset: dict[str, list[str]] = {}
    for name in store.names():
        by_dataset.setdefault(store.load_card(name)["dataset"], []).append(name)
    rows = []
    for dataset, names in sorted(by_dataset.items()):
        data = load_dataset(dataset)
        combos = [[n] for n in names] + [list(c) for k in range(2, len(names) + 1)
                                         for c in itertools.combinations(names, k)]
        for combo in combos:
            settings = (False, True) if len(combo) == 1 else (None,)
            for tta in settings:
                predictor = load_ensemble(combo, tta=tta)
                t0 = time.perf_counter()
                result = evaluate_predictor(predictor, data)
                rows.append({"dataset": dataset, "models": combo, "tta": predictor.tta,
                             "accuracy": result["accuracy"], "loss": result["loss"],
                             "seconds": round(time.perf_counter() - t0, 2)})
                print(f"{dataset:14} {'+'.join(combo):40} TTA {'on ' if predictor.tta else 'off'} "
                      f"{result['accuracy']:.2%}", flush=True)
    out = {"command": "python benchmarks/tta_ensembles.py", "git_commit": git_commit(), "machine": machine_info(),
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "test_size": 10_000, "rows": rows}
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps(out, indent=2))
    lines = ["# Test-time augmentation and ensembles", "",
             f"`{out['command']}`, commit {out['git_commit']}, {out['date']}; full 10,000-image test sets.", "",
             "| dataset | models | flip TTA | test accuracy | loss |", "|---|---|---|---|---|"]
    lines += [f"| {r['dataset']} | {' + '.join(r['models'])} | {'on' if r['tta'] else 'off'} | "
              f"{r['accuracy']:.2%} | {r['loss']:.4f} |" for r in rows]
    RESULT.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
