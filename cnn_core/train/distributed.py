"""Training on several machines (`--strategy multi_worker`) with Keras's own `fit`.

Keras 3.15's TensorFlow trainer fails under `MultiWorkerMirroredStrategy` as soon as there
is more than one worker (keras-team/keras#20585), in two places:

1. Before the first step, `fit` and `evaluate` build the model's compiled state from one
   batch of the distributed dataset (`_maybe_symbolic_build`), averaging that batch over
   the replicas with `strategy.reduce("MEAN", (images, labels))`. `reduce` takes one value,
   not a tuple: on one machine the strategies hand the tuple back unreduced, which is all
   the build needs (it reads shapes), but with several workers it goes to the collective
   ops, which try to turn the tuple of `PerReplica` values into one tensor —
   "Attempt to convert a value (PerReplica:{...}) ... to a Tensor".
2. Every training and test step's metrics are then averaged across workers with
   `strategy.reduce("MEAN", value, axis=0)`, along a batch axis that a scalar metric does
   not have — "Invalid reduction dimension 0 for input with 0 dimensions".

`prepare_fit` mends both on the model instance (nothing is patched globally, and the model
file is unchanged), so the trainer keeps its callbacks — progress events, the stop signal,
per-epoch checkpoints, resume — and its card. It also shards the datasets across workers
and `stop_agreement` makes every worker stop at the same batch.
"""

from __future__ import annotations

from cnn_core.base.errors import ConfigError

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name: str | None = "default", devices: list[str] | None = None):
    """A tf.distribute strategy by name, or None for the default (one device).

    `mirrored`: synchronous data parallelism over the GPUs of one machine (all of them,
    or `devices`); `multi_worker`: the same across machines, each reading TF_CONFIG.
    """
    import tensorflow as tf

    if name in (None, "default"):
        return None
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"Unknown strategy '{name}'. Choose one of: {', '.join(STRATEGIES)}.")


def distribution_info(strategy) -> dict:
    """What the card records about how a run was spread over devices and machines."""
    if strategy is None:
        return {"strategy": "default", "replicas": 1}
    devices = list(getattr(strategy.extended, "worker_devices", ()) or ())
    return {
        "strategy": type(strategy).__name__,
        "replicas": int(strategy.num_replicas_in_sync),
        "devices": devices,
        **cluster_info(strategy),
    }


def _cluster(strategy):
    """(cluster spec, task type, task index) of a multi-worker strategy, else None."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return None
    return resolver.cluster_spec(), resolver.task_type, resolver.task_id


def worker_count(strategy) -> int:
    """How many machines (processes) train together: 1 unless TF_CONFIG names several."""
    cluster = _cluster(strategy) if strategy is not None else None
    if cluster is None:
        return 1
    spec = cluster[0]
    return max(1, sum(spec.num_tasks(job) for job in ("chief", "worker") if job in spec.jobs))


def cluster_info(strategy) -> dict:
    """What the model card records about the cluster: {} for one-machine strategies."""
    cluster = _cluster(strategy) if strategy is not None else None
    if cluster is None:
        return {}
    _, task_type, task_index = cluster
    info = {"workers": worker_count(strategy)}
    if task_type:  # none without TF_CONFIG
        info["task"] = {"type": task_type, "index": task_index}
    return info


def prepare_fit(model, strategy, *datasets):
    """Make `model.fit(...)` work across several workers; returns `datasets`, sharded.

    A no-op (the datasets come back as they are) unless `strategy` spans several workers.
    """
    if worker_count(strategy) < 2:
        return datasets
    import tensorflow as tf

    if not all(hasattr(model, attr) for attr in ("_maybe_symbolic_build", "_symbolic_build")):
        raise RuntimeError(
            "This Keras version's trainer has changed: cnn_core.train.distributed must be revisited "
            "for multi-worker training."
        )
    model._maybe_symbolic_build = _build_from_local_batch(model, strategy)
    model.train_step = _metrics_with_replica_axis(model.train_step)
    model.test_step = _metrics_with_replica_axis(model.test_step)

    # Every worker runs the same pipeline (same seed, same shuffle order) and keeps only its
    # replicas' parts of each global batch, so a batch is split across the workers as
    # MirroredStrategy splits it across GPUs, and all workers run the same number of steps.
    # (The default, AUTO, tries to shard by file first and logs a warning for every
    # in-memory dataset before falling back to this.)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return tuple(None if ds is None else ds.with_options(options) for ds in datasets)


def _build_from_local_batch(model, strategy):
    """Keras's build-before-fit, fed this worker's first replica's part of the batch:
    building reads only shapes and dtypes, so nothing needs to cross the network."""
    import tensorflow as tf

    def first_local_part(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    def maybe_symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(first_local_part, next(batches))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    return maybe_symbolic_build


def _metrics_with_replica_axis(step):
    """`step` with each scalar metric returned as shape (1,): Keras then averages the
    metrics over every replica on every worker along that axis (see point 2 above), and
    its result is a scalar again."""
    import tensorflow as tf

    def step_with_axis(data):
        return tf.nest.map_structure(lambda value: tf.reshape(value, [1]), step(data))

    return step_with_axis


def stop_agreement(strategy):
    """For a multi-worker run, `any_worker(requested) -> bool`: whether any worker was asked to
    stop. A worker that left `fit` alone would leave the others waiting for it in the next
    collective, so all must stop at the same batch (at the cost of one scalar all-reduce per
    batch). None when there is one worker."""
    if worker_count(strategy) < 2:
        return None
    import tensorflow as tf

    def any_worker(requested: bool) -> bool:
        flags = strategy.experimental_distribute_values_from_function(lambda _: tf.constant(1.0 if requested else 0.0))
        return float(strategy.reduce("SUM", flags, axis=None)) > 0

    return any_worker


__all__ = ["cluster_info", "prepare_fit", "stop_agreement", "worker_count"]
