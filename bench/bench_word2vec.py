"""word2vec race: tftrain vs gensim on the same corpus, settings and threads; plus memory.

    python -m bench word2vec                      # every race, runs() alternated pairs each
    python -m bench.bench_word2vec --no-process   # only the in-process races (and memory)

The corpus is ../shared/data/ptb/ptb.train.txt when present, else a synthetic Zipfian text
written to a temporary file. Settings are configs/word2vec_ptb.yaml's: skip-gram, 100
dimensions, window 5, 5 negatives, min_count 5, sample 1e-3, linear learning rate from 0.025.
Each race alternates tftrain and gensim (tftrain first); a run's ratio is gensim's seconds over
tftrain's for the same corpus words, so above 1 means tftrain is faster.

- "1 epoch" and "5 epochs", in-process: both libraries imported and the fused op built before
  the clock starts; the clock covers the vocabulary, tftrain's graph tracing and training. The
  5-epoch race runs twice as many pairs, scores both tools' vectors on the analogy questions
  (the same evaluator; mean and standard error over the seeds) and prints nearest neighbours
  of a few words.
- "whole process": `tftrain fit configs/word2vec_ptb.yaml` on the corpus repeated ten times
  (8.9M words for PTB), 1 epoch, against bench/gensim_word2vec.py, each timed from process
  start to exit. Their peak RSS is reported too.
- memory: peak RSS of a process that counts the vocabulary and streams every training batch,
  for the corpus and for the corpus repeated ten times (flat = streaming).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import record, runs

PROJECT = Path(__file__).resolve().parents[1]
PTB = PROJECT.parent / "shared" / "data" / "ptb" / "ptb.train.txt"
QUESTIONS = PROJECT.parent / "shared" / "data" / "word2vec" / "questions-words.txt"
THREADS = 2
SETTINGS = {"dim": 100, "window": 5, "negative": 5, "min_count": 5, "sample": 1e-3}
NEIGHBOURS = ("money", "stock", "president", "japan")


def corpus_path(workdir: Path) -> Path:
    if PTB.exists():
        return PTB
    rng = np.random.default_rng(0)
    ranks = np.arange(1, 10001)
    probabilities = (1 / ranks) / np.sum(1 / ranks)
    path = workdir / "zipf.txt"
    with open(path, "w") as handle:
        for _ in range(40000):
            handle.write(" ".join(f"w{i}" for i in rng.choice(10000, 20, p=probabilities)) + "\n")
    return path


def tftrain_config(path: Path, epochs: int, seed: int) -> dict:
    return {
        "name": "bench_word2vec",
        "seed": seed,
        "model": {
            "type": "word2vec",
            "embedding_size": SETTINGS["dim"],
            "negatives": SETTINGS["negative"],
        },
        "data": {
            "type": "text_corpus",
            "path": str(path),
            "min_count": SETTINGS["min_count"],
            "sample": SETTINGS["sample"],
            "window": SETTINGS["window"],
        },
        "train": {
            "batch_size": 4096,
            "epochs": epochs,
            "steps_per_loop": 50,
            "log_every_steps": 1000,
            "optimizer": {"name": "sgd", "learning_rate": 0.025},
            "schedule": {"type": "linear", "final_fraction": 0.0001},
        },
        "summaries": {"enabled": False},
        "eval": {"final_splits": []},
        "device": {
            "intra_op_parallelism_threads": THREADS,
            "inter_op_parallelism_threads": THREADS,
        },
    }


def run_tftrain(path: Path, epochs: int, run_dir: Path, seed: int = 0):
    """(seconds, corpus words, vocabulary, vectors) of an in-process tftrain fit."""
    from tftrain.config import config_from_dict
    from tftrain.runners.trainer import Trainer

    config = config_from_dict(tftrain_config(path, epochs, seed))
    started = time.perf_counter()
    trainer = Trainer(config, run_dir, quiet=True)
    trainer.fit()
    seconds = time.perf_counter() - started
    spec = trainer.setup.spec
    return seconds, spec.extra["corpus_tokens"], spec.vocabulary, trainer.model.vectors()


def run_gensim(path: Path, epochs: int, seed: int = 0):
    """(seconds, corpus words, vocabulary, vectors) of an in-process gensim Word2Vec."""
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence

    started = time.perf_counter()
    model = Word2Vec(
        LineSentence(str(path)),
        vector_size=SETTINGS["dim"],
        window=SETTINGS["window"],
        negative=SETTINGS["negative"],
        min_count=SETTINGS["min_count"],
        sample=SETTINGS["sample"],
        sg=1,
        epochs=epochs,
        workers=THREADS,
        seed=seed,
    )
    seconds = time.perf_counter() - started
    return seconds, model.corpus_total_words, list(model.wv.index_to_key), model.wv.vectors


def in_process_race(path: Path, epochs: int, work: Path, *, quality: bool) -> None:
    """runs() alternated in-process fits of both tools; records the ratios (and analogies)."""
    from tftrain.models.word2vec_tools import evaluate_analogies

    seconds: dict = {"tftrain": [], "gensim": []}
    accuracy: dict = {"tftrain": [], "gensim": []}
    last: dict = {}
    # PTB's analogy accuracy moves by about 0.25 points from seed to seed (12 seeds each: sd
    # 0.21 tftrain, 0.25 gensim), so a 5-run median can miss a 0.3-point goal by chance.
    # The quality race runs twice as many pairs and compares means.
    count = 2 * runs() if quality else runs()
    for run in range(1, count + 1):
        for name, fit in (("tftrain", run_tftrain), ("gensim", run_gensim)):
            arguments = (work / f"run-{epochs}-{run}",) if name == "tftrain" else ()
            taken, words, vocabulary, vectors = fit(path, epochs, *arguments, seed=run)
            seconds[name].append(taken)
            last[name] = vocabulary, vectors
            rate = words / taken * epochs
            line = f"  {epochs} epoch(s) run {run} {name:8} {taken:6.2f} s {rate:9,.0f} words/s"
            if quality and QUESTIONS.exists():
                result = evaluate_analogies(vectors, vocabulary, QUESTIONS, top_n=30000)
                accuracy[name].append(100 * result["analogy_accuracy"])
                line += f"  analogies {accuracy[name][-1]:.2f}%"
            print(line, flush=True)
    if quality:
        for name, (vocabulary, vectors) in last.items():
            show_neighbours(vectors, vocabulary, name)
    ratios = [g / t for t, g in zip(seconds["tftrain"], seconds["gensim"], strict=True)]
    details = {
        "words": words * epochs,
        "tftrain_seconds": seconds["tftrain"],
        "gensim_seconds": seconds["gensim"],
    }
    if accuracy["tftrain"]:
        details |= {f"{name}_analogy_percent": values for name, values in accuracy.items()}
        details |= analogy_summary(accuracy)
    setting = "1 epoch incl. vocabulary" if epochs == 1 else f"{epochs} epochs incl. vocabulary"
    record("word2vec", setting, ratios, peer="gensim", unit="corpus words/s", **details)


def analogy_summary(accuracy: dict) -> dict:
    """Prints and returns each tool's mean analogy accuracy with its standard error, and the
    difference of the means (tftrain - gensim) with its standard error."""
    summary = {}
    for name, values in accuracy.items():
        error = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
        summary[f"{name}_analogy_mean"], summary[f"{name}_analogy_error"] = (
            statistics.mean(values),
            error,
        )
    difference = summary["tftrain_analogy_mean"] - summary["gensim_analogy_mean"]
    error = (summary["tftrain_analogy_error"] ** 2 + summary["gensim_analogy_error"] ** 2) ** 0.5
    summary |= {"analogy_difference": difference, "analogy_difference_error": error}
    print(
        f"  analogy accuracy, mean of {len(accuracy['tftrain'])} seeds: tftrain "
        f"{summary['tftrain_analogy_mean']:.2f} ± {summary['tftrain_analogy_error']:.2f}%, "
        f"gensim {summary['gensim_analogy_mean']:.2f} ± {summary['gensim_analogy_error']:.2f}% "
        f"({difference:+.2f} ± {error:.2f} points)"
    )
    return summary


def show_neighbours(vectors, vocabulary: list, name: str) -> None:
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    index = {w: i for i, w in enumerate(vocabulary)}
    for word in NEIGHBOURS:
        if word in index:
            nearest = np.argsort(-(unit @ unit[index[word]]))[1:6]
            print(f"  {name:8} {word}: {', '.join(vocabulary[i] for i in nearest)}")


# Runs a command and prints its peak RSS: a child's ru_maxrss starts from its parent's at
# fork, so the command is started by this small process rather than by the benchmark's.
LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as handle:
    handle.write(f"{os.waitstatus_to_exitcode(status)} {usage.ru_maxrss // 1024}")
"""


