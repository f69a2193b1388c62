"""PNG figures that `tftrain eval --plot` and `predict` draw (matplotlib, headless)."""

from __future__ import annotations


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display on servers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_series(path: str, truth, predictions, *, title: str, times=None, ylabel="value") -> None:
    """Predictions against the truth, one point per window (at its time, if known)."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(10, 4))
    x = range(len(truth)) if times is None else times
    axes.plot(x, truth, label="truth", linewidth=1.5)
    axes.plot(x, predictions, label="prediction", linewidth=1.0, linestyle="--")
    axes.set_xlabel("window" if times is None else "time")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def draw_attention(path: str, source: list[str], target: list[str], weights, *, title: str):
    """A heat map of attention weights [target, source]."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(1 + 0.5 * len(source), 1 + 0.4 * len(target)))
    axes.imshow(weights, cmap="viridis", aspect="auto")
    axes.set_xticks(range(len(source)), source, rotation=90)
    axes.set_yticks(range(len(target)), target)
    axes.set_xlabel("source")
    axes.set_ylabel("decoded")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def draw_confusion(path: str, matrix, names: list[str], *, title: str) -> None:
    """A confusion matrix as a heat map with counts: rows true, columns predicted."""
    import numpy as np

    plt = pyplot()
    matrix = np.asarray(matrix)
    size = 2 + 0.5 * len(names)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes)
    axes.set_xticks(range(len(names)), names, rotation=90 if len(names) > 5 else 0)
    axes.set_yticks(range(len(names)), names)
    if len(names) <= 30:
        middle = matrix.max() / 2
        for (row, column), count in np.ndenumerate(matrix):
            colour = "white" if count > middle else "black"
            axes.text(column, row, str(count), ha="center", va="center", color=colour)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
