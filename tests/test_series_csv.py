"""`data.type: series_csv`: reading a user's series CSV, its checks, split, scaling and windows."""

from __future__ import annotations

import numpy as np
import pytest

from tftrain.data.series_csv import SeriesCsv, SeriesCsvConfig
from tftrain.data.series_table import read_series
from tftrain.errors import ConfigError, DataError


def write_csv(path, header, rows):
    lines = ([",".join(header)] if header else []) + [",".join(map(str, r)) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def dataset(path, **keys):
    return SeriesCsv(SeriesCsvConfig(path=str(path), **keys), seed=0)


def daily(count, start="2020-01-01"):
    return [str(d) for d in np.datetime64(start) + np.arange(count)]


def test_reads_dates_and_picks_the_only_numeric_column(tmp_path):
    rows = [(day, f"{10 + i * 0.5:.1f}", "x") for i, day in enumerate(daily(6))]
    table = read_series(write_csv(tmp_path / "s.csv", ["Date", "Temp", "Note"], rows))
    assert table.columns == ["Temp"] and table.time_name == "Date"
    assert table.times.dtype == np.dtype("datetime64[s]")
    assert str(table.times[5].astype("datetime64[D]")) == "2020-01-06"
    np.testing.assert_allclose(table.values[:, 0], 10 + 0.5 * np.arange(6))
    np.testing.assert_array_equal(table.lines, np.arange(2, 8))  # header is line 1


@pytest.mark.parametrize(
    ("cells", "second"),
    [
        (["2021-03-01 10:00", "2021-03-01 11:30", "2021-03-02 00:00"], "2021-03-01T11:30:00"),
        (["31/12/1999", "01/01/2000", "02/01/2000"], "2000-01-01T00:00:00"),  # day first
        (["12/31/1999", "01/01/2000", "01/02/2000"], "2000-01-01T00:00:00"),  # month first
        (["1949-01", "1949-02", "1949-03"], "1949-02-01T00:00:00"),  # monthly
    ],
)
def test_time_formats_without_a_header(tmp_path, cells, second):
    path = write_csv(tmp_path / "s.csv", None, [(c, i) for i, c in enumerate(cells)])
    table = read_series(path)
    assert table.time_name == "column0" and table.columns == ["column1"]
    assert str(table.times[1]) == second
    assert table.lines[0] == 1


def test_numeric_time_column_by_name_and_row_order(tmp_path):
    path = write_csv(tmp_path / "s.csv", ["t", "a", "b"], [(i * 0.5, i, -i) for i in range(5)])
    table = read_series(path, time_column="t", target="b", features=("a",))
    assert table.columns == ["b", "a"]
    np.testing.assert_allclose(table.times, 0.5 * np.arange(5))
    assert read_series(path, time_column=None, target=["a", "b"]).times is None


def test_time_going_back_is_an_error_naming_the_line(tmp_path):
    days = daily(6)
    days[3], days[4] = days[4], days[3]  # data line 4 is file line 5
    path = write_csv(tmp_path / "s.csv", ["Date", "v"], [(d, 1.0) for d in days])
    with pytest.raises(
        DataError,
        match=r"s\.csv, line 6: time 2020-01-04 is not after "
        r"2020-01-05 \(line 5\)",
    ):
        read_series(path)
    days[4] = days[3]  # a repeated time is refused too
    write_csv(path, ["Date", "v"], [(d, 1.0) for d in days])
    with pytest.raises(DataError, match="line 6"):
        read_series(path)


def test_column_choice_errors(tmp_path):
    path = write_csv(tmp_path / "s.csv", ["Date", "a", "b"], [(d, 1, 2) for d in daily(4)])
    with pytest.raises(ConfigError, match=r"2 numeric value columns \(a, b\); set data.target"):
        read_series(path)
    with pytest.raises(ConfigError, match=r"no column 'c'; columns are \['Date', 'a', 'b'\]"):
        read_series(path, target="c")
    write_csv(path, ["Date", "a"], [("2020-01-01", 1), ("2020-01-02", "warm")])
    with pytest.raises(DataError, match=r"line 3: column 'a' holds 'warm', not a number"):
        read_series(path, target="a")


def holey(tmp_path):
    """Dates 1, 2, 4, 5, 6 (a gap on the 3rd) with values missing on the 2nd and the 5th."""
    dates = ["2020-01-01", "2020-01-02", "2020-01-04", "2020-01-05", "2020-01-06"]
    values = ["1", "", "7", "NA", "11"]
    return write_csv(tmp_path / "s.csv", ["Date", "v"], zip(dates, values, strict=True))


def test_missing_values_are_an_error_by_default_naming_the_lines(tmp_path):
    with pytest.raises(DataError, match=r"2 missing values \(v: 2\) on lines 3, 5; set data"):
        dataset(holey(tmp_path), window=1, valid_fraction=0, test_fraction=0).spec()


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("drop", [1, 7, 11]),
        ("ffill", [1, 1, 7, 7, 11]),
        # In time, not in rows: the 2nd is a third of the way from the 1st to the 4th.
        ("interpolate", [1, 3, 7, 9, 11]),
    ],
)
def test_missing_value_rules(tmp_path, capsys, rule, expected):
    data = dataset(holey(tmp_path), missing=rule, window=1, valid_fraction=0, test_fraction=0)
    np.testing.assert_allclose(data.table.values[:, 0], expected)
    assert "2 missing values (v: 2) on lines 3, 5: " in capsys.readouterr().err
    assert data.num_examples("train") == len(expected) - 1


