"""Command line: `python -m cnn_core train | lr | evaluate | predict | calibrate | labels | list | download | export |
teach | litert`.

Mistakes a person can make (wrong arguments, missing data, unknown models,
unreadable images) print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import threading

from cnn_core.base.errors import CnnError
from cnn_core.predict.ood import DEFAULT_PASS_RATE

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + traceback-like noise
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _whole_number(text: str) -> int:
    """argparse type: any whole number; whether it suits the setting is recipes.validate_config's say."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None


def _positive_int(text: str) -> int:
    """For options that are not recipe values (such as --top)."""
    value = _whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {value})")
    return value


def _command_line(args) -> str:
    """The command as typed, for the model card."""
    return " ".join(["python -m cnn_core", *(shlex.quote(a) for a in args.argv)])


def _fraction(text: str) -> float:
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, like 0.95 (got {text})")
    return value


def build_parser() -> argparse.ArgumentParser:
    from cnn_core.data.datasets import DATASETS
    from cnn_core.nets.models import ARCHITECTURES
    from cnn_core.nets.precision import PRECISIONS
    from cnn_core.train.switches import SWITCHES

    parser = _Parser(
        prog="python -m cnn_core",
        description="Train, evaluate and use small CNNs for MNIST, Fashion-MNIST and CIFAR-10.",
    )
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar="{train,lr,evaluate,predict,calibrate,labels,list,download,export,teach,litert}",
        parser_class=_Parser,
    )

    tr = sub.add_parser(
        "train",
        help="train a model and save it to the runs folder",
        description="Train a model; the best checkpoint, its card and its evaluation are saved "
        "to the runs folder (CNN_RUNS_DIR, default runs/).",
    )
    tr.add_argument("--dataset", choices=sorted(DATASETS), default="mnist")
    tr.add_argument(
        "--arch",
        choices=sorted(ARCHITECTURES),
        default="seed",
        help="architecture and its training recipe (default: seed, the original notebook's)",
    )
    # Recipe values are only parsed here; cnn_core.train.recipes.validate_config checks them (main()).
    tr.add_argument("--epochs", type=_whole_number, help="maximum epochs (recipe default if omitted)")
    tr.add_argument(
        "--batch-size",
        type=_whole_number,
        help="images per step; without --lr, recipes with a per-image lr (airbench, quick) scale it in proportion",
    )
    tr.add_argument("--lr", type=_number, help="(peak) learning rate")
    tr.add_argument("--subset", type=_whole_number, help="train on a class-balanced subset of N images")
    tr.add_argument(
        "--val-size", type=_whole_number, help="images held out of training for validation (0: train on all of it)"
    )
    tr.add_argument("--seed", type=_whole_number, default=0)
    tr.add_argument("--no-augment", action="store_true", help="turn every augmentation off")
    tr.add_argument("--rotation", type=_number, metavar="DEG", help="random rotation range in degrees (0: off)")
    tr.add_argument("--shift", type=_number, metavar="FRAC", help="random shift, fraction of the size (0: off)")
    tr.add_argument("--zoom", type=_number, metavar="FRAC", help="random zoom fraction (0: off)")
    tr.add_argument("--flip", action=argparse.BooleanOptionalAction, help="random horizontal flips")
    tr.add_argument(
        "--switch",
        action="append",
        choices=list(SWITCHES),
        metavar="NAME",
        dest="switches",
        help="switch on one of the original notebook's improvements to try (repeat for more): "
        + "; ".join(f"{name} = {switch.title}" for name, switch in SWITCHES.items())
        + ". Recorded in the model card (hyperparameters.switches)",
    )
    tr.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="number format: bf16 (mixed bfloat16, fast only on CPUs with AVX512-BF16/AMX), fp32, "
        "or auto (bf16 where the CPU does it natively); default: the recipe's",
    )
    tr.add_argument("--resume", metavar="NAME", help="continue the interrupted run NAME from its last epoch")
    tr.add_argument(
        "--probe-image",
        metavar="PATH",
        help="a picture (e.g. your own drawing or photo) whose feature maps every epoch's snapshot keeps, "
        "for the app's epoch-by-epoch replay (default: the first validation image)",
    )
    tr.add_argument("--name", help="name of the saved model (default: dataset_arch_timestamp)")
    tr.add_argument("--overwrite", action="store_true", help="replace an existing run with the same name")
    tr.add_argument("--data-dir", help="folder with <dataset>.npz files (default: $CNN_DATA_DIR, then download)")
    tr.add_argument(
        "--strategy",
        choices=("default", "mirrored", "multi_worker"),
        default="default",
        help="distribution: mirrored = every GPU of this machine (tf.distribute.MirroredStrategy), "
        "multi_worker = several machines (MultiWorkerMirroredStrategy, needs TF_CONFIG); "
        "--batch-size stays the global batch",
    )

    lr = sub.add_parser(
        "lr",
        help="change the learning rate of a run that is training, from its next batch",
        description="Multiply or set the learning rate of a run training now (in another shell), "
        "from its next batch on: writes the control file NAME.lr.json in the runs "
        "folder, which the run reads between batches (see cnn_core/train/lr_control.py). "
        "A schedule is scaled as a whole; the change shows in the run's output, its "
        "card's lr_changes and its history.",
    )
    lr.add_argument("--run", required=True, metavar="NAME", help="the run's name (its --name)")
    how = lr.add_mutually_exclusive_group(required=True)
    how.add_argument("--multiply", type=_number, metavar="X", help="multiply the learning rate by X (> 0)")
    how.add_argument("--set", type=_number, metavar="LR", help="make the next batch's learning rate LR (> 0)")

    ev = sub.add_parser("evaluate", help="evaluate a saved model on the test set")
    ev.add_argument(
        "--model",
        required=True,
        action="append",
        help="name of a saved model (see `list`); repeat to evaluate an averaged ensemble",
    )
    ev.add_argument(
        "--tta",
        choices=("auto", "off", "on", "flip", "shifts"),
        default="auto",
        help="test-time augmentation: flip (= on) averages the image and its mirror image, "
        "shifts adds both shifted by one pixel; for digits, which are never mirrored, flip "
        "averages the four one-pixel shifts and shifts all nine positions around the image "
        "(auto: as the model card says)",
    )
    ev.add_argument("--save", action="store_true", help="write the evaluation artefact beside the model")
    ev.add_argument("--output", metavar="FILE", help="also write the evaluation JSON to FILE")
    ev.add_argument("--data-dir")

    pr = sub.add_parser("predict", help="classify image files with a saved model")
    pr.add_argument("--model", required=True)
    pr.add_argument("--top", type=_positive_int, default=3, help="how many classes to show (default 3)")
    pr.add_argument(
        "--json", action="store_true", help="print one JSON object per file with every class probability (for scripts)"
    )
    pr.add_argument("files", nargs="+", metavar="FILE")

    ca = sub.add_parser(
        "calibrate",
        help="fit a model's out-of-distribution detector and its temperature scaling on its validation split",
        description="Fit the detector that flags pictures as 'not one of the classes' (e.g. a photo "
        "given to the digit model) on the run's training images, set its threshold on "
        "the run's validation split, and save it beside the model (NAME.detector.npz, "
        "described in the card), and fit the temperature that calibrates its probabilities "
        "(stored in the card, with the test set's reliability before and after). Training "
        "does both itself for runs with a validation split.",
    )
    ca.add_argument("--model", required=True, help="name of a saved model in the runs folder")
    ca.add_argument(
        "--pass-rate",
        type=_fraction,
        default=DEFAULT_PASS_RATE,
        help=f"share of validation images that must NOT be flagged (default {DEFAULT_PASS_RATE})",
    )
    ca.add_argument("--data-dir")

    la = sub.add_parser(
        "labels",
        help="find images whose given label a model confidently disputes",
        description="Confident learning on held-out probabilities. The test split is judged by a saved "
        "model (--model); the training split by networks trained on the other folds "
        "(--folds, --recipe, --epochs), since a model's fit of its own training images has "
        "learnt their labels. Prints the most suspicious images and saves the audit to the "
        "runs folder (MODEL.labels.json or DATASET.train_labels.json), where the Suspicious "
        "labels page finds it.",
    )
    la.add_argument("--model", help="a saved model (see `list`): judges the test set, or names the dataset")
    la.add_argument("--dataset", choices=sorted(DATASETS), help="the dataset (for --split train without --model)")
    la.add_argument("--split", choices=("test", "train"), default="test", help="which images to audit (default test)")
    la.add_argument("--folds", type=_whole_number, default=2, help="--split train: networks trained (default 2)")
    la.add_argument(
        "--recipe",
        choices=sorted(ARCHITECTURES),
        default="quick",
        help="--split train: the recipe each fold's network trains with (default quick)",
    )
    la.add_argument("--epochs", type=_whole_number, help="--split train: epochs per fold (default: the recipe's)")
    la.add_argument("--seed", type=_whole_number, default=0, help="--split train: folds and training seed")
    la.add_argument("--top", type=_positive_int, default=20, help="how many suspects to print (default 20)")
    la.add_argument("--json", action="store_true", help="print the audit as JSON instead")
    la.add_argument("--data-dir")

    sub.add_parser("list", help="list saved models (shipped and runs) with their card figures")

    dl = sub.add_parser(
        "download",
        help="fetch datasets through keras.datasets into a folder of .npz files",
        description="Download datasets (needs internet; Keras caches them) and write each as "
        "<name>.npz into a data folder, the layout --data-dir and CNN_DATA_DIR read.",
    )
    dl.add_argument(
        "--dataset", action="append", choices=sorted(DATASETS), help="a dataset to fetch (repeat; default: all of them)"
    )
    dl.add_argument(
        "--data-dir", default=os.environ.get("CNN_DATA_DIR"), help="folder to write into (default: $CNN_DATA_DIR)"
    )

    ex = sub.add_parser(
        "export",
        help="export a saved model with a standalone Keras script that retrains it",
        description="Write a zip of the model's .keras file, its card, a standalone training script "
        "(plain Keras/TensorFlow/NumPy, no cnn_core) and a README.txt; or the script "
        "alone with --script-only.",
    )
    ex.add_argument("--model", required=True, help="name of a saved model (see `list`)")
    ex.add_argument("--output", metavar="FILE.zip", help="where to write the zip")
    ex.add_argument("--script-only", metavar="FILE.py", help="where to write the training script alone")

    te = sub.add_parser(
        "teach",
        help="teach a shipped network classes of your own from a folder (or .zip) of pictures",
        description="Train a classifier of your own classes on a shipped network's features (transfer learning, "
        "seconds on a CPU): PICTURES is a folder, or a .zip of one, with one sub-folder of pictures per class "
        "(2 to 10 classes, at least 3 pictures each). Prints the accuracy on pictures held out of training and "
        "writes a zip with the network, its card and its 'none of these classes' detector.",
    )
    te.add_argument("pictures", metavar="PICTURES", help="folder of class folders, or a .zip of one")
    te.add_argument("--output", metavar="FILE.zip", required=True, help="where to write the taught network's zip")
    te.add_argument(
        "--backbone", help="shipped network to learn from (default: the Photo page's, the best CIFAR-10 one)"
    )
    te.add_argument("--seed", type=_whole_number, default=0)

    li = sub.add_parser(
        "litert",
        help="write each saved model's LiteRT file beside it, which serves predictions without TensorFlow",
        description="Write NAME.tflite beside each named model of the runs folder (every one by default) and "
        "record it in the model's card. For the shipped models: CNN_RUNS_DIR=trained_models.",
    )
    li.add_argument("names", nargs="*", metavar="NAME", help="models of the runs folder (default: all of them)")
    return parser


