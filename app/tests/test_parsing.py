from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from src.demo import broadcast_month_range, generate
from src.importer import ImportFileError, parse_money, read_spot_file, write_spot_file
from src.months import MONTH_ABBR, MonthError, add_months, file_label, label, parse_month, parse_month_key

cents = st.integers(min_value=-(10**11), max_value=10**11)


@given(cents)
def test_money_round_trips_in_every_accepted_spelling(value):
    whole, part = divmod(abs(value), 100)
    plain = f"{whole}.{part:02d}"
    grouped = f"{whole:,}.{part:02d}"
    if value < 0:
        spellings = [f"-{plain}", f"-{grouped}", f"({grouped})", f"-${grouped}"]
    else:
        spellings = [plain, grouped, f"${grouped}", f" {plain} "]
    for text in spellings:
        assert parse_money(text) == value, text


@pytest.mark.parametrize("text", ["", "ten", "1.2.3", "nan", "inf", "$", "()", "1,00x"])
def test_not_money(text):
    with pytest.raises(ValueError):
        parse_money(text)


@given(st.integers(min_value=2000 * 12, max_value=2099 * 12 + 11))
def test_month_label_round_trip(index):
    key = f"{index // 12:04d}-{index % 12 + 1:02d}"
    assert parse_month(file_label(key)) == key
    assert parse_month(key) == key == parse_month_key(key)
    assert label(key) == f"{MONTH_ABBR[int(key[5:]) - 1]} {key[:4]}"
    assert add_months(add_months(key, 13), -13) == key


@pytest.mark.parametrize("text", ["Jan", "Jan-2026", "Foo-26", "2026-13", "26-Jan", "Jan-²6", ""])
def test_not_a_month(text):
    with pytest.raises(MonthError):
        parse_month(text)


def test_broadcast_months_tile_the_calendar():
    key = "2024-01"
    for _ in range(36):
        first, last = broadcast_month_range(key)
        assert first.weekday() == 0 and last.weekday() == 6
        # starts on the Monday on or before the 1st, ends on the last Sunday
        first_of_month = date(int(key[:4]), int(key[5:]), 1)
        assert 0 <= (first_of_month - first).days < 7
        assert last.month == first_of_month.month
        assert (last + timedelta(days=7)).month != last.month
        next_first = broadcast_month_range(add_months(key, 1))[0]
        assert (next_first - last).days == 1
        key = add_months(key, 1)


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_export_then_read_gives_the_same_rows(tmp_path: Path, suffix):
    rows, _ = generate(500, seed=5, start="2025-01", months=3)
    path = tmp_path / f"spots{suffix}"
    assert write_spot_file(path, rows) == 500
    assert read_spot_file(path).rows() == rows


def test_header_only_file_is_refused(tmp_path: Path):
    path = tmp_path / "empty.csv"
    write_spot_file(path, [])
    with pytest.raises(ImportFileError) as error:
        read_spot_file(path)
    assert error.value.errors == ["the file has no data rows"]
