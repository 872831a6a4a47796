"""Reading and validating import files, a column at a time.

Spot files are ``.csv`` (header row naming the columns, any order) or
``.xlsx`` (Commercial Log layout: first sheet, first row a header, the
columns in the fixed order of :data:`COLUMNS`).  A file becomes a table of
cell texts (polars reads a CSV, fastexcel a workbook); every column is then
checked as a whole -- each distinct value parsed once -- and
:class:`ImportFileError` carries all problems with their row numbers.
Nothing is written here.

A CSV is UTF-8 (with or without a byte-order mark) or else Windows-1252
(what Excel's plain "CSV" save writes); the encoding used is reported.
"""

from __future__ import annotations

import codecs
import csv
import io
import math
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

from .db import spot_schema
from .months import MonthError, parse_month

# (csv column name, Commercial Log heading) in the fixed xlsx order.
COLUMNS = (
    ("bill_code", "Bill Code"),
    ("air_date", "Air Date"),
    ("broadcast_month", "Broadcast Month"),
    ("customer", "Customer"),
    ("agency", "Agency"),
    ("sales_person", "Sales Person"),
    ("revenue_type", "Revenue Type"),
    ("spot_type", "Spot Type"),
    ("language", "Language"),
    ("market", "Market"),
    ("length", "Length"),
    ("gross_rate", "Gross Rate"),
    ("station_net", "Station Net"),
    ("broker_fees", "Broker Fees"),
    ("contract", "Contract"),
)
NAMES = tuple(name for name, _ in COLUMNS)
HEADINGS = tuple(heading for _, heading in COLUMNS)
WIDTH = len(COLUMNS)
MAX_ERRORS = 1000

# Air dates and broadcast months outside these years are refused: a
# Commercial Log holds this century's business, and a year like 0025 or
# 2205 is a typing mistake that would otherwise file spots far away.
FIRST_YEAR = 2000
LAST_YEAR = 2099


class ImportFileError(Exception):
    def __init__(self, errors: list[str], total: int | None = None):
        self.errors = errors
        self.total = len(errors) if total is None else total
        super().__init__(f"{self.total} problem(s) in the file")


def _header_key(text: str) -> str:
    return "_".join(str(text).strip().lower().split())


def _csv_layout(header: Sequence[str]) -> list[int]:
    """Where each of NAMES is in a CSV row with this header.
    ImportFileError if the header misses, repeats or adds columns."""
    keys = [_header_key(h) for h in header]
    aliases = {_header_key(h): n for n, h in COLUMNS}
    keys = [aliases.get(k, k) for k in keys]
    missing = [n for n in NAMES if n not in keys]
    unknown = [k for k in keys if k not in NAMES]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    problems = []
    if missing:
        problems.append("header: missing column(s) " + ", ".join(missing))
    if unknown:
        problems.append("header: unknown column(s) " + ", ".join(unknown))
    if dupes:
        problems.append("header: repeated column(s) " + ", ".join(dupes))
    if problems:
        raise ImportFileError(problems)
    return [keys.index(n) for n in NAMES]


# --- text: encodings ---------------------------------------------------------

UTF8 = "UTF-8"
UTF8_BOM = "UTF-8 with BOM"
CP1252 = "Windows-1252"


class EncodingError(Exception):
    """The file is neither UTF-8 nor Windows-1252; says where."""


