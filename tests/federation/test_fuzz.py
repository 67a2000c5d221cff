"""Property-based fuzzing of everything that reads a platform's files (Hypothesis).

For any input the readers either return a result that accounts for every record, or refuse with
a `DataError` naming the file: never another exception (a traceback), a hang (every example has
a deadline) or a silently dropped row. The whole module runs in about 10 s on 2 shared cores
(`FUZZ` below: 100 examples per property, 2 s deadline per example, derandomised).
"""

from __future__ import annotations

import csv
import io
import math
import string

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from federation.errors import DataError
from federation.features import build_features
from federation.preprocess import Encoder, compute_stats, load_labeled
from federation.schema import load_mapping, read_table

FUZZ = settings(
    max_examples=100,
    deadline=2000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,  # the same examples in CI every time; a failure is reproducible
    database=None,  # nothing written to .hypothesis/
)

# Cells a careless export contains: numbers of every size, text, blanks, NaN/inf spellings.
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.integers(min_value=-(10**20), max_value=10**20),
)
TEXT = st.text(alphabet=string.ascii_letters + string.digits + " ,.;\"'-\n\t金额€", max_size=12)
CELL = st.one_of(NUMBERS.map(str), TEXT, st.sampled_from(["", "NA", "nan", "inf", "-inf", "1e308", "1e-320", "null"]))


def _csv(header: list[str], rows: list[list[str]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


@FUZZ
@given(data=st.binary(max_size=400))
def test_any_bytes_are_read_or_refused(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("bytes") / "export.csv"
    path.write_bytes(data)
    try:
        frame = read_table(path)
    except DataError as exc:
        assert str(exc).startswith(str(path))
        return
    assert len(frame.columns) == len(set(frame.columns))


@FUZZ
@given(
    header=st.lists(st.text(alphabet=string.ascii_lowercase + "_ ", min_size=1, max_size=8), min_size=1, max_size=4),
    cells=st.lists(st.lists(CELL, min_size=4, max_size=4), min_size=1, max_size=12),
)
def test_a_table_is_read_with_every_row_or_refused(tmp_path_factory, header: list[str], cells: list[list[str]]) -> None:
    rows = [row[: len(header)] for row in cells]
    path = tmp_path_factory.mktemp("table") / "export.csv"
    path.write_text(_csv(header, rows))
    try:
        frame = read_table(path)
    except DataError as exc:
        assert str(exc).startswith(str(path))
        return
    assert len(frame) == len(rows)  # no record silently dropped


@FUZZ
@given(data=st.one_of(st.binary(max_size=200), st.text(max_size=200).map(lambda t: t.encode("utf-8", "replace"))))
def test_any_mapping_file_is_loaded_or_refused(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("mapping") / "mapping.toml"
    path.write_bytes(data)
    try:
        mapping = load_mapping(path)
    except DataError as exc:
        assert str(exc).startswith(str(path))
        return
    assert all(isinstance(v, str) for v in mapping.columns.values())


TOML_VALUES = st.one_of(
    st.text(max_size=6), st.integers(), st.floats(allow_nan=False), st.booleans(), st.lists(st.integers(), max_size=2)
)


@FUZZ
@given(
    doc=st.dictionaries(
        st.sampled_from(["columns", "default", "colums", "x"]),
        st.one_of(
            TOML_VALUES,
            st.dictionaries(st.sampled_from(["amount", "positive", "rating", "zzz"]), TOML_VALUES, max_size=3),
        ),
        max_size=3,
    )
)
def test_any_mapping_document_is_loaded_or_refused(tmp_path_factory, doc: dict) -> None:
    import tomli_w

    path = tmp_path_factory.mktemp("mapping") / "mapping.toml"
    path.write_text(tomli_w.dumps(doc))
    try:
        load_mapping(path)
    except DataError as exc:
        assert str(exc).startswith(str(path))


RAW_VALUES = {
    "merchant_id": st.one_of(st.sampled_from(["A", "B", " C ", ""]), TEXT),
    "date": st.one_of(st.sampled_from(["2026-01-03", "2026-02-28", "2025-12-31", "yesterday", "", "9999-12-31"]), TEXT),
    "amount": st.one_of(st.floats(min_value=0, max_value=1e6), st.just(1.5e308), NUMBERS, TEXT),
    "rating": st.one_of(st.sampled_from([1, 3, 5, None]), NUMBERS),
    "inventory_turnover": st.one_of(st.floats(min_value=0, max_value=100), NUMBERS),
    "category": st.one_of(st.sampled_from(["food", "home", None]), TEXT),
    "default": st.one_of(st.sampled_from([0, 1]), NUMBERS, TEXT),
}


@FUZZ
@given(rows=st.lists(st.fixed_dictionaries(RAW_VALUES), min_size=1, max_size=10))
def test_raw_transactions_become_features_that_count_every_row_or_are_refused(rows: list[dict]) -> None:
    raw = pd.DataFrame(rows)
    try:
        features = build_features(raw, "raw.csv")
    except DataError as exc:
        assert str(exc).startswith("raw.csv")
        return
    assert int(features["count"].sum()) == len(raw)  # every transaction is in a merchant-month
    numeric = features[["amount", "avg_rating", "inventory_turnover", "growth"]].to_numpy(dtype="float64")
    assert np.isfinite(numeric).all()


@FUZZ
@given(
    cells=st.lists(
        st.tuples(
            st.one_of(st.floats(-1e3, 1e3).map(str), NUMBERS.map(str), st.sampled_from(["", "x", "1e300"])),
            st.sampled_from(["0", "1"] * 9 + ["2", ""]),  # mostly valid labels: the rest gets exercised
        ),
        min_size=1,
        max_size=10,
    )
)
def test_a_training_table_keeps_every_row_or_is_refused_and_encodes_finitely(tmp_path_factory, cells: list) -> None:
    path = tmp_path_factory.mktemp("train") / "features.csv"
    path.write_text(_csv(["x", "default"], [list(c) for c in cells]))
    try:
        table = load_labeled(path)
    except DataError as exc:
        assert str(exc).startswith(str(path))
        return
    assert len(table.y) == len(cells) == len(table.frame)
    encoded = Encoder.from_stats(compute_stats(table.frame)).transform(table.frame)
    assert np.isfinite(encoded).all() and not any(math.isnan(v) for v in encoded.ravel())