def timed_process(command: list[str], cwd: Path, work: Path) -> tuple[float, int]:
    """(wall seconds, peak RSS MiB) of a command run to completion."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": str(PROJECT)}
    report = work / "launcher-report"
    started = time.perf_counter()
    launcher = [sys.executable, "-c", LAUNCHER, str(report), *command]
    subprocess.run(launcher, cwd=cwd, env=env, stdout=subprocess.DEVNULL, check=True)
    seconds = time.perf_counter() - started
    code, peak = map(int, report.read_text().split())
    if code:
        raise RuntimeError(f"{' '.join(command[:4])} ... failed with exit code {code}")
    return seconds, peak


def whole_process_race(big: Path, work: Path) -> None:
    """`tftrain fit` of the PTB settings vs the gensim script, 1 epoch on the x10 corpus."""
    words = sum(len(line.split()) for line in big.open(encoding="utf-8"))
    tftrain = [sys.executable, "-m", "tftrain", "fit", "configs/word2vec_ptb.yaml", "--quiet"]
    sets = {
        "data.path": str(big),
        "data.valid_path": "",
        "data.test_path": "",
        "train.epochs": "1",
        "eval.final_splits": "[]",
    }
    for key, value in sets.items():
        tftrain += ["--set", f"{key}={value}"]
    gensim = [sys.executable, str(PROJECT / "bench" / "gensim_word2vec.py"), str(big)]
    gensim += ["--epochs", "1", "--workers", str(THREADS)]
    seconds: dict = {"tftrain": [], "gensim": []}
    memory: dict = {"tftrain": [], "gensim": []}
    for run in range(1, runs() + 1):
        commands = {
            "tftrain": [*tftrain, "--run-dir", str(work / f"fit-{run}")],
            "gensim": [*gensim, "--out", str(work / f"gensim-{run}.kv")],
        }
        for name, command in commands.items():
            taken, peak = timed_process(command, PROJECT, work)
            seconds[name].append(taken)
            memory[name].append(peak)
            print(
                f"  whole process run {run} {name:8} {taken:6.2f} s {words / taken:9,.0f} "
                f"words/s, peak RSS {peak} MiB",
                flush=True,
            )
    ratios = [g / t for t, g in zip(seconds["tftrain"], seconds["gensim"], strict=True)]
    record(
        "word2vec",
        "whole process, x10 corpus, 1 epoch",
        ratios,
        peer="gensim script",
        unit="corpus words/s, from process start",
        words=words,
        tftrain_seconds=seconds["tftrain"],
        gensim_seconds=seconds["gensim"],
        tftrain_peak_rss_mib=memory["tftrain"],
        gensim_peak_rss_mib=memory["gensim"],
    )


MEMORY_PROBE = """
import sys, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
from tftrain.data.word2vec_corpus import TextCorpus, TextCorpusConfig
data = TextCorpus(TextCorpusConfig(type="text_corpus", path=sys.argv[1]), seed=0)
batches = data.batches("train", 4096, shuffle=True)
words = sum(int((f["tokens"] >= 0).numpy().sum()) for f, _ in batches)
# VmHWM, not ru_maxrss: a child's ru_maxrss starts from its parent's.
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(words, int(peak) // 1024)
"""


def peak_memory(path: Path) -> tuple[int, int]:
    """(words streamed, peak RSS MiB) of a fresh process streaming `path`."""
    output = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT,
    ).stdout.split()
    return int(output[-2]), int(output[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-process", action="store_true", help="skip the whole-process race")
    parser.add_argument("--no-memory", action="store_true", help="skip the streaming memory probe")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from tftrain import ops

    # Threads as gensim's workers, set before TensorFlow starts; the op built (cached).
    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)
    ops.load("word2vec")
    with tempfile.TemporaryDirectory(prefix="bench-word2vec-") as work:
        work = Path(work)
        path = corpus_path(work)
        print(f"corpus {path}, settings {SETTINGS}, {THREADS} threads, {runs()} runs per race")
        in_process_race(path, 1, work, quality=False)
        in_process_race(path, 5, work, quality=True)
        big = work / "corpus_x10.txt"
        text = path.read_text(encoding="utf-8")
        big.write_text(text * 10, encoding="utf-8")
        if not args.no_process:
            whole_process_race(big, work)
        if not args.no_memory:
            (small_words, small_mib), (big_words, big_mib) = peak_memory(path), peak_memory(big)
            print(f"  streaming {small_words:,} words: peak RSS {small_mib} MiB")
            print(f"  streaming {big_words:,} words: peak RSS {big_mib} MiB")
            record(
                "word2vec",
                "streaming memory, peak RSS x1 / x10 corpus (1 = flat)",
                [small_mib / big_mib],
                peer="x10 corpus",
                unit="peak RSS MiB",
                x1_mib=small_mib,
                x10_mib=big_mib,
            )


if __name__ == "__main__":
    main()
