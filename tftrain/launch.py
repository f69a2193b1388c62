"""`tftrain launch`: start a local cluster of `tftrain fit` processes with the right TF_CONFIG.

Each task gets a free 127.0.0.1 port; its output is streamed line by line with a `[worker 1]`
prefix. If any task fails, the others are stopped and the launch fails. For
`parameter_server`, the chief runs the coordinator and the ps/worker tasks serve until the
chief is done, then they are stopped.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import ExitStack

from tftrain.errors import ConfigError, TftrainError


class LaunchError(TftrainError):
    """A launched task failed; the others were stopped (exit code 1)."""


def free_ports(count: int) -> list[int]:
    """Ports the OS reports free on 127.0.0.1 (all held open at once so they differ)."""
    with ExitStack() as stack:
        sockets = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]


def cluster_tasks(strategy: str, workers: int, ps: int) -> list[tuple[str, str]]:
    """[(task name, TF_CONFIG)] for every process of the local cluster."""
    if strategy == "parameter_server":
        ports = iter(free_ports(1 + workers + ps))
        cluster = {
            "chief": [f"127.0.0.1:{next(ports)}"],
            "worker": [f"127.0.0.1:{next(ports)}" for _ in range(workers)],
            "ps": [f"127.0.0.1:{next(ports)}" for _ in range(ps)],
        }
    else:
        cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(workers)]}
    tasks = []
    for kind, addresses in cluster.items():
        for index in range(len(addresses)):
            task = {"cluster": cluster, "task": {"type": kind, "index": index}}
            tasks.append((f"{kind} {index}", json.dumps(task)))
    return tasks


def _raise_interrupt(signal_number, frame):
    raise KeyboardInterrupt


class Task:
    """One child process whose output lines are echoed with a prefix."""

    def __init__(self, name: str, command: list[str], env: dict, echo, *, serves: bool):
        self.name = name
        self.serves = serves  # parameter_server's ps and worker tasks run until stopped
        self.process = subprocess.Popen(
            command,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            start_new_session=True,  # its own process group, so stopping it stops its children
        )
        self.reader = threading.Thread(target=self._pump, args=(echo,), daemon=True)
        self.reader.start()

    def _pump(self, echo) -> None:
        for line in self.process.stdout:
            echo(f"[{self.name}] {line.rstrip()}")

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass


def launch(
    config_file,
    *,
    workers: int,
    ps: int = 0,
    overrides=(),
    run_dir=None,
    quiet: bool = False,
    echo=None,
    poll_seconds: float = 0.2,
) -> str:
    """Run the cluster to completion; returns the run directory or raises LaunchError."""
    from pathlib import Path

    from tftrain.config import load_config

    config = load_config(config_file, overrides)
    overrides = list(overrides)
    strategy = config.device.strategy
    if strategy not in ("multi_worker", "parameter_server"):
        strategy = "multi_worker"
        overrides.append("device.strategy=multi_worker")
    if strategy == "parameter_server":
        ps = ps or 1
    elif ps:
        raise ConfigError("usage error: --ps needs device.strategy: parameter_server")
    if workers < 1:
        raise ConfigError("usage error: --workers must be at least 1")
    run_dir = str(run_dir or Path("runs") / config.name)
    lock = threading.Lock()

    def default_echo(line: str) -> None:
        with lock:
            print(line, flush=True)

    echo = echo or default_echo
    command = [sys.executable, "-m", "tftrain", "fit", str(config_file), "--run-dir", run_dir]
    for override in overrides:
        command += ["--set", override]
    if quiet:
        command.append("--quiet")
    tasks: list[Task] = []
    tf_configs = cluster_tasks(strategy, workers, ps)
    previous = None
    if threading.current_thread() is threading.main_thread():
        # `kill LAUNCHER` stops the tasks too (they run in their own process groups).
        previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        for name, tf_config in tf_configs:
            env = {**os.environ, "TF_CONFIG": tf_config, "PYTHONUNBUFFERED": "1"}
            serves = strategy == "parameter_server" and not name.startswith("chief")
            task = Task(name, command, env, echo, serves=serves)
            tasks.append(task)
            echo(f"[launch] {name}: pid {task.process.pid}, TF_CONFIG={tf_config}")
        while True:
            for task in tasks:
                code = task.process.poll()
                if code is not None and (code != 0 or task.serves):
                    raise LaunchError(
                        f"{task.name} (pid {task.process.pid}) exited with code {code}; "
                        f"stopped the other tasks. Run the same command again to resume from "
                        f"the chief's checkpoint in {run_dir}."
                    )
            finishers = [task for task in tasks if not task.serves]
            if all(task.process.poll() == 0 for task in finishers):
                break
            time.sleep(poll_seconds)
    finally:
        for task in tasks:
            task.stop()
        for task in tasks:
            task.reader.join(timeout=5)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    echo(f"[launch] all {len(finishers)} training task(s) finished; run directory {run_dir}")
    return run_dir