def _where(data: bytes, offset: int) -> str:
    """'row R, column C' of the byte at ``offset`` (rows as the import
    numbers them: records, the header row 1)."""
    text = data[:offset].decode("utf-8", errors="replace").lstrip("\ufeff")
    records = list(csv.reader(io.StringIO(text + "\x00", newline="")))
    row = len(records)
    field = len(records[-1]) if records else 1
    header = records[0] if records else []
    name = f" ({header[field - 1].strip()})" if row > 1 and field <= len(header) and header[field - 1].strip() else ""
    return f"row {row}, column {field}{name}"


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding name): strict UTF-8 first (a byte-order mark is
    dropped), then Windows-1252.  EncodingError naming the row and column
    of the first byte that is neither."""
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8) :].decode("utf-8"), UTF8_BOM
        except UnicodeDecodeError as exc:
            # the mark says UTF-8: read as Windows-1252 every accent would
            # come out wrong
            bad = exc.start + len(codecs.BOM_UTF8)
            raise EncodingError(
                f"starts with a UTF-8 byte-order mark but is not UTF-8 "
                f"text: {_where(data, bad)} has byte 0x{data[bad]:02X}. "
                'Save it from Excel as "CSV UTF-8".'
            ) from None
    else:
        try:
            return data.decode("utf-8"), UTF8
        except UnicodeDecodeError as exc:
            utf8_error = exc.start
    try:
        return data.decode("cp1252"), CP1252
    except UnicodeDecodeError as exc:
        cp1252_error = exc.start
    raise EncodingError(
        f"is neither UTF-8 nor Windows-1252 text: as UTF-8, "
        f"{_where(data, utf8_error)} has byte 0x{data[utf8_error]:02X}; as "
        f"Windows-1252, {_where(data, cp1252_error)} has byte "
        f"0x{data[cp1252_error]:02X}. Save it from Excel as "
        '"CSV UTF-8".'
    )


# --- cells: the file as a table of texts -----------------------------------
#
# A table of cells has the columns NAMES (text; null where a row has fewer
# cells), "row" (the row number in the file, the header being row 1) and
# "width" (how many cells the row has).  Blank rows are not in it.


def _cells_from_rows(rows: Iterable[tuple[int, Sequence[str]]]):
    """The cells of numbered rows (each a list of texts)."""
    import polars as pl

    numbers: list[int] = []
    widths: list[int] = []
    columns: list[list[str | None]] = [[] for _ in range(WIDTH)]
    for line, cells in rows:
        numbers.append(line)
        widths.append(len(cells))
        for index, column in enumerate(columns):
            column.append(cells[index] if index < len(cells) else None)
    return pl.DataFrame(
        {
            **{name: pl.Series(name, column, dtype=pl.String) for name, column in zip(NAMES, columns, strict=True)},
            "row": pl.Series("row", numbers, dtype=pl.Int64),
            "width": pl.Series("width", widths, dtype=pl.Int64),
        }
    )


def _blank(cells: Sequence[str]) -> bool:
    return not any(c.strip() for c in cells)


def _csv_rows_python(text: str) -> Iterator[tuple[int, list[str]]]:
    """Numbered data rows in NAMES order, by Python's csv module (any
    CSV: quoted line breaks, lone CRs, ragged rows)."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    while header is not None and _blank(header):
        header = next(reader, None)
    if header is None:
        raise ImportFileError(["the file is empty (no header row)"])
    order = _csv_layout(header)
    for line, row in enumerate(reader, start=2):
        if len(row) != WIDTH:
            if _blank(row):
                continue
            yield line, row  # wrong width, reported by the checks
        else:
            yield line, [row[i] for i in order]


# A quoted field: a quote at the start of a field (as for Python's csv
# module: a quote elsewhere is a character like any other) to the next
# single quote; replaced by what precedes it, its commas are not counted.
_QUOTED = r'(^|,)"(?:[^"]|"")*"'


def _csv_cells_polars(data: bytes):
    """The cells of a CSV (UTF-8 bytes) by polars' reader, or None for a
    file whose rows polars could split differently from Python's csv
    module (a CR not followed by LF, a quoted line break, a row longer
    than the first, a quote inside a field, no header on the first line):
    such a file is read by :func:`_csv_rows_python`, with the same
    result."""
    import polars as pl

    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        return None
    records = data.count(b"\n") + (not data.endswith(b"\n"))
    if not data or not records:
        return None
    try:
        table = pl.read_csv(
            data, has_header=False, infer_schema=False, empty_string_is_null=False, truncate_ragged_lines=False
        )
    except pl.exceptions.PolarsError:
        return None
    if table.height != records:
        return None  # a record spans lines
    header = table.row(0)
    if _blank(header):
        return None
    order = _csv_layout(header)  # ImportFileError for a bad header
    # a row's cells: the commas outside quoted fields, plus one (polars
    # pads a short row with empty cells).  No row has more cells than the
    # header (polars refuses those), so when there are no quotes and the
    # commas add up to WIDTH - 1 a line, every row has WIDTH cells.
    if b'"' not in data and data.count(b",") == (WIDTH - 1) * records:
        widths = pl.repeat(WIDTH, records - 1, dtype=pl.Int64, eager=True)
    else:
        lines = data.decode("utf-8").split("\n")
        rest = pl.Series(lines[1:records], dtype=pl.String)
        widths = pl.select(
            pl.when(rest.str.contains('"', literal=True))
            .then(rest.str.replace_all(_QUOTED, "$1"))
            .otherwise(rest)
            .str.count_matches(",", literal=True)
            + 1
        ).to_series()
    columns = table.columns
    body = table.slice(1).select(
        *[pl.col(columns[i]).alias(name) for i, name in zip(order, NAMES, strict=True)],
        row=pl.int_range(2, table.height + 1, dtype=pl.Int64),
        width=widths.cast(pl.Int64),
    )
    if (body.get_column("width") == WIDTH).all():
        return body
    # rows of another width whose cells are all blank are skipped (blank
    # as str.strip sees it: polars' whitespace lacks U+001C..U+001F)
    blank = pl.all_horizontal([pl.col(c).str.strip_chars(_PY_SPACE) == "" for c in NAMES])
    return body.filter(~(blank & (pl.col("width") != WIDTH)))


