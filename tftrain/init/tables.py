"""CSV/TSV and JSON-lines files: which columns are there, and which task they make."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from tftrain.errors import ConfigError, DataError
from tftrain.init.proposal import Proposal, Setting, batch_size
from tftrain.init.sample import Column, Head, read_head

DELIMITERS = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "bar"}


@dataclass
class Table:
    """A sampled table: its columns, how the file is laid out, and how many rows it has."""

    path: Path
    head: Head
    columns: list[Column]
    format: str  # csv | jsonl
    delimiter: str = ","
    header: bool = True

    @property
    def rows(self) -> int:
        return self.head.total_lines - (1 if self.header and self.format == "csv" else 0)

    def count_text(self) -> str:
        estimated = "" if self.head.exact else " (estimated from the first MiB)"
        return f"{'' if self.head.exact else 'about '}{self.rows:,} rows{estimated}"

    def column(self, name: str, flag: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        if name.lstrip("-").isdigit() and -len(self.columns) <= int(name) < len(self.columns):
            return self.columns[int(name)]
        names = ", ".join(c.name for c in self.columns)
        raise ConfigError(f"usage error: {flag} {name}: no such column; the columns are {names}")

    def key(self, column: Column):
        """How the config names a column: by name with a header, else by index."""
        return column.name if self.header or self.format == "jsonl" else column.index

    def layout(self) -> str:
        if self.format == "jsonl":
            return "JSON lines"
        header = "a header line" if self.header else "no header"
        return f"{DELIMITERS.get(self.delimiter, repr(self.delimiter))}-separated, {header}"


def sniff_delimiter(lines: list[str], suffix: str) -> str | None:
    """The delimiter that splits every sampled line into the same number (>= 2) of fields."""
    preferred = {".tsv": "\t", ".csv": ","}.get(suffix)
    order = [preferred] if preferred else []
    order += [d for d in DELIMITERS if d != preferred]
    sample = [line for line in lines[:500] if line.strip()]
    for delimiter in order:
        counts = {len(row) for row in csv.reader(sample, delimiter=delimiter)}
        if len(counts) == 1 and counts.pop() >= 2:
            return delimiter
    return None


def looks_like_header(rows: list[list[str]]) -> bool:
    """Short non-numeric names in the first row that do not recur below them."""
    first, rest = rows[0], rows[1:]
    if not rest or len(set(first)) != len(first):
        return False
    for index, name in enumerate(first):
        column = Column(name, index, [row[index] for row in rest])
        if column.numeric and not Column(name, index, [name]).numeric:
            return True  # a name above numbers
    for index, name in enumerate(first):
        if Column(name, index, [name]).numeric or len(name) > 40 or len(name.split()) > 4:
            return False
        if name in {row[index] for row in rest}:
            return False
    return True


def read_csv_table(path: Path, head: Head, delimiter: str) -> Table:
    rows = [row for row in csv.reader(head.lines, delimiter=delimiter) if row]
    header = looks_like_header(rows)
    names = rows[0] if header else [f"column{i}" for i in range(len(rows[0]))]
    body = rows[1:] if header else rows
    columns = [Column(name, i, [row[i] for row in body]) for i, name in enumerate(names)]
    return Table(path, head, columns, "csv", delimiter, header)


def read_jsonl_table(path: Path, head: Head) -> Table:
    records = []
    for number, line in enumerate(head.lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            hint = " (a JSON array: write one object per line)" if line.startswith("[") else ""
            raise DataError(f"{path}, line {number}: not a JSON object: {error}{hint}") from None
        if not isinstance(record, dict):
            hint = "; write one object per line (JSON lines)" if isinstance(record, list) else ""
            raise DataError(
                f"{path}, line {number}: expected a JSON object, found {line[:40]}{hint}"
            )
        records.append(record)
    if not records:
        raise DataError(f"{path} holds no JSON lines")
    names = list(dict.fromkeys(key for record in records for key in record))
    columns = [
        Column(name, i, ["" if r.get(name) is None else str(r.get(name)) for r in records])
        for i, name in enumerate(names)
    ]
    return Table(path, head, columns, "jsonl")


def read_table(path: Path, head: Head | None = None) -> Table | None:
    """The file as a table, or None when its lines are not delimited fields."""
    head = head or read_head(path)
    if not head.lines:
        raise DataError(f"{path} is empty")
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson") or head.lines[0].startswith("{"):
        return read_jsonl_table(path, head)
    delimiter = sniff_delimiter(head.lines, path.suffix.lower())
    return read_csv_table(path, head, delimiter) if delimiter else None


def one_of(columns: list[Column], what: str, flag: str) -> Column | None:
    """The only column of a group; several is a question for the user, none is None."""
    if len(columns) > 1:
        names = ", ".join(c.name for c in columns)
        count = "two" if len(columns) == 2 else str(len(columns))
        raise ConfigError(f"usage error: {count} columns could be the {what}: {names}; pass {flag}")
    return columns[0] if columns else None


def choose_label(table: Table, pool: list[Column]) -> Column | None:
    """The class column: named like one, else the only column with few distinct values."""
    named = [c for c in pool if c.named_like_label]
    if len(named) == 1:
        return named[0]
    few = [c for c in pool if c.few_values]
    categories = [c for c in few if c.kind == "category"]
    return one_of(categories or few, "label", "--label COLUMN")


def guess_task(table: Table, options) -> str:
    """What the table is for, from the kinds of its columns; flags pin columns."""
    if options.text or table.format == "jsonl":
        return "text_classification"
    texts = [c for c in table.columns if c.kind == "text"]
    if len(texts) >= 2 and table.format == "csv" and table.delimiter == "\t":
        others = [c for c in table.columns if c not in texts and c.few_values]
        if not others and not table.header and texts[:2] == table.columns[:2]:
            return "seq2seq"
    if texts:
        return "text_classification"
    if options.time or any(c.kind == "time" for c in table.columns):
        return "forecasting"
    label = table.column(options.label, "--label") if options.label else None
    label = label or choose_label(table, table.columns)
    return "classification" if label is not None and label.few_values else "regression"


def reason_for(task: str, table: Table) -> str:
    return {
        "text_classification": "one column holds free text (many distinct multi-word values)",
        "seq2seq": "the first two columns both hold sentences and nothing looks like a label",
        "forecasting": "a column holds dates/times and the others hold numbers",
        "classification": "the label column has few distinct values",
        "regression": "the target column holds numbers with many distinct values",
    }[task]


# --- the proposals --------------------------------------------------------------------------


def table_settings(table: Table) -> list[Setting]:
    settings = [Setting("path", str(table.path))]
    if table.format == "csv":
        settings.append(Setting("header", table.header))
        settings.append(Setting("delimiter", table.delimiter, DELIMITERS.get(table.delimiter, "")))
    return settings


def tabular(table: Table, options, task: str, name: str) -> Proposal:
    """Numeric features and one label column, for the `csv` dataset."""
    if table.format != "csv":
        raise ConfigError(
            f"usage error: --task {task} reads CSV/TSV files; {table.path} is JSON lines "
            f"(text classification reads it: --task text_classification)"
        )
    label = table.column(options.label, "--label") if options.label else None
    if label is None and task == "classification":
        label = choose_label(table, table.columns)
    if label is None:
        label = table.columns[-1]  # the csv dataset's own default
    features = [c for c in table.columns if c is not label]
    not_numbers = [c for c in features if not c.numeric]
    if not_numbers:
        shown = ", ".join(c.describe() for c in not_numbers[:3])
        raise ConfigError(
            f"usage error: the csv dataset reads numeric features only, and {shown} is not "
            f"numeric; drop or encode it, or pass --text COLUMN if it is the text to classify"
        )
    with_gaps = [c.name for c in [*features, label] if c.missing]
    if with_gaps:
        raise ConfigError(
            f"usage error: empty values in {', '.join(with_gaps)}; the csv dataset needs "
            f"every value: fill or drop those rows first"
        )
    if task == "regression" and not label.numeric:
        raise ConfigError(f"usage error: --task regression needs a numeric target; {label.name}")
    facts = [
        f"Read {table.path.name}: {table.count_text()}, {len(table.columns)} columns "
        f"({table.layout()}).",
        f"Label: {label.name}"
        + (f" ({label.distinct} classes: {label.shares()})." if task == "classification" else ".")
        + f" Features: the other {len(features)} columns, all numeric.",
    ]
    classify = task == "classification"
    return Proposal(
        summary=f"{'Classification' if classify else 'Regression'} of {label.name} from "
        f"{len(features)} numeric columns of {table.path.name}",
        name=name,
        task=task,
        reason=reason_for(task, table),
        facts=facts,
        model=[
            Setting("type", "softmax", "an MLP; linear or lstm fit other tasks")
            if classify
            else Setting("type", "linear", "least squares; the baseline to beat"),
            *([Setting("hidden_units", [64], "[] is softmax regression")] if classify else []),
        ],
        data=[
            Setting("type", "csv"),
            *table_settings(table),
            Setting("label_column", table.key(label)),
            Setting("task", task),
            Setting("standardize", True, "feature mean/std from the training split"),
            Setting("valid_fraction", 0.1),
            Setting("test_fraction", 0.2),
        ],
        train=[
            Setting("batch_size", batch_size(table.rows)),
            Setting("epochs", 30),
            Setting("optimizer", {"name": "adam", "learning_rate": 0.003 if classify else 0.05}),
            Setting("early_stopping", {"patience": 5, "metric": "loss"}),
        ],
        checkpoint=[Setting("best_metric", "accuracy" if classify else "loss")],
    )


def text_classification(table: Table, options, name: str) -> Proposal:
    """A text column and a label column, for the `text_classification` dataset."""
    text = table.column(options.text, "--text") if options.text else None
    text = text or one_of([c for c in table.columns if c.kind == "text"], "text", "--text COLUMN")
    if text is None:
        raise ConfigError(f"usage error: no column of {table.path} holds free text; pass --text")
    label = table.column(options.label, "--label") if options.label else None
    label = label or choose_label(table, [c for c in table.columns if c is not text])
    if label is None:
        raise ConfigError(
            f"usage error: no column of {table.path} looks like a label (few distinct values); "
            f"pass --label COLUMN"
        )
    words = text.percentile_words(0.95)
    max_length = max(8, min(400, words))
    counts = list(label.counts.values())
    imbalanced = counts[0] >= 3 * counts[-1]  # the commonest class is 3x the rarest
    keys = (
        [Setting("text_field", text.name), Setting("label_field", label.name)]
        if table.format == "jsonl"
        else [Setting("text_column", table.key(text)), Setting("label_column", table.key(label))]
    )
    return Proposal(
        summary=f"Text classification of {text.name} into {label.name} "
        f"({label.distinct} classes) from {table.path.name}",
        name=name,
        task="text_classification",
        reason=reason_for("text_classification", table),
        facts=[
            f"Read {table.path.name}: {table.count_text()} ({table.layout()}).",
            f"Text: {text.name} (95% of the sampled texts have at most {words} words).",
            f"Label: {label.name} ({label.distinct} classes: {label.shares()}).",
        ],
        model=text_model(options.model),
        data=[
            Setting("type", "text_classification"),
            *table_settings(table)[:1],
            Setting("format", table.format),
            *keys,
            *([Setting("header", table.header)] if table.format == "csv" else []),
            *([Setting("delimiter", table.delimiter)] if table.format == "csv" else []),
            Setting("max_length", max_length, "tokens; longer texts are cut"),
            Setting("max_vocab", 20000),
            Setting("lowercase", True),
            Setting("valid_fraction", 0.1),
            Setting("test_fraction", 0.2),
            Setting(
                "class_weights",
                "balanced",
                "the classes are imbalanced" if imbalanced else "if some classes are rare",
                optional=not imbalanced,
            ),
        ],
        train=[
            Setting("batch_size", batch_size(table.rows)),
            Setting("epochs", 10),
            Setting("optimizer", {"name": "adam", "learning_rate": 0.002}),
            Setting("early_stopping", {"patience": 3, "metric": "loss"}),
        ],
        checkpoint=[Setting("best_metric", "accuracy")],
    )


def text_model(model: str | None) -> list[Setting]:
    if model == "cnn":
        return [
            Setting("type", "cnn"),
            Setting("preset", "kim2014", "widths 3/4/5, 100 filters each, max-over-time"),
        ]
    return [
        Setting("type", "lstm", "or cnn (init --model cnn): Kim's convolutional classifier"),
        Setting("task", "classification"),
        Setting("embedding_dim", 64),
        Setting("cell", "lstm", "or gru"),
        Setting("num_layers", 1),
        Setting("hidden_size", 64),
        Setting("bidirectional", True),
        Setting("dropout", 0.2),
        Setting("embeddings", {"from": "runs/word2vec_run", "trainable": False}, "", True),
    ]
