"""Per-class figures for every classifier: confusion matrix, precision, recall, F1, macro F1.

`tftrain eval` adds them for classification data (images and texts alike): the model's
predicted classes over the split, counted against the labels in one confusion matrix.
"""

from __future__ import annotations

import numpy as np

from tftrain.lazy import tf

MAX_PRINTED_CLASSES = 30


def predicted_classes(model, dataset, split: str, batch_size: int, max_batches=None):
    """(true labels, predicted classes) over `split` (its first `max_batches` batches)."""
    predict = tf.function(
        lambda x: tf.argmax(model.forward(x, training=False)[0], axis=-1, output_type=tf.int32)
    )
    data = dataset.batches(split, batch_size)
    if max_batches:
        data = data.take(max_batches)
    truth, predicted = [], []
    for features, labels in data:
        truth.append(np.asarray(labels).reshape(-1))
        predicted.append(np.asarray(predict(features)).reshape(-1))
    return np.concatenate(truth).astype(np.int64), np.concatenate(predicted).astype(np.int64)


def confusion_matrix(truth, predicted, num_classes: int) -> np.ndarray:
    """[true class, predicted class] counts."""
    cells = np.bincount(truth * num_classes + predicted, minlength=num_classes * num_classes)
    return cells.reshape(num_classes, num_classes)


def classification_report(matrix: np.ndarray, class_names: list[str] | None = None) -> dict:
    """{macro_f1, per_class: {name: {precision, recall, f1, support}}, confusion_matrix}.

    Macro F1 averages the classes that occur in the labels or the predictions (as
    scikit-learn's f1_score(average="macro") does); a class never predicted has precision 0.
    """
    matrix = np.asarray(matrix, dtype=np.int64)
    names = class_names or [str(i) for i in range(len(matrix))]
    hits = np.diag(matrix).astype(np.float64)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    precision = np.divide(hits, predicted, out=np.zeros_like(hits), where=predicted > 0)
    recall = np.divide(hits, support, out=np.zeros_like(hits), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros_like(hits), where=total > 0)
    present = (support > 0) | (predicted > 0)
    per_class = {
        str(name): {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(names)
    }
    return {
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def evaluate_classes(model, dataset, split: str, *, batch_size: int, max_batches=None) -> dict:
    """The report for one split of a classifier's data."""
    truth, predicted = predicted_classes(model, dataset, split, batch_size, max_batches)
    matrix = confusion_matrix(truth, predicted, model.spec.num_classes)
    return classification_report(matrix, model.spec.class_names)


def report_lines(metrics: dict) -> list[str]:
    """The per-class table and the confusion matrix as text, for `tftrain eval`."""
    per_class, matrix = metrics["per_class"], metrics["confusion_matrix"]
    names = list(per_class)
    width = max(8, *(len(n) for n in names))
    lines = [f"{'class':{width}}  precision  recall      f1  support"]
    for name, row in per_class.items():
        lines.append(
            f"{name:{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  {row['f1']:6.4f}"
            f"  {row['support']:7d}"
        )
    if len(names) > MAX_PRINTED_CLASSES:
        lines.append(f"confusion matrix: {len(names)} classes; see --json or --plot FILE.png")
        return lines
    cell = max(5, *(len(n) for n in names), len(str(np.max(matrix))))
    lines.append("confusion matrix (rows: true class, columns: predicted)")
    lines.append(" " * width + "".join(f"  {n:>{cell}}" for n in names))
    for name, row in zip(names, matrix, strict=True):
        lines.append(f"{name:{width}}" + "".join(f"  {v:>{cell}d}" for v in row))
    return lines
