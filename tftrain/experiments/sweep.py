"""`tftrain sweep`: run a config's trials as ordinary `tftrain fit` processes and rank them.

Each trial is a normal run directory directly under the sweep's folder, trained by its own
`tftrain fit` process (`--parallel P` at once, the CPU threads split between them). So a
finished trial is skipped when the sweep runs again and an unfinished one resumes exactly
from its checkpoint. Ctrl-C (or SIGTERM) is passed on to the running trials, which save a
checkpoint and exit; the sweep then writes its results and exits 130 (143).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tftrain.errors import ConfigError, TftrainError
from tftrain.experiments import halving
from tftrain.experiments.runs_table import describe_run, lock_holder
from tftrain.runners.stopping import Interrupted, StopSignal


class SweepFailed(TftrainError):
    """Some trials failed (exit 1); the others finished and are ranked."""


def sweep_metric(config_file, overrides, metric: str | None, mode: str | None):
    """(metric, mode, overrides) for every trial: `checkpoint.best_metric/best_mode` are set to
    the sweep's metric so each trial's best/ holds its best validation value of it."""
    from tftrain.config import load_config
    from tftrain.registry import models

    config = load_config(config_file, overrides)
    metric = metric or config.checkpoint.best_metric
    if not metric:
        raise ConfigError("usage error: the config has no checkpoint.best_metric; pass --metric")
    if mode is None:
        mode = config.checkpoint.best_mode
        if mode == "auto":
            higher = metric in models.get(config.model.type).higher_is_better
            mode = "max" if higher else "min"
    extra = [f"checkpoint.best_metric={metric}", f"checkpoint.best_mode={mode}"]
    return metric, mode, [*overrides, *extra]


class Sweep:
    """The trials of one sweep, their processes, and the files that record them."""

    def __init__(
        self, config_file, trials, *, overrides, metric, mode, out, parallel, echo, halving=None
    ):
        from tftrain.config import load_config

        self.config_file = str(config_file)
        self.trials = trials
        self.overrides = list(overrides)
        self.metric, self.mode = metric, mode
        self.out = Path(out)
        self.parallel = parallel
        self.echo = echo
        self.halving = halving  # --early-stop: the trials' train.epochs, run in rungs
        for trial in trials:  # every trial's config is valid before any process starts
            load_config(config_file, [*self.overrides, *trial.overrides()])
        self.results: dict[int, dict] = {}
        self.started: dict[int, float] = {}

    # --- processes -------------------------------------------------------------------------

    def _environment(self) -> dict:
        """This process's environment, with the CPU threads split between the trials."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("TF_CONFIG", None)  # a trial is a single-process run
        if self.parallel > 1:
            threads = str(max(1, len(os.sched_getaffinity(0)) // self.parallel))
            for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
                env.setdefault(name, threads)
        return env

    def _start(self, trial, epochs) -> subprocess.Popen:
        run_dir = self.out / trial.name
        run_dir.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "tftrain", "fit", self.config_file]
        command += ["--run-dir", str(run_dir)]  # its log lines go to sweep.log
        rung = [] if epochs is None else [f"train.epochs={epochs}"]
        for override in [*self.overrides, *trial.overrides(), *rung]:
            command += ["--set", override]
        log = (run_dir / "sweep.log").open("a")
        try:
            # Its own session: a terminal's Ctrl-C reaches the sweep, which passes it on once.
            return subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=self._environment(),
                start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()

    def _finished_before(self, trial, epochs) -> bool:
        """Finished (to `epochs`, or stopped early by train.early_stopping) by an earlier run."""
        run_dir = self.out / trial.name
        record_file = run_dir / "run.json"
        if not record_file.exists() or lock_holder(run_dir / ".lock") is not None:
            return False
        record = json.loads(record_file.read_text())
        reached = epochs is None or record.get("epoch", 0) >= epochs or record.get("stopped_early")
        return record.get("status") == "finished" and bool(reached)

    # --- results ---------------------------------------------------------------------------

    def _collect(self, trial, code: int | None) -> dict:
        run_dir = self.out / trial.name
        row = describe_run(run_dir) if (run_dir / "config.yaml").exists() else {}
        best = row.get("best") or {}
        status = row.get("status") or ("failed" if code else "stopped")
        if code not in (None, 0) and status == "finished":
            status = "failed"  # e.g. refused: another process holds this trial's run lock
        result = {
            "trial": trial.index,
            "name": trial.name,
            "values": trial.values,
            "status": status,
            "metric": self.metric,
            "best": best.get("value") if best.get("metric") == self.metric else None,
            "valid": row.get("final", {}).get("valid", {}),
            "test": row.get("final", {}).get("test", {}),
            "step": row.get("step"),
            "wall_seconds": row.get("wall_seconds"),
        }
        if status == "failed":
            result["failure"] = row.get("failure") or _last_line(run_dir / "sweep.log")
        self.results[trial.index] = result
        return result

    def ranked(self) -> list[dict]:
        """Trials best first by the sweep metric; those without a value last, by index."""
        sign = -1 if self.mode == "max" else 1
        return sorted(
            self.results.values(),
            key=lambda r: (
                r["best"] is None,
                r["status"] == "pruned",
                sign * (r["best"] or 0),
                r["trial"],
            ),
        )

    def write_files(self) -> None:
        """sweep.jsonl and sweep.csv, one line per trial in trial order (replaced atomically)."""
        rows = [self.results[i] for i in sorted(self.results)]
        _replace(self.out / "sweep.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
        keys = list(dict.fromkeys(k for trial in self.trials for k in trial.values))
        tests = sorted({name for row in rows for name in row["test"]})
        temporary = self.out / "sweep.csv.tmp"
        with temporary.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(
                ["trial", "name", *keys, "status", f"best {self.metric}"]
                + [f"test {name}" for name in tests]
                + ["wall_seconds"]
            )
            for row in rows:
                writer.writerow(
                    [row["trial"], row["name"], *(json.dumps(row["values"].get(k)) for k in keys)]
                    + [row["status"], row["best"]]
                    + [row["test"].get(name) for name in tests]
                    + [row["wall_seconds"]]
                )
        temporary.replace(self.out / "sweep.csv")

    # --- the loop --------------------------------------------------------------------------

    def run(self) -> list[dict]:
        """Run every trial not finished before; returns the results, best first. With
        `halving`, rounds of successive halving: the worse half stops at each rung."""
        self.out.mkdir(parents=True, exist_ok=True)
        if not self.halving:
            self._round(self.trials, None)
            self.write_files()
            return self.ranked()
        alive = list(self.trials)
        schedule = halving.rungs(self.halving, len(alive))
        for number, epochs in enumerate(schedule, start=1):
            self.echo(f"round {number} of {len(schedule)}: {len(alive)} trial(s) to epoch {epochs}")
            self._round(alive, epochs)
            if epochs == self.halving:
                break
            scores = {
                t.index: halving.score_at(self.out / t.name, self.metric, self.mode, epochs)
                for t in alive
            }
            kept = halving.promoted(alive, scores, self.mode)
            for trial in alive:
                if trial not in kept and self.results[trial.index]["status"] == "finished":
                    self.results[trial.index]["status"] = "pruned"
            alive = kept
        self.write_files()
        return self.ranked()

    def _round(self, trials, epochs, poll_seconds: float = 0.2) -> None:
        """Train `trials` (to `epochs`, else the config's), `parallel` at a time."""
        pending = []
        for trial in trials:
            if self._finished_before(trial, epochs):
                self._collect(trial, 0)
                self.echo(f"[{trial.name}] finished earlier; skipped")
            else:
                pending.append(trial)
        running: dict[int, tuple] = {}
        done = len(trials) - len(pending)
        with StopSignal() as stop:
            try:
                while pending or running:
                    while pending and len(running) < self.parallel and not stop.requested:
                        trial = pending.pop(0)
                        process = self._start(trial, epochs)
                        running[trial.index] = (trial, process, time.perf_counter())
                    if stop.requested:
                        self._stop(running, stop.signal_number)
                        break
                    for index, (trial, process, began) in list(running.items()):
                        code = process.poll()
                        if code is None:
                            continue
                        del running[index]
                        done += 1
                        result = self._collect(trial, code)
                        self.write_files()
                        seconds = time.perf_counter() - began
                        self.echo(self._progress(result, done, len(trials), seconds))
                    time.sleep(poll_seconds)
            finally:
                for _, process, _ in running.values():  # only after a second Ctrl-C
                    _terminate(process)
        if stop.requested:
            self.write_files()
            unfinished = len(self.trials) - sum(
                r["status"] == "finished" for r in self.results.values()
            )
            raise Interrupted(
                f"sweep stopped; {unfinished} trial(s) unfinished in {self.out}. Run the same "
                f"`tftrain sweep` command again to resume them.",
                signal_number=stop.signal_number,
            )

    def _stop(self, running: dict, signal_number) -> None:
        """Pass the signal on; each trial saves a checkpoint at its next step and exits."""
        self.echo(f"stopping {len(running)} running trial(s); they save a checkpoint first")
        for _, process, _ in running.values():
            if process.poll() is None:
                process.send_signal(signal_number)
        for trial, process, _ in list(running.values()):
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                _terminate(process)
            self._collect(trial, process.returncode)
        running.clear()

    def _progress(self, result: dict, done: int, total: int, seconds: float) -> str:
        value = result["best"]
        shown = f"{self.metric} {value:.4f}" if value is not None else result.get("failure", "")
        return f"[{done}/{total}] {result['name']}: {result['status']}  {shown}  ({seconds:.1f} s)"


def _terminate(process) -> None:
    if process.poll() is None:
        process.kill()
        process.wait()


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _replace(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    temporary.replace(path)


def format_ranking(results: list[dict], metric: str) -> str:
    """The ranked table printed at the end: rank, trial, status, metric, test metrics."""
    tests = sorted({name for row in results for name in row["test"]})
    table = [["rank", "trial", "status", f"best {metric}", *(f"test {n}" for n in tests)]]
    for rank, row in enumerate(results, start=1):
        table.append(
            [str(rank), row["name"], row["status"], _cell(row["best"])]
            + [_cell(row["test"].get(name)) for name in tests]
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in table
    )


def _cell(value) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