class _ProgressPrinter:
    """Draws a Keras progress bar per epoch from the trainer's events."""

    def __init__(self):
        from keras.utils import Progbar

        self.Progbar, self.bar = Progbar, None

    def __call__(self, event):
        kind = event["type"]
        if kind == "start":
            replicas = event.get("replicas", 1)
            print(
                f"Training '{event['name']}': {event['arch']} on {event['dataset']}, {event['params']:,} parameters "
                f"in {event['precision']}, "
                f"{event['train_size']:,} training / {event['val_size']:,} validation images"
                + (f", {replicas} replicas." if replicas > 1 else "."),
                flush=True,
            )
        elif kind == "batch":
            if self.bar is None or event["step"] == 1:
                print(f"Epoch {event['epoch']}/{event['epochs']}", flush=True)
                self.bar = self.Progbar(event["steps"], stateful_metrics=["loss", "accuracy", "img/s", "eta_run"])
            self.bar.update(
                event["step"],
                [("loss", event["loss"]), ("accuracy", event["accuracy"]), ("img/s", event["images_per_sec"])],
            )
        elif kind == "epoch":
            val = (
                ""
                if event["val_accuracy"] is None
                else f"  val_loss {event['val_loss']:.4f}  val_accuracy {event['val_accuracy']:.4f}"
            )
            print(
                f"  epoch {event['epoch']}: {event['seconds']:.1f}s  lr {event['lr']:.2e}{val}  "
                f"(run ETA {event['eta']:.0f}s)",
                flush=True,
            )
        elif kind == "lr_change":
            from cnn_core.train.lr_control import describe_change

            print(f"\n  learning rate changed at {describe_change(event)}", flush=True)
        elif kind == "warning":
            print(f"\n  warning: {event['message']}", flush=True)
        elif kind == "end":
            print(event["message"], flush=True)


