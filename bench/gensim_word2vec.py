"""A plain gensim word2vec script with the settings of configs/word2vec_ptb.yaml.

    python bench/gensim_word2vec.py CORPUS --epochs 1 --out vectors.kv

It is the peer of `tftrain fit configs/word2vec_ptb.yaml` in bench_word2vec's whole-process
race: both are timed from process start, imports included, and both save what they trained.
"""

from __future__ import annotations

import argparse
import os
import time

from gensim.models import Word2Vec
from gensim.models.word2vec import LineSentence


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="vectors.kv")
    args = parser.parse_args()
    started = time.perf_counter()
    model = Word2Vec(
        LineSentence(args.corpus),
        vector_size=100,
        window=5,
        negative=5,
        min_count=5,
        sample=1e-3,
        sg=1,
        alpha=0.025,
        min_alpha=0.025 * 1e-4,
        epochs=args.epochs,
        workers=args.workers,
        seed=args.seed,
    )
    model.wv.save(args.out)
    seconds = time.perf_counter() - started
    print(f"{model.corpus_total_words * args.epochs / seconds:.0f} words/s")


if __name__ == "__main__":
    main()