# Python's str.strip() and str.split() whitespace (polars' default set is
# Unicode White_Space, which lacks U+001C..U+001F).
# (tests/test_import_files.py checks it against str.isspace)
_PY_SPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001"
    "\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)


def _csv_cells(path: Path):
    """(cells, encoding) of a CSV file."""
    data = path.read_bytes()
    try:
        text, encoding = decode(data)
    except EncodingError as exc:
        raise ImportFileError([f"the file {exc}"]) from None
    # polars reads UTF-8 bytes: the file's own when they are UTF-8
    if encoding == UTF8_BOM:
        data = data[len(codecs.BOM_UTF8) :]
    elif encoding != UTF8:
        data = text.encode("utf-8")
    del text  # (not kept while polars reads: memory)
    cells = _csv_cells_polars(data)
    if cells is None:
        cells = _cells_from_rows(_csv_rows_python(data.decode("utf-8")))
    return cells, encoding


def _cell_text(value) -> str:
    """A workbook cell as the text a CSV would hold."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (time, timedelta)):
        if isinstance(value, time):
            seconds = value.hour * 3600 + value.minute * 60 + value.second
        else:
            seconds = int(value.total_seconds())
        return str(seconds)
    return str(value)


# A date or time cell in a column that also holds text comes from fastexcel
# as "YYYY-MM-DD HH:MM:SS"; a time of day is on 1899-12-31.
_DATETIME_TEXT = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.\d+)?")


def _mixed_cell(index: int):
    """The text of a cell of a mixed column (fastexcel gave it as text)."""

    def text(value: str) -> str:
        match = _DATETIME_TEXT.fullmatch(value)
        if match is None:
            return value
        year, month, day, hours, minutes, seconds = map(int, match.groups())
        if NAMES[index] == "length" and (year, month) in ((1899, 12), (1900, 1)):
            return str(((day - 31) % 31 * 24 + hours) * 3600 + minutes * 60 + seconds)
        if NAMES[index] == "broadcast_month":
            return f"{year:04d}-{month:02d}"
        return f"{year:04d}-{month:02d}-{day:02d}"

    return text


def _xlsx_cells(path: Path):
    """The cells of the first sheet of a workbook (its first row the
    header), each cell as the text a CSV would hold."""
    import fastexcel
    import polars as pl

    try:
        sheet = fastexcel.read_excel(str(path)).load_sheet(
            0, header_row=0, schema_sample_rows=None, dtype_coercion="coerce"
        )
        typed = sheet.to_polars()
    except (fastexcel.FastExcelError, OSError, ValueError) as exc:
        raise ImportFileError([_workbook_problem(path, exc)]) from None
    if all(re.fullmatch(r"__UNNAMED__\d+", name) or not name.strip() for name in typed.columns):
        raise ImportFileError(["the file is empty (no header row)"])
    texts = [
        _as_text(typed.get_column(name), index).fill_null("").alias(NAMES[index] if index < WIDTH else f"extra_{index}")
        for index, name in enumerate(typed.columns)
    ]
    del typed
    table = pl.DataFrame(texts)
    width = table.width
    filled = [pl.col(c).str.strip_chars(_PY_SPACE) != "" for c in table.columns]
    # a row's width: the sheet's, less the blank cells at its end past the
    # columns of the layout
    last = pl.lit(0, dtype=pl.Int64)
    for index, cell in enumerate(filled):
        last = pl.when(cell).then(index + 1).otherwise(last)
    table = table.with_columns(
        row=pl.int_range(2, table.height + 2, dtype=pl.Int64),
        width=(pl.max_horizontal(last, pl.lit(WIDTH)) if width > WIDTH else pl.lit(width)).cast(pl.Int64),
        blank=~pl.any_horizontal(filled),
    )
    table = table.filter(~pl.col("blank"))
    missing = [pl.lit(None, dtype=pl.String).alias(NAMES[index]) for index in range(width, WIDTH)]
    return table.with_columns(*missing).select(*NAMES, "row", "width")


def _workbook_problem(path: Path, exc: Exception) -> str:
    """Why a workbook could not be read, in words: most often the file is
    no workbook at all (a CSV or a .xls renamed, an empty file)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            workbook = "xl/workbook.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        workbook = False
    if not workbook:
        return 'the file is not an Excel workbook (.xlsx): save it from Excel as "Excel Workbook" or as CSV'
    return f"the workbook cannot be read ({exc})"