def train_config(args) -> dict:
    """The run's hyperparameters from the arguments, validated (before TensorFlow loads)."""
    from cnn_core.train.recipes import resolve_config, validate_config

    if args.resume:
        # A resumed run keeps its saved hyperparameters; only an explicit --epochs extends it.
        if args.epochs is not None:
            validate_config({**resolve_config(args.dataset, args.arch), "epochs": args.epochs})
        return {"epochs": args.epochs} if args.epochs else {}
    return resolve_config(
        args.dataset,
        args.arch,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        subset=args.subset,
        seed=args.seed,
        val_size=args.val_size,
        precision=args.precision,
        no_augment=args.no_augment,
        switches=args.switches,
        augment={"rotation": args.rotation, "shift": args.shift, "zoom": args.zoom, "flip": args.flip},
    )


def cmd_train(args) -> int:
    from cnn_core.train.cards import STATUS_NOTHING_SAVED
    from cnn_core.train.training import train

    config = args.config
    command = _command_line(args)
    stop = threading.Event()
    probe = None
    if args.probe_image and not args.resume:  # a resumed run keeps the probe it started with
        from cnn_core.data.preprocess import load_image, preprocessor

        probe = preprocessor(config["dataset"]).from_image(load_image(args.probe_image))
    try:
        result = train(
            config,
            args.resume or args.name,
            listener=_ProgressPrinter(),
            stop_event=stop,
            data_dir=args.data_dir,
            command=command,
            resume=bool(args.resume),
            overwrite=args.overwrite,
            strategy=args.strategy,
            probe=probe,
        )
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        return 130
    if result.status == STATUS_NOTHING_SAVED:
        return 1
    print(f"Saved to {result.store.model_path(result.name)}")
    return 0


