"""`strategy: parameter_server`: the coordinator's scheduling loop over a ClusterCoordinator.

The successor of the tutorials' between-graph replication with `tf.train.replica_device_setter`:
variables live on the ps tasks, workers run steps asynchronously, and the coordinator (the
chief) schedules them with `coordinator.schedule`. Everything else is the ordinary `Trainer`:
the same run setup and checkpoint layout, the same step (runners/step.py, run on the workers),
validation, best checkpoints, early stopping, the NaN policy and the run files. The ps and
worker processes only run a `tf.distribute.Server`.

Start it with `tftrain launch --workers 2 --ps 1 CONFIG` or by hand, one process per task,
each with TF_CONFIG naming the whole cluster and its own task (see docs/devices.md).

Training is asynchronous, so results differ from single-device training. Every worker reads
its own shuffled, repeated copy of the training split; an "epoch" here is `steps_per_epoch`
scheduled steps, not an exact pass over the data.
"""

from __future__ import annotations

import os

import numpy as np

from tftrain import devices
from tftrain.errors import ConfigError
from tftrain.lazy import tf
from tftrain.runners.progress import say
from tftrain.runners.step import TrainStep
from tftrain.runners.trainer import Trainer


class TaskServer:
    """A ps or worker task: `fit` serves the coordinator until the launcher or the user stops it."""

    def __init__(self, kind: str, index: int, *, quiet: bool = False):
        self.kind, self.index, self.quiet = kind, index, quiet

    def fit(self) -> dict:
        say(f"{self.kind} {self.index}: serving for the coordinator", quiet=self.quiet)
        cluster = tf.distribute.cluster_resolver.TFConfigClusterResolver()
        server = tf.distribute.Server(
            cluster.cluster_spec(), job_name=self.kind, task_index=self.index, start=True
        )
        server.join()
        return {}


def parameter_server_task(config, run_dir, *, quiet: bool = False, local: bool = False):
    """This process's part: a `TaskServer` for ps/worker tasks, the coordinator for the chief.

    `local` (smoke tests) starts one worker and one ps inside this process when TF_CONFIG
    names no cluster.
    """
    if local and not os.environ.get("TF_CONFIG"):
        return ParameterServerTrainer(config, run_dir, quiet=quiet, local=True)
    devices.read_tf_config("parameter_server")
    kind, index, chief = devices.task_role()
    os.environ.setdefault("GRPC_FAIL_FAST", "use_caller")  # fail fast on dead workers
    if kind in ("ps", "worker"):
        devices.apply(config.device, report=lambda text: say(text, quiet=quiet))
        return TaskServer(kind, index, quiet=quiet)
    if not chief:
        raise ConfigError(f"config error: parameter_server: unexpected task type {kind!r}")
    return ParameterServerTrainer(config, run_dir, quiet=quiet)


class ParameterServerTrainer(Trainer):
    """The `Trainer` with its epochs scheduled on the workers by a ClusterCoordinator."""

    def __init__(self, config, run_dir, *, quiet: bool = False, local: bool = False):
        train = config.train
        unsupported = [
            key
            for key, value in [
                ("train.ema_decay", train.ema_decay),
                ("train.grad_accumulation_steps", train.grad_accumulation_steps > 1),
                ("train.mixed_precision", train.mixed_precision),
                ("device.jit_compile", config.device.jit_compile),
            ]
            if value
        ]
        if unsupported:
            raise ConfigError(
                f"config error: {', '.join(unsupported)} not supported with "
                f"device.strategy: parameter_server; use multi_worker or mirrored"
            )

        def make_strategy():
            if local:
                resolver = in_process_cluster()
            else:
                resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
            return tf.distribute.ParameterServerStrategy(resolver)

        super().__init__(config, run_dir, quiet=quiet, make_strategy=make_strategy)
        self.coordinator = tf.distribute.coordinator.ClusterCoordinator(self.setup.strategy)
        self.worker_step = TrainStep(self.state, train)
        self._scheduled = tf.function(self._run_on_worker)
        self._iterator = None

    def _make_step(self):
        return None  # the coordinator never trains locally; the workers run `worker_step`

    # --- steps scheduled on the workers ---------------------------------------------------

    def _per_worker_iterator(self):
        if self._iterator is None:
            setup = self.setup

            def make():
                shuffle = self.config.train.shuffle
                data = setup.dataset.batches("train", setup.batch_size, epoch=0, shuffle=shuffle)
                return data.repeat().shuffle(64) if shuffle else data.repeat()

            self._iterator = iter(self.coordinator.create_per_worker_dataset(make))
        return self._iterator

    def _run_on_worker(self, iterator):
        """One step on a worker. The update runs in a second `strategy.run` under `if finite:`
        outside it: the optimizer's synchronisation may not sit inside a replica's `if`."""
        features, labels = next(iterator)
        run, step = self.setup.strategy.run, self.worker_step
        objective, gradients, sums = run(self._gradients, args=(features, labels))
        finite = step.is_finite(objective, gradients)
        if finite:
            run(step.apply, args=(gradients,))
        return sums, finite

    def _gradients(self, features, labels):
        objective, gradients, sums, _ = self.worker_step.objective_and_gradients(
            features, labels, ()
        )
        return objective, gradients, sums

    # --- the coordinator's epoch ----------------------------------------------------------

    def _train_one_epoch(self) -> None:
        """Schedule the rest of this epoch's steps on the workers, a chunk at a time: up to
        the next log, checkpoint or validation boundary, as the single-device loop syncs."""
        state = self.state
        with self._epoch() as on_sync:
            while True:
                step = int(state.step.numpy())
                left = self.setup.steps_per_epoch - int(state.step_in_epoch.numpy())
                count = min(self.loop.next_chunk_size(step), left)
                if count <= 0:
                    break
                iterator = self._per_worker_iterator()
                results = [
                    self.coordinator.schedule(self._scheduled, args=(iterator,))
                    for _ in range(count)
                ]
                self.coordinator.join()
                totals = {name: np.zeros(2) for name in self.loop.metric_names}
                for offset, result in enumerate(results, start=1):
                    sums, finite = result.fetch()
                    self.guard.record(tf.constant(bool(finite)), step + offset)
                    if finite:
                        for name, value in sums.items():
                            totals[name] += np.asarray(value)
                state.step.assign_add(count)
                state.step_in_epoch.assign_add(count)
                if not on_sync(step + count, totals) or count == left:
                    break


def in_process_cluster(*, workers: int = 1, ps: int = 1):
    """Worker and ps servers inside this process on free 127.0.0.1 ports, and a resolver for
    them: how `fit --smoke` runs the parameter-server path without TF_CONFIG (the TF
    tutorial's `create_in_process_cluster`). Made once; the servers live as long as the
    process, and every later trainer in it uses the same cluster."""
    from tftrain.launch import free_ports

    if _servers:
        return _servers[0]

    ports = iter(free_ports(workers + ps))
    cluster = {
        "worker": [f"127.0.0.1:{next(ports)}" for _ in range(workers)],
        "ps": [f"127.0.0.1:{next(ports)}" for _ in range(ps)],
    }
    spec = tf.train.ClusterSpec(cluster)
    config = tf.compat.v1.ConfigProto()
    config.inter_op_parallelism_threads = workers + 1  # enough on small machines
    resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(spec, rpc_layer="grpc")
    _servers.append(resolver)
    _servers.extend(
        tf.distribute.Server(spec, job_name=kind, task_index=i, config=config, start=True)
        for kind, addresses in cluster.items()
        for i in range(len(addresses))
    )
    return resolver


_servers: list = []  # the resolver, then servers that must outlive every strategy using them
