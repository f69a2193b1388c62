"""Multi-worker clusters a scheduler started: `device.cluster: slurm | tf_config`.

`slurm` builds TF_CONFIG from Slurm's environment. TensorFlow's `SlurmClusterResolver` is not
used: it hands out one task per GPU (none on a CPU node), orders hosts alphabetically rather
than in Slurm's rank order, and its host-list parser does not take several bracket ranges
(`rack[1-2]-n[01-04]`). So the few lines it needs are here: Slurm's default (block)
distribution gives ranks node after node in node-list order, and each node's tasks take ports
`cluster_port`, `cluster_port + 1`, ... Task 0 is the chief (it alone writes the run).

`tf_config` (the default when TF_CONFIG is set) uses TF_CONFIG as a Kubernetes manifest or any
other launcher wrote it.
"""

from __future__ import annotations

import itertools
import json
import os
import re

from tftrain.errors import ConfigError


def expand_nodelist(text: str) -> list[str]:
    """`node[01-03,7],gpu5` -> node01 node02 node03 node7 gpu5, in order; several bracket
    groups in one name multiply (`r[1-2]-n[1-2]` -> r1-n1 r1-n2 r2-n1 r2-n2)."""
    hosts = []
    names = re.findall(r"(?:[^,\[\]]|\[[^\[\]]*\])+", text)
    if ",".join(names) != text:  # an unclosed bracket or an empty name
        raise ConfigError(f"config error: cannot read the Slurm node list {text!r}")
    for name in names:
        pieces = re.split(r"\[([^\]]*)\]", name)
        choices = [
            [piece] if i % 2 == 0 else _expand_range(piece, text) for i, piece in enumerate(pieces)
        ]
        hosts += ["".join(combo) for combo in itertools.product(*choices)]
    if not hosts or any(not host or "[" in host or "]" in host for host in hosts):
        raise ConfigError(f"config error: cannot read the Slurm node list {text!r}")
    return hosts


def _expand_range(text: str, whole: str) -> list[str]:
    values = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ConfigError(f"config error: cannot read the Slurm node list {whole!r}")
        width = len(low)  # node[01-10]: leading zeros are kept
        values += [str(i).zfill(width) for i in range(int(low), int(high or low) + 1)]
    return values


def expand_tasks_per_node(text: str) -> list[int]:
    """`2(x3),1` -> [2, 2, 2, 1]."""
    counts = []
    for part in text.split(","):
        match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if not match:
            raise ConfigError(f"config error: cannot read Slurm's tasks per node {text!r}")
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts


def _slurm(environ, *names) -> str:
    for name in names:
        if environ.get(name):
            return environ[name]
    raise ConfigError(
        f"config error: device.cluster: slurm needs {' or '.join(names)} in the environment; "
        f"start `tftrain fit` with srun inside an sbatch job (see docs/devices.md)"
    )


def slurm_tf_config(environ, port: int) -> str:
    """TF_CONFIG for this Slurm task: every task a worker, rank SLURM_PROCID."""
    hosts = expand_nodelist(_slurm(environ, "SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST"))
    counts = expand_tasks_per_node(
        _slurm(environ, "SLURM_STEP_TASKS_PER_NODE", "SLURM_TASKS_PER_NODE")
    )
    if len(counts) != len(hosts):
        raise ConfigError(
            f"config error: Slurm lists {len(hosts)} node(s) but tasks per node for "
            f"{len(counts)}: {counts}"
        )
    workers = [
        f"{host}:{port + i}"
        for host, count in zip(hosts, counts, strict=True)
        for i in range(count)
    ]
    total = int(_slurm(environ, "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"))
    rank = int(_slurm(environ, "SLURM_PROCID"))
    if total != len(workers) or not 0 <= rank < total:
        raise ConfigError(
            f"config error: Slurm's environment does not add up: {total} task(s), rank {rank}, "
            f"but the node list gives {len(workers)}"
        )
    return json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": rank}})


def join_cluster(config, environ=os.environ):
    """Set TF_CONFIG for `device.cluster` and return the config with a multi-worker strategy
    (a `default` strategy in a cluster becomes `multi_worker`)."""
    import dataclasses

    device = config.device
    kind = device.cluster
    if kind == "auto":  # TF_CONFIG set: a cluster, unless the config asks for one machine
        if not environ.get("TF_CONFIG") or device.strategy != "default":
            return config
        kind = "tf_config"
    if kind == "none":
        return config
    if kind == "slurm":
        if device.strategy == "parameter_server":
            raise ConfigError(
                "config error: device.cluster: slurm makes every task a worker; use "
                "device.strategy: multi_worker (parameter_server needs TF_CONFIG with ps tasks)"
            )
        environ["TF_CONFIG"] = slurm_tf_config(environ, device.cluster_port)
    elif not environ.get("TF_CONFIG"):
        raise ConfigError(
            "config error: device.cluster: tf_config needs the TF_CONFIG environment variable "
            "(a Kubernetes manifest sets it per pod; see docs/devices.md)"
        )
    if device.strategy == "default":
        return config.replace(device=dataclasses.replace(device, strategy="multi_worker"))
    if device.strategy not in ("multi_worker", "parameter_server"):
        raise ConfigError(
            f"config error: device.cluster: {kind} trains with device.strategy: multi_worker, "
            f"not {device.strategy}"
        )
    return config