def cmd_lr(args) -> int:
    from cnn_core.train.lr_control import request_lr_change

    path = request_lr_change(args.run, multiply=args.multiply, set_to=args.set)
    asked = (
        f"multiply its learning rate by {args.multiply:g}"
        if args.multiply is not None
        else f"set its learning rate to {args.set:g}"
    )
    print(f"Asked run '{args.run}' to {asked} from its next batch ({path}).")
    return 0


def cmd_evaluate(args) -> int:
    from cnn_core.analysis.evaluation import evaluate_predictor
    from cnn_core.data.datasets import load_dataset
    from cnn_core.predict.inference import load_ensemble, tta_label

    tta = {"auto": None, "off": 0, "on": 1, "flip": 1, "shifts": 2}[args.tta]
    predictor = load_ensemble(args.model, tta=tta)
    data = load_dataset(predictor.info.name, args.data_dir)
    result = evaluate_predictor(predictor, data)
    kind = f"ensemble of {len(predictor.members)}" if len(predictor.members) > 1 else "model"
    print(
        f"{predictor.name} ({kind}): test accuracy {result['accuracy']:.2%}, loss {result['loss']:.4f} on "
        f"{result['test_size']:,} {predictor.info.name} test images (TTA {tta_label(predictor.tta, predictor.info)})"
    )
    report = result["report"]
    print(f"{'class':>14} {'precision':>9} {'recall':>7} {'f1':>7} {'support':>8}")
    for cls in predictor.info.class_names:
        row = report[cls]
        print(f"{cls:>14} {row['precision']:9.4f} {row['recall']:7.4f} {row['f1-score']:7.4f} {row['support']:8.0f}")
    if args.output:
        from pathlib import Path

        from cnn_core.base.store import atomic_write_json

        atomic_write_json(Path(args.output), result)
        print(f"Saved {args.output}")
    if args.save:
        from cnn_core.base.errors import ModelStoreError
        from cnn_core.base.store import find_model

        if len(args.model) > 1:
            raise ModelStoreError("--save stores an evaluation beside one model; use --output FILE for an ensemble.")
        store = find_model(args.model[0])
        if not store.writable:
            raise ModelStoreError(
                f"'{args.model[0]}' is a shipped model; its store {store.root} is read-only. "
                "Use --output FILE to write the evaluation elsewhere."
            )
        print(f"Saved {store.save_json(args.model[0], '.eval.json', result)}")
    return 0