def _as_text(column, index: int):
    """A fastexcel column as cell texts (see :func:`_cell_text`)."""
    import polars as pl

    dtype = column.dtype
    if dtype == pl.String:
        if column.str.contains(r"^\d{4}-\d{2}-\d{2} \d{2}:").any():
            return _map_distinct_text(column, _mixed_cell(index))
        return column
    if dtype == pl.Null:
        return column.cast(pl.String)
    if dtype in (pl.Datetime, pl.Date):
        days = column.cast(pl.Date)
        if NAMES[index : index + 1] == ("broadcast_month",):
            return days.dt.strftime("%Y-%m")
        return days.dt.strftime("%Y-%m-%d")
    if dtype == pl.Duration:
        return column.dt.total_seconds().cast(pl.String)
    if dtype == pl.Time:
        return (column.cast(pl.Int64) // 1_000_000_000).cast(pl.String)
    return _map_distinct_text(column, _cell_text)


def _map_distinct_text(column, text: Callable):
    import polars as pl

    distinct = column.unique().drop_nulls()
    values = distinct.to_list()
    return column.replace_strict(
        distinct, pl.Series([text(v) for v in values], dtype=pl.String), default=None, return_dtype=pl.String
    )


# --- value parsing ---------------------------------------------------------


def _plausible_year(year: int, text: str) -> None:
    if not FIRST_YEAR <= year <= LAST_YEAR:
        raise YearError(text)


class YearError(ValueError):
    """A date or month, but of a year outside FIRST_YEAR..LAST_YEAR."""


def _parse_date(text: str) -> str:
    text = text.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        day = None
    if day is None:
        for fmt in ("%m/%d/%Y", "%m/%d/%y"):
            try:
                day = datetime.strptime(text, fmt).date()
                break
            except ValueError:
                pass
        else:
            raise ValueError(text)
    _plausible_year(day.year, text)
    return day.isoformat()


def _parse_month(text: str) -> str:
    key = parse_month(text)  # MonthError (a ValueError) propagates
    _plausible_year(int(key[:4]), text)
    return key


# Larger amounts are refused: no spot costs this much, and SQLite's
# integers (and sums of millions of spots) stay far from overflowing.
MAX_MONEY = 1_000_000_000
MAX_LENGTH_SECONDS = 24 * 3600


class MoneyRangeError(ValueError):
    """A number, but more than MAX_MONEY either way."""


def parse_money(text: str) -> int:
    """'1,234.50', '$1234.5', '(12.00)' or '-12' -> cents.  ValueError if
    it is not money; MoneyRangeError beyond MAX_MONEY either way."""
    try:
        value = float(text)
    except ValueError:
        cleaned = text.strip()
        negative = cleaned.startswith("(") and cleaned.endswith(")")
        cleaned = cleaned.strip("()").strip().replace(",", "")
        if cleaned.startswith("-$"):
            cleaned = "-" + cleaned[2:]
        cleaned = cleaned.lstrip("$")
        value = float(cleaned)  # ValueError propagates
        if negative:
            value = -value
    if not math.isfinite(value):
        raise ValueError(text)
    if abs(value) > MAX_MONEY:
        raise MoneyRangeError(text)
    return round(value * 100)


def money_problem(column: str, raw: str) -> str:
    """Why ``raw`` is not an acceptable amount (for error messages)."""
    if not raw.strip():
        return f"{column} is empty"
    try:
        parse_money(raw)
    except MoneyRangeError:
        return f"{column} {raw!r} is too large (at most {MAX_MONEY:,}.00 either way)"
    except ValueError:
        pass
    return f"{column} {raw!r} is not an amount of money"


def _parse_length(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isascii():
        raise ValueError(text)
    parts = text.split(":")
    if len(parts) <= 3 and all(p.isdigit() and len(p) <= 6 for p in parts):
        seconds = 0
        for part in parts:
            seconds = seconds * 60 + int(part)
        if seconds <= MAX_LENGTH_SECONDS:
            return seconds
    raise ValueError(text)


def normalise_name(text: str) -> str:
    return " ".join(text.split())


def _revenue_type(text: str) -> str:
    value = text.strip()
    return "Trade" if value.casefold() == "trade" else value


def _broker_cents(text: str) -> int:
    return parse_money(text) if text.strip() else 0


# --- checking whole columns ------------------------------------------------


def _parsed(column, parse: Callable, dtype=None):
    """(values, bad): ``parse`` applied to each distinct text of the column
    once; ``bad`` is true where it raised ValueError (the value then
    null), None when no value did."""
    import polars as pl

    dtype = dtype or pl.String
    distinct = column.unique()
    texts = distinct.to_list()
    values: list = []
    failed: list[str] = []
    for text in texts:
        try:
            values.append(parse(text))
        except ValueError:
            values.append(None)
            failed.append(text)
    if dtype == pl.String and values == texts:
        parsed = column  # nothing to change (a stripped column, say)
    else:
        parsed = column.replace_strict(distinct, pl.Series(values, dtype=dtype), return_dtype=dtype)
    bad = column.is_in(pl.Series(failed, dtype=pl.String)) if failed else None
    return parsed, bad


# Amounts written the plain way (what the demo export and most files hold)
# are converted in bulk; for these float(text) * 100 is within a
# millionth of the decimal cents, so rounding gives exactly what
# parse_money gives.  Anything else goes through parse_money, once per
# distinct text.
_PLAIN_MONEY = r"^-?[0-9]{1,10}(?:\.[0-9]{1,2})?$"


def _money(column, parse: Callable = parse_money):
    import polars as pl

    plain = column.str.contains(_PLAIN_MONEY)
    cents = (column.cast(pl.Float64, strict=False) * 100).round(0).cast(pl.Int64, strict=False)
    plain = plain & (cents.abs() <= MAX_MONEY * 100)
    if plain.all():
        return cents, None
    where = (~plain).arg_true()
    values, bad = _parsed(column.gather(where), parse, pl.Int64)
    cents = cents.scatter(where, values)
    if bad is not None:
        bad = pl.Series([False] * len(column), dtype=pl.Boolean).scatter(where, bad)
    return cents, bad


def _message(check: str, raw: str) -> str:
    if check == "air_date":
        return _date_problem("air_date", raw, _parse_date, "is not a date (use YYYY-MM-DD or MM/DD/YYYY)")
    if check == "broadcast_month":
        return _date_problem("broadcast_month", raw, _parse_month, "is not a month like Jan-26")
    if check == "length":
        return f"length {raw!r} is not seconds or H:MM:SS (at most 24 hours)"
    if check in ("gross_rate", "station_net", "broker_fees"):
        return money_problem(check, raw)
    return _FIXED_MESSAGES[check]


def _date_problem(column: str, raw: str, parse: Callable, otherwise: str) -> str:
    try:
        parse(raw)
    except YearError:
        return f"{column} {raw!r} is not in a year from {FIRST_YEAR} to {LAST_YEAR}"
    except ValueError:
        pass
    return f"{column} {raw!r} {otherwise}"


_FIXED_MESSAGES = {
    "bill_code": "bill_code is empty",
    "customer": ("customer is empty (and bill_code has no 'Agency:Customer' part)"),
    "revenue_type": "revenue_type is empty",
}
# the checks in the order a row's problems are listed
CHECKS = (
    "width",
    "bill_code",
    "air_date",
    "broadcast_month",
    "customer",
    "revenue_type",
    "length",
    "gross_rate",
    "station_net",
    "broker_fees",
)


def _strip(text: str) -> str:
    return text.strip()


def _kept(text: str) -> str | None:
    return text.strip() or None


def _kept_name(text: str) -> str | None:
    return normalise_name(text) or None


def _customer_from_bill(bill: str) -> str:
    return normalise_name(bill.strip().partition(":")[2])


def check_cells(cells):
    """Check a table of cells (see above) a column at a time.  Returns
    (spots, the first MAX_ERRORS problems "row N: ...", the number of
    problems); spots is a polars DataFrame of the good rows in
    db.SPOT_COLUMNS order, money in cents."""
    import polars as pl

    wide = cells.get_column("width") == WIDTH
    if not wide.all():
        # a row of another width has that one problem; its cells are not
        # checked
        cells = cells.with_columns([pl.when(wide).then(pl.col(n)).otherwise(pl.lit("")).alias(n) for n in NAMES])

    def column(name: str, parse: Callable, dtype=None):
        return _parsed(cells.get_column(name), parse, dtype)

    bill, _ = column("bill_code", _strip)
    air, bad_air = column("air_date", _parse_date)
    month, bad_month = column("broadcast_month", _parse_month)
    customer, _ = column("customer", normalise_name)
    if (customer == "").any():  # then taken from the bill code
        from_bill, _ = column("bill_code", _customer_from_bill)
        customer = pl.select(pl.when(customer == "").then(from_bill).otherwise(customer)).to_series()
    revenue, _ = column("revenue_type", _revenue_type)
    length, bad_length = column("length", _parse_length, pl.Int64)
    gross, bad_gross = _money(cells.get_column("gross_rate"))
    net, bad_net = _money(cells.get_column("station_net"))
    broker, bad_broker = _money(cells.get_column("broker_fees"), _broker_cents)
    checks = {
        "width": ~wide,
        "bill_code": bill == "",
        "air_date": bad_air,
        "broadcast_month": bad_month,
        "customer": customer == "",
        "revenue_type": revenue == "",
        "length": bad_length,
        "gross_rate": bad_gross,
        "station_net": bad_net,
        "broker_fees": bad_broker,
    }
    bad = {
        name: mask if name == "width" else mask & wide
        for name, mask in checks.items()
        if mask is not None and mask.any()
    }
    errors: list[str] = []
    total = 0
    if bad:
        rows = cells.get_column("row")
        problems = pl.concat(
            [
                pl.DataFrame(
                    {
                        "row": rows.filter(mask),
                        "check": pl.repeat(CHECKS.index(name), mask.sum(), dtype=pl.Int32, eager=True),
                        "raw": cells.get_column(name).filter(mask)
                        if name != "width"
                        else cells.get_column("width").filter(mask).cast(pl.String),
                    }
                )
                for name, mask in bad.items()
            ]
        ).sort(["row", "check"])
        total = problems.height
        for line, check, raw in problems.head(MAX_ERRORS).iter_rows():
            if CHECKS[check] == "width":
                errors.append(f"row {line}: expected {WIDTH} columns, found {raw}")
            else:
                errors.append(f"row {line}: {_message(CHECKS[check], raw)}")
        return None, errors, total
    spots = pl.DataFrame(
        [
            bill,
            air,
            month,
            customer,
            column("agency", _kept)[0],
            column("sales_person", _kept_name)[0],
            revenue,
            column("spot_type", _kept)[0],
            column("language", _kept)[0],
            column("market", _kept)[0],
            length,
            gross,
            net,
            broker.fill_null(0) if broker.null_count() else broker,
            column("contract", _kept)[0],
        ],
        schema=spot_schema(),
    ).rechunk()
    return spots, errors, total


@dataclass
class SpotFile:
    """A valid spot file: ``spots`` in db.SPOT_COLUMNS order (money in
    cents) and the encoding a CSV was read in (None for a workbook)."""

    spots: object  # polars.DataFrame
    encoding: str | None = None

    def __len__(self) -> int:
        return self.spots.height

    def rows(self) -> list[tuple]:
        return self.spots.rows()

    def months(self) -> list[str]:
        return sorted(self.spots.get_column("broadcast_month").unique().to_list())


def _checked(cells) -> object:
    spots, errors, total = check_cells(cells)
    if total:
        raise ImportFileError(errors, total)
    if spots.is_empty():
        raise ImportFileError(["the file has no data rows"])
    return spots


def validate_rows(rows: Iterable[tuple[int, list[str]]]) -> list[tuple]:
    """Validate numbered rows of cell texts; return spot tuples
    (db.SPOT_COLUMNS order, money in cents) or raise ImportFileError
    listing every problem."""
    return _checked(_cells_from_rows(rows)).rows()


def read_spot_file(path: Path) -> SpotFile:
    """Read and check a .csv or .xlsx spot file; ImportFileError lists its
    problems."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        cells, encoding = _csv_cells(path)
    elif suffix == ".xlsx":
        cells, encoding = _xlsx_cells(path), None
    else:
        raise ImportFileError([f"unsupported file type {suffix or '(none)'}: use .csv or .xlsx"])
    return SpotFile(_checked(cells), encoding)


def read_budget_file(path: Path) -> list[tuple[str, str, int]]:
    """CSV with columns ae, month, amount -> (sales_person, YYYY-MM, cents)."""
    if path.suffix.lower() != ".csv":
        raise ImportFileError(["budget files must be .csv (ae, month, amount)"])
    try:
        text, _ = decode(path.read_bytes())
    except EncodingError as exc:
        raise ImportFileError([f"the file {exc}"]) from None
    errors: list[str] = []
    result: list[tuple[str, str, int]] = []
    seen: dict[tuple[str, str], int] = {}
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise ImportFileError(["the file is empty (no header row)"])
    keys = [_header_key(h) for h in header]
    if sorted(keys) != ["ae", "amount", "month"]:
        raise ImportFileError(["header must be exactly: ae, month, amount (found " + ", ".join(keys) + ")"])
    index = [keys.index(k) for k in ("ae", "month", "amount")]
    for line, row in enumerate(reader, start=2):
        if not row or _blank(row):
            continue
        if len(row) != 3:
            errors.append(f"row {line}: expected 3 columns, found {len(row)}")
            continue
        ae, month, amount = (row[i] for i in index)
        ae = normalise_name(ae)
        bad = False
        if not ae:
            errors.append(f"row {line}: ae is empty")
            bad = True
        try:
            month_key = _parse_month(month)
        except YearError:
            errors.append(f"row {line}: month {month!r} is not in a year from {FIRST_YEAR} to {LAST_YEAR}")
            bad = True
        except MonthError:
            errors.append(f"row {line}: month {month!r} is not a month like Jan-26")
            bad = True
        try:
            cents = parse_money(amount)
        except ValueError:
            errors.append(f"row {line}: " + money_problem("amount", amount))
            bad = True
        if bad:
            continue
        key = (ae.casefold(), month_key)
        if key in seen:
            errors.append(f"row {line}: repeats ae {ae!r} and month {month.strip()} from row {seen[key]}")
            continue
        seen[key] = line
        result.append((ae, month_key, cents))
    if errors:
        raise ImportFileError(errors)
    if not result:
        raise ImportFileError(["the file has no data rows"])
    return result


def write_spot_file(path: Path, rows: Iterable[tuple]) -> int:
    """Write spot tuples (db.SPOT_COLUMNS order, cents) as an import file:
    .csv with a header row, or .xlsx in the Commercial Log layout."""
    from .months import file_label

    def out(row):
        return (
            row[0],
            row[1],
            file_label(row[2]),
            row[3],
            row[4] or "",
            row[5] or "",
            row[6],
            row[7] or "",
            row[8] or "",
            row[9] or "",
            "" if row[10] is None else row[10],
            f"{row[11] / 100:.2f}",
            f"{row[12] / 100:.2f}",
            f"{row[13] / 100:.2f}",
            row[14] or "",
        )

    count = 0
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(NAMES)
            for row in rows:
                writer.writerow(out(row))
                count += 1
    elif suffix == ".xlsx":
        from openpyxl import Workbook

        book = Workbook(write_only=True)
        sheet = book.create_sheet("Commercial Log")
        sheet.append(HEADINGS)
        for row in rows:
            cells = list(out(row))
            cells[1] = date.fromisoformat(row[1])
            cells[11:14] = [row[11] / 100, row[12] / 100, row[13] / 100]
            sheet.append(cells)
            count += 1
        book.save(path)
    else:
        raise ValueError(f"unsupported export type {suffix}: use .csv or .xlsx")
    return count