def test_filling_without_times_and_with_leading_holes(tmp_path):
    path = write_csv(tmp_path / "s.csv", ["a"], [["NA"], [2], ["?"], ["nan"], [8], ["null"]])
    data = dataset(path, missing="interpolate", window=1, valid_fraction=0, test_fraction=0)
    assert data.table.times is None  # no date column: row order
    np.testing.assert_allclose(data.table.values[:, 0], [2, 2, 4, 6, 8, 8])
    data = dataset(path, missing="ffill", window=1, valid_fraction=0, test_fraction=0)
    np.testing.assert_allclose(data.table.values[:, 0], [2, 2, 2, 2, 8, 8])


def test_times_with_zones_compare_as_instants(tmp_path):
    cells = ["2021-03-01T10:00:00+02:00", "2021-03-01T09:30:00+00:00"]
    path = write_csv(tmp_path / "s.csv", ["t", "v"], [(c, 1) for c in cells])
    assert str(read_series(path).times[1]) == "2021-03-01T09:30:00"
    cells.append("2021-03-01T10:00:00+01:00")  # 09:00 UTC: before the line above
    write_csv(path, ["t", "v"], [(c, 1) for c in cells])
    with pytest.raises(DataError, match="line 4: time 2021-03-01T09:00:00 is not after"):
        read_series(path)


def test_chronological_split_windows_never_straddle(tmp_path):
    # The value is the row number, so every window shows which rows it was cut from.
    rows = [(d, i) for i, d in enumerate(daily(100))]
    data = dataset(write_csv(tmp_path / "s.csv", ["Date", "row"], rows), window=5, horizon=2)
    bounds = {"train": (0, 70), "valid": (70, 80), "test": (80, 100)}
    for split, (start, stop) in bounds.items():
        x, y = data.arrays(split)
        assert x.min() >= start and y.max() < stop, split
        assert len(x) == (stop - start) - 7 + 1
        assert x[0, 0, 0] == start and y[-1, -1] == stop - 1
        np.testing.assert_array_equal(y[:, 0], x[:, -1, 0] + 1)  # targets follow the window
    strided = dataset(tmp_path / "s.csv", window=5, horizon=2, stride=3)
    np.testing.assert_array_equal(strided.arrays("test")[0][:, 0, 0], [80, 83, 86, 89, 92])
    with pytest.raises(ConfigError, match=r"the valid part has 10 rows of 100, fewer than"):
        dataset(tmp_path / "s.csv", window=9, horizon=2).spec()


def test_normalisation_is_fitted_on_the_training_rows_only(tmp_path):
    rng = np.random.default_rng(1)
    level = np.r_[np.full(60, 5.0), np.full(40, 50.0)] + rng.normal(0, 1, 100)
    other = rng.normal(3, 2, 100)
    rows = [(d, f"{a:.4f}", f"{b:.4f}") for d, a, b in zip(daily(100), level, other, strict=True)]
    path = write_csv(tmp_path / "s.csv", ["Date", "y", "z"], rows)
    spec = dataset(path, target="y", features=("z",), window=4, horizon=3).spec()
    train = np.stack([level, other], axis=1)[:70].round(4)
    np.testing.assert_allclose(spec.transform["shift"], train.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(spec.transform["scale"], 1 / train.std(axis=0), rtol=1e-9)
    assert spec.transform["shift"][0] < 20  # the test level (50) did not leak in
    target = spec.extra["target_transform"]
    np.testing.assert_allclose(target["shift"], [train[:, 0].mean()] * 3)
    assert spec.input_shape == (4, 2) and spec.output_dim == 3


def test_multi_step_horizon_with_two_targets_and_a_feature(tmp_path):
    rows = [(d, i, 100 + i, -i) for i, d in enumerate(daily(60))]
    path = write_csv(tmp_path / "s.csv", ["Date", "a", "b", "f"], rows)
    data = dataset(path, target=["a", "b"], features=["f"], window=3, horizon=2)
    x, y = data.arrays("train")
    assert x.shape == (len(x), 3, 3) and y.shape == (len(x), 4)
    np.testing.assert_array_equal(x[0], [[0, 100, 0], [1, 101, -1], [2, 102, -2]])
    np.testing.assert_array_equal(y[0], [3, 103, 4, 104])  # step 1 of each target, then step 2
    spec = data.spec()
    assert spec.feature_names == ["a", "b", "f"] and spec.output_dim == 4
    assert spec.extra["series"]["targets"] == ["a", "b"]


def test_bad_series_is_a_clean_cli_error(tmp_path, cli, write_config):
    days = daily(50)
    days[20] = days[10]
    path = write_csv(tmp_path / "s.csv", ["Date", "v"], [(d, 1.0) for d in days])
    tree = {"model": {"type": "lstm"}, "data": {"type": "series_csv", "path": str(path)}}
    result = cli("fit", write_config(tree), "--run-dir", tmp_path / "run", expect=1)
    assert "line 22: time 2020-01-11 is not after 2020-01-20 (line 21)" in result.stderr
    assert "Traceback" not in result.stderr
    tree["data"]["windw"] = 3
    result = cli("config", "validate", write_config(tree), expect=2)
    assert "did you mean 'data.window'" in result.stderr