def cmd_predict(args) -> int:
    from cnn_core.base.errors import ImageError
    from cnn_core.predict.inference import load_predictor, top_k
    from cnn_core.predict.ood import WHAT_IT_IS_NOT

    predictor = load_predictor(args.model, calibrated=True, keras=False)  # a committed LiteRT file needs no TensorFlow
    failures = 0
    for path in args.files:
        try:
            sample, probs = predictor.predict_file(path)
        except ImageError as err:
            print(f"{path}: {err}", file=sys.stderr)
            failures += 1
            continue
        foreign = predictor.looks_foreign(sample[None])
        foreign = None if foreign is None else bool(foreign[0])
        if args.json:
            print(
                json.dumps(
                    {
                        "file": path,
                        "model": predictor.name,
                        "precision": predictor.precision,
                        "runtime": predictor.runtime,
                        "top": predictor.info.class_names[int(probs.argmax())],
                        "probabilities": dict(zip(predictor.info.class_names, map(float, probs), strict=False)),
                        "out_of_distribution": foreign,
                    }
                )
            )
            continue
        ranked = ", ".join(f"{name} {p:.1%}" for name, p in top_k(probs, predictor.info.class_names, args.top))
        warning = (
            f"  (warning: {WHAT_IT_IS_NOT[predictor.info.name]} The guess is probably meaningless.)" if foreign else ""
        )
        print(f"{path}: {ranked}{warning}")
    return EXIT_USAGE if failures else 0


def cmd_calibrate(args) -> int:
    from cnn_core.base.errors import ModelStoreError
    from cnn_core.base.store import find_model, runs_store
    from cnn_core.data.datasets import load_dataset
    from cnn_core.predict.calibration import calibrate_temperature
    from cnn_core.predict.inference import load_inference_model, load_predictor
    from cnn_core.predict.ood import calibrate, save_detector

    runs = runs_store()
    store = runs if runs.has(args.model) else find_model(args.model)  # a run may share a shipped model's name
    if not store.writable:
        raise ModelStoreError(f"'{args.model}' is a shipped model; its store {store.root} is read-only.")
    card = store.load_card(args.model)
    model = load_inference_model(store, args.model)
    data = load_dataset(card["dataset"], args.data_dir)
    detector, ood = calibrate(model, card, data, args.pass_rate)
    ood["command"] = _command_line(args)
    save_detector(store, args.model, detector)
    print(
        f"{args.model}: fitted on {ood['fitted_on']}, calibrated on the {ood['calibrated_on']}: "
        f"{ood['val_flagged']:.1%} of those flagged as not {card['dataset']} images."
    )
    scaling = calibrate_temperature(load_predictor(args.model, store=store).predict_samples, card, data)
    scaling["command"] = ood["command"]
    store.save_json(args.model, ".json", {**card, "ood": ood, "calibration": scaling})
    print(
        f"{args.model}: temperature {scaling['temperature']:.3f} (fitted on the {scaling['fitted_on']}); expected "
        f"calibration error on the test set {scaling['before']['ece']:.2%} before, {scaling['after']['ece']:.2%} after."
    )
    return 0


