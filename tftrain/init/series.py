"""A table with a time column and numbers: a forecast with the `series_csv` dataset."""

from __future__ import annotations

import datetime

from tftrain.errors import ConfigError
from tftrain.init.proposal import Proposal, Setting, batch_size
from tftrain.init.sample import TIME_FORMATS, Column
from tftrain.init.tables import Table, one_of, table_settings

# Seasons by the time between rows: a yearly cycle of daily data, a daily one of hourly data.
SEASONS = (
    (datetime.timedelta(hours=1), 24, "hourly rows, a daily cycle"),
    (datetime.timedelta(days=1), 365, "daily rows, a yearly cycle"),
    (datetime.timedelta(days=7), 52, "weekly rows, a yearly cycle"),
)


def parse_time(text: str) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromisoformat(text.strip())
    except ValueError:
        pass
    for pattern in TIME_FORMATS:
        try:
            return datetime.datetime.strptime(text.strip(), pattern)
        except ValueError:
            continue
    return None


def season_of(time: Column | None) -> tuple[int | None, str]:
    """A season length from the step between the first two times, with what it means."""
    if time is None or len(time.present) < 2:
        return None, ""
    first, second = parse_time(time.present[0]), parse_time(time.present[1])
    if first is None or second is None:
        return None, ""
    step = second - first
    for interval, season, meaning in SEASONS:
        if step == interval:
            return season, meaning
    if 28 <= step.days <= 31:
        return 12, "monthly rows, a yearly cycle"
    return None, ""


def forecasting(table: Table, options, name: str) -> Proposal:
    if table.format != "csv":
        raise ConfigError("usage error: --task forecasting reads a CSV/TSV file with a header")
    if not table.header:
        raise ConfigError(
            f"usage error: the series_csv dataset reads a CSV with a header line, and "
            f"{table.path} seems to have none; add one (e.g. date,value)"
        )
    time = table.column(options.time, "--time") if options.time else None
    time = time or next((c for c in table.columns if c.kind == "time"), None)
    numbers = [c for c in table.columns if c is not time and c.numeric]
    target = table.column(options.label, "--label") if options.label else None
    target = target or one_of(numbers, "target", "--label COLUMN")
    if target is None or not target.numeric:
        raise ConfigError(
            f"usage error: no numeric column of {table.path} to forecast; "
            f"pass --label COLUMN (a column of numbers)"
        )
    others = [c.name for c in table.columns if c not in (time, target)]
    season, meaning = season_of(time)
    rows = table.rows
    # 30 past values, fewer when the valid part (10%) could not hold one window and its target.
    window = max(1, min(30, int(0.1 * rows) - 1))
    gaps = target.missing
    return Proposal(
        summary=f"Forecast of {target.name} in {table.path.name} from its last {window} values",
        name=name,
        task="forecasting",
        reason=(
            f"{time.name} holds dates/times and {target.name} holds numbers"
            if time
            else "--task forecasting (rows are taken in file order: no time column)"
        ),
        facts=[
            f"Read {table.path.name}: {table.count_text()} ({table.layout()}).",
            f"Time: {time.name if time else 'row order'}; target: {target.name}"
            + (f"; other columns not used: {', '.join(others)}." if others else "."),
            *([f"{gaps} empty {target.name} values in the sample."] if gaps else []),
        ],
        model=[
            Setting("type", "lstm"),
            Setting("task", "regression", "forecasts are regression on a window"),
            Setting("num_layers", 1),
            Setting("hidden_size", 32),
        ],
        data=[
            Setting("type", "series_csv"),
            *table_settings(table)[:1],
            Setting("time_column", time.name if time else None),
            Setting("target", target.name),
            Setting("features", [], f"extra input columns, e.g. {others[:2]}" if others else ""),
            Setting("window", window, "past values the model reads"),
            Setting("horizon", 1, "steps forecast at once"),
            Setting("stride", 1),
            Setting(
                "season", season, meaning or "e.g. 365 for daily data: seasonal-naive baseline"
            ),
            Setting(
                "missing",
                "interpolate" if gaps else "error",
                "error | drop | ffill | interpolate",
            ),
            Setting("valid_fraction", 0.1, "chronological: the last 20% test, 10% before valid"),
            Setting("test_fraction", 0.2),
        ],
        train=[
            Setting("batch_size", batch_size(rows)),
            Setting("epochs", 30),
            Setting("optimizer", {"name": "adam", "learning_rate": 0.002}),
            Setting("early_stopping", {"patience": 5, "metric": "loss"}),
        ],
    )
