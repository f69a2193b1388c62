"""word2vec race: tftrain vs gensim on the same corpus, settings and threads; plus memory.

    python bench/bench_word2vec.py                 # speed (1 epoch each) and streaming memory
    python bench/bench_word2vec.py --quality 5     # also: 5 epochs each, analogy accuracy

The corpus is ../shared/data/ptb/ptb.train.txt when present, else a synthetic Zipfian text
written to a temporary file. Words/second counts corpus tokens (before min_count and
sub-sampling) times epochs over the wall time of vocabulary + training, for both tools (both
libraries imported before the clock starts; tftrain's time includes graph tracing).
Memory: peak RSS of a fresh process that counts the vocabulary and streams every training
batch of the corpus, and of one streaming the same corpus repeated ten times.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROJECT = Path(__file__).resolve().parents[1]
PTB = PROJECT.parent / "shared" / "data" / "ptb" / "ptb.train.txt"
QUESTIONS = PROJECT.parent / "shared" / "data" / "word2vec" / "questions-words.txt"
THREADS = 2
SETTINGS = {"dim": 100, "window": 5, "negative": 5, "min_count": 5, "sample": 1e-3}


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


def tftrain_config(path: Path, epochs: int, batch_size: int, kernel: str = "auto") -> dict:
    return {
        "name": "bench_word2vec",
        "seed": 0,
        "model": {
            "type": "word2vec",
            "embedding_size": SETTINGS["dim"],
            "negatives": SETTINGS["negative"],
            "kernel": kernel,
        },
        "data": {
            "type": "text_corpus",
            "path": str(path),
            "min_count": SETTINGS["min_count"],
            "sample": SETTINGS["sample"],
            "window": SETTINGS["window"],
        },
        "train": {
            "batch_size": batch_size,
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


def run_tftrain(path: Path, epochs: int, batch_size: int, run_dir: Path, kernel: str = "auto"):
    from tftrain import ops
    from tftrain.config import config_from_dict
    from tftrain.runners.trainer import Trainer

    config = config_from_dict(tftrain_config(path, epochs, batch_size, kernel))
    # TensorFlow imported and the fused op compiled (cached) before the clock starts, as
    # gensim is imported before its clock.
    if kernel != "graph":
        ops.load("word2vec")

    started = time.perf_counter()
    trainer = Trainer(config, run_dir, quiet=True)
    trainer.fit()
    seconds = time.perf_counter() - started
    spec = trainer.setup.spec
    return seconds, spec.extra["corpus_tokens"], spec.vocabulary, trainer.model.vectors()


def run_gensim(path: Path, epochs: int):
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
        seed=0,
    )
    seconds = time.perf_counter() - started
    return seconds, model.corpus_total_words, list(model.wv.index_to_key), model.wv.vectors


MEMORY_PROBE = """
import resource, sys, os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
from tftrain.data.word2vec_corpus import TextCorpus, TextCorpusConfig
data = TextCorpus(TextCorpusConfig(type="text_corpus", path=sys.argv[1]), seed=0)
words = sum(int((f["tokens"] >= 0).numpy().sum()) for f, _ in data.batches("train", 8192, shuffle=True))
print(words, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def peak_memory(path: Path) -> tuple[int, int]:
    """(centre words streamed, peak RSS MiB) of a fresh process streaming `path`."""
    output = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT,
    ).stdout.split()
    return int(output[-2]), int(output[-1])


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1, help="epochs for the speed race")
    parser.add_argument("--batch-size", type=int, default=4096, help="tftrain centre words")
    parser.add_argument("--quality", type=int, default=0, help="epochs for the analogy run")
    parser.add_argument("--no-memory", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-word2vec-") as work:
        work = Path(work)
        path = corpus_path(work)
        print(f"corpus {path}, settings {SETTINGS}, {THREADS} threads, {args.epochs} epoch(s)")
        runs = {
            "tftrain": run_tftrain(path, args.epochs, args.batch_size, work / "run"),
            "tftrain graph": run_tftrain(
                path, args.epochs, args.batch_size, work / "run_graph", kernel="graph"
            ),
            "gensim": run_gensim(path, args.epochs),
        }
        rates = {name: run[1] * args.epochs / run[0] for name, run in runs.items()}
        print(f"{'':14}{'seconds':>10}{'words/s':>12}{'vs gensim':>11}")
        for name, run in runs.items():
            ratio = rates[name] / rates["gensim"]
            print(f"{name:14}{run[0]:10.1f}{rates[name]:12.0f}{ratio:11.3f}")
        results["speed"] = rates
        if args.quality:
            results["quality"] = quality(path, args.quality, args.batch_size, work)
        if not args.no_memory:
            big = work / "corpus_x10.txt"
            with open(big, "w", encoding="utf-8") as handle:
                text = path.read_text(encoding="utf-8")
                for _ in range(10):
                    handle.write(text)
            small_words, small_mib = peak_memory(path)
            big_words, big_mib = peak_memory(big)
            print(f"{'memory':10}{'centre words':>14}{'peak RSS MiB':>14}")
            print(f"{'x1':10}{small_words:14d}{small_mib:14d}")
            print(f"{'x10':10}{big_words:14d}{big_mib:14d}")
            results["memory"] = {"x1": small_mib, "x10": big_mib}
    print(json.dumps(results))
    return results


def quality(path: Path, epochs: int, batch_size: int, work: Path) -> dict:
    """Analogy accuracy of both tools' vectors, scored by the same 3CosAdd evaluator."""
    from tftrain.models.word2vec_tools import evaluate_analogies

    if not QUESTIONS.exists():
        print(f"no {QUESTIONS}: skipping the analogy comparison")
        return {}
    scores = {}
    for name, (seconds, tokens, words, vectors) in (
        ("tftrain", run_tftrain(path, epochs, batch_size, work / "quality")),
        ("gensim", run_gensim(path, epochs)),
    ):
        result = evaluate_analogies(vectors, words, QUESTIONS, top_n=30000)
        scores[name] = result
        print(
            f"{name:10}{epochs} epochs  {seconds:7.1f} s  {tokens * epochs / seconds:8.0f} words/s"
            f"  analogy accuracy "
            f"{result['analogy_accuracy']:.4f} ({result['analogy_correct']}/"
            f"{result['analogy_answered']}, {result['analogy_skipped']} skipped)"
        )
    return {name: s["analogy_accuracy"] for name, s in scores.items()}


if __name__ == "__main__":
    main()