def labels_audit(args) -> dict:
    """The audit the `labels` arguments ask for (TensorFlow is loaded by then)."""
    from cnn_core.base.errors import ConfigError
    from cnn_core.base.store import find_model
    from cnn_core.data.datasets import load_dataset
    from cnn_core.studio.label_issues import test_audit, train_audit
    from cnn_core.train.recipes import resolve_config

    if not (args.model or args.dataset):
        raise ConfigError("Give --model NAME (its test set, or its dataset's training set) or --dataset NAME.")
    dataset = find_model(args.model).load_card(args.model)["dataset"] if args.model else args.dataset
    if args.dataset and args.dataset != dataset:
        raise ConfigError(f"Model '{args.model}' was trained on {dataset}, not {args.dataset}.")
    data = load_dataset(dataset, args.data_dir)
    if args.split == "test":
        from cnn_core.predict.inference import load_predictor

        if not args.model:
            raise ConfigError("The test split is judged by a saved model: give --model NAME.")
        return {**test_audit(load_predictor(args.model, calibrated=True), data), "command": _command_line(args)}
    config = resolve_config(dataset, args.recipe, epochs=args.epochs, seed=args.seed, val_size=0)
    say = lambda fold, folds: print(f"Training fold {fold + 1} of {folds} ...", file=sys.stderr, flush=True)
    return train_audit(data, config, args.folds, None if args.json else say, command=_command_line(args))


def cmd_labels(args) -> int:
    from cnn_core.base.store import runs_store
    from cnn_core.data.datasets import dataset_info
    from cnn_core.studio.label_issues import audit_name

    audit = labels_audit(args)
    path = runs_store().save_json(*audit_name(audit["split"], audit.get("model"), audit["dataset"]), audit)
    if args.json:
        print(json.dumps(audit))
        return 0
    names = dataset_info(audit["dataset"]).class_names
    print(
        f"{audit['dataset']} {audit['split']} set, judged by {audit['judged_by']} (held-out accuracy "
        f"{audit['heldout_accuracy']:.2%}): the model disputes {audit['disputed']:,} of {audit['images']:,} labels; "
        f"confident learning flags {audit['flagged']:,} (*) and estimates {audit['estimated_label_errors']:,} "
        f"wrong labels. Saved {path}"
    )
    print(f"{'rank':>4} {'image':>6} {'given label':>14} {'p(given)':>9} {'model says':>14} {'p':>6}")
    for rank, row in enumerate(audit["suspects"][: args.top], 1):
        print(
            f"{rank:4d} {row['index']:6d} {names[row['given']]:>14} {row['given_probability']:9.2%} "
            f"{names[row['suggested']]:>14} {row['suggested_probability']:6.1%}{' *' if row['flagged'] else ''}"
        )
    return 0


def cmd_list(args) -> int:
    from cnn_core.studio.catalog import list_models

    rows = []
    for model in list_models(include_damaged=True):
        if "error" in model:
            rows.append((model["name"], model["store"], "?", "?", "?", "?", "?", f"damaged card: {model['error']}"))
            continue
        acc = model.get("test_accuracy")
        rows.append(
            (
                model["name"],
                model["store"],
                model.get("dataset", "?"),
                model.get("architecture", "?"),
                f"{acc:.2%}" if acc is not None else "-",
                f"{model.get('params', 0):,}",
                f"{model.get('train_seconds', 0) / 60:.1f} min",
                model["display_status"],
            )
        )
    if not rows:
        print("No saved models yet. Train one with: python -m cnn_core train --dataset mnist --epochs 1")
        return 0
    header = ("name", "store", "dataset", "arch", "test acc", "params", "train time", "status")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=False)).rstrip())
    return 0


def cmd_download(args) -> int:
    from cnn_core.base.errors import DataError
    from cnn_core.data.datasets import DATASETS, dataset_available, download

    if not args.data_dir:
        raise DataError("Say where to put the files: --data-dir DIR (or set CNN_DATA_DIR).")
    for name in args.dataset or list(DATASETS):
        if dataset_available(name, args.data_dir):
            print(f"{name}: already in {args.data_dir}")
            continue
        print(f"{name}: saved {download(name, args.data_dir)}", flush=True)
    return 0


def cmd_export(args) -> int:
    from cnn_core.base.errors import ConfigError
    from cnn_core.export.export import write_export

    if not (args.output or args.script_only):
        raise ConfigError("Say where to write the export: --output FILE.zip, or --script-only FILE.py.")
    if args.output:
        print(f"Saved {write_export(args.model, args.output)}")
    if args.script_only:
        print(f"Saved {write_export(args.model, args.script_only, script_only=True)}")
    return 0


def cmd_teach(args) -> int:
    from cnn_core.export.lesson import write_lesson_zip
    from cnn_core.teach.learner import teach
    from cnn_core.teach.pictures import read_pictures

    pictures = read_pictures(args.pictures)
    print(f"{len(pictures.classes)} classes: " + ", ".join(f"{n} ({c})" for n, c in pictures.counts().items()))
    taught = teach(pictures, args.backbone, {"seed": args.seed}, listener=_lesson_printer)
    taught.card["command"] = _command_line(args)
    card = taught.card
    estimate, warning = card["estimate"], card["none_of_these"]
    print(f"Accuracy on pictures held out of training: {estimate['accuracy']:.1%} ({estimate['method']}).")
    if warning.get("auroc") is not None:
        print(
            f"'None of these classes' warning: AUROC {warning['auroc']:.3f} against {warning['foreign_photos']} "
            f"CIFAR-10 test photos, {warning['foreign_flagged']:.0%} of them flagged."
        )
    print(f"Taught in {card['seconds']:.1f} s on {card['backbone']}.")
    print(f"Saved {write_lesson_zip(taught, args.output)}")
    return 0


def _lesson_printer(event: dict) -> None:
    if event["type"] == "phase":
        print(f"  {event['phase']}…", flush=True)


def cmd_litert(args) -> int:
    import numpy as np

    from cnn_core.base.errors import ConfigError, ModelStoreError
    from cnn_core.base.store import runs_store
    from cnn_core.data.datasets import dataset_info
    from cnn_core.predict.inference import load_inference_model
    from cnn_core.predict.lite import litert_available, write_litert_file

    store = runs_store()
    names = args.names or store.names()
    if not litert_available():
        raise ConfigError("Writing LiteRT files needs the ai-edge-litert package (pip install ai-edge-litert).")
    missing = [name for name in names if not store.has(name)]
    if missing or not names:
        raise ModelStoreError(
            f"No model named {', '.join(missing)} in {store.root}." if missing else f"No models in {store.root}."
        )
    for name in names:
        info = dataset_info(store.load_card(name)["dataset"])
        # Any images tell the outputs apart: random ones, so no dataset is needed.
        samples = np.random.default_rng(0).integers(0, 256, (8, *info.raw_shape), dtype=np.uint8)
        entry = write_litert_file(store, name, load_inference_model(store, name), samples)
        print(f"{name}: wrote {entry['file']} ({len(entry['features'])} outputs, the probabilities last)")
    return 0


COMMANDS = {
    "train": cmd_train,
    "lr": cmd_lr,
    "evaluate": cmd_evaluate,
    "predict": cmd_predict,
    "calibrate": cmd_calibrate,
    "labels": cmd_labels,
    "list": cmd_list,
    "download": cmd_download,
    "export": cmd_export,
    "teach": cmd_teach,
    "litert": cmd_litert,
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)  # argument mistakes exit here, before TensorFlow is loaded
    args.argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if args.command == "train":
            args.config = train_config(args)  # a wrong recipe value exits here, before TensorFlow loads
        if args.command not in ("list", "export", "lr", "predict"):  # none of them needs TensorFlow (see predict)
            from cnn_core.base.runtime import import_tensorflow_quietly

            import_tensorflow_quietly()
        return COMMANDS[args.command](args)
    except CnnError as err:
        print(f"{parser.prog} {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
