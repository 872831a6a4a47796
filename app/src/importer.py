"""Reading and validating import files.

Spot files are ``.csv`` (header row naming the columns, any order) or
``.xlsx`` (Commercial Log layout: first sheet, first row a header, the
columns in the fixed order of :data:`COLUMNS`).  Every row is validated
before anything is written; :class:`ImportFileError` carries all problems
with their row numbers.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta
from pathlib import Path

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
MAX_ERRORS = 1000


class ImportFileError(Exception):
    def __init__(self, errors: list[str], total: int | None = None):
        self.errors = errors
        self.total = len(errors) if total is None else total
        super().__init__(f"{self.total} problem(s) in the file")


def _header_key(text: str) -> str:
    return "_".join(str(text).strip().lower().split())


def _csv_layout(header: list[str]) -> list[int] | None:
    """Where each of NAMES is in a CSV row with this header: None when the
    columns are already in NAMES order.  ImportFileError if the header
    misses, repeats or adds columns."""
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
    order = [keys.index(n) for n in NAMES]
    return None if order == list(range(len(keys))) else order


def _csv_records(reader: Iterable[list[str]], order: list[int] | None,
                 start: int = 2) -> Iterator[tuple[int, list[str]]]:
    """The data rows after the header, numbered from ``start``: blank
    lines skipped, columns put in NAMES order."""
    width = len(NAMES)
    for line, row in enumerate(reader, start=start):
        if len(row) != width:
            if not row or not any(c.strip() for c in row):
                continue  # blank line
            yield line, row  # wrong width, reported by the validator
        elif order is None:
            yield line, row
        else:
            yield line, [row[i] for i in order]


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        while header is not None and not any(c.strip() for c in header):
            header = next(reader, None)
        if header is None:
            raise ImportFileError(["the file is empty (no header row)"])
        yield from _csv_records(reader, _csv_layout(header))


def _cell_text(value) -> str:
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


class _CellTexts(dict):
    """Cell value (number, date, time) -> its text, computed on first use."""

    def __missing__(self, value):
        text = self[value] = _cell_text(value)
        return text


def _xlsx_sheet(path: Path):
    """The first sheet's rows after its header row, as calamine gives them
    (values, not yet text), and the sheet's height (rows with the header,
    to share the rows out)."""
    from python_calamine import CalamineError, CalamineWorkbook

    try:
        book = CalamineWorkbook.from_path(str(path))
        sheet = book.get_sheet_by_index(0)
        rows = sheet.iter_rows()
        header = next(rows, None)
    except (CalamineError, OSError, ValueError) as exc:
        raise ImportFileError([f"cannot read the workbook: {exc}"]) from None
    if header is None or not any(_cell_text(c).strip() for c in header):
        raise ImportFileError(["the file is empty (no header row)"])
    return rows, sheet.height


def _xlsx_cells(rows: Iterable[list],
                start: int = 2) -> Iterator[tuple[int, list[str]]]:
    """Numbered rows of cell texts, blank rows left out."""
    width = len(COLUMNS)
    texts = _CellTexts()
    for line, raw in enumerate(rows, start=start):
        # Dates, lengths and amounts repeat: each distinct value is turned
        # into text once.  Booleans are kept out of the cache (True == 1.0).
        cells = [c if type(c) is str
                 else texts[c] if type(c) is not bool else str(c)
                 for c in raw]
        if len(raw) > 2 and isinstance(raw[2], date):
            # a broadcast month typed into Excel becomes a date cell
            cells[2] = f"{raw[2].year:04d}-{raw[2].month:02d}"
        if len(cells) > width:
            while len(cells) > width and not cells[-1].strip():
                cells.pop()
        # (most rows start with a bill code: any() only for the others)
        if not (cells and cells[0].strip()) and not any(
                c.strip() for c in cells):
            continue
        yield line, cells


def _xlsx_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    yield from _xlsx_cells(_xlsx_sheet(path)[0])


def count_lines(path: Path) -> int:
    """A cheap upper bound on the data rows, for progress bars."""
    if path.suffix.lower() != ".csv":
        return 0
    count = 0
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            count += block.count(b"\n")
    return count


def iter_file_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _csv_rows(path)
    if suffix == ".xlsx":
        return _xlsx_rows(path)
    raise ImportFileError(
        [f"unsupported file type {suffix or '(none)'}: use .csv or .xlsx"])


# --- value parsing ---------------------------------------------------------

def _parse_date(text: str) -> str:
    text = text.strip()
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    for fmt in ("%m/%d/%Y", "%m/%d/%y"):
        try:
            return datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            pass
    raise ValueError(text)


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
        return (f"{column} {raw!r} is too large (at most {MAX_MONEY:,}.00 "
                "either way)")
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


def validate_rows(rows: Iterable[tuple[int, list[str]]],
                  progress=None) -> list[tuple]:
    """Validate every row; return spot tuples (db.SPOT_COLUMNS order, money
    in cents) or raise ImportFileError listing every problem."""
    good, errors, total_errors = check_rows(rows, progress)
    if total_errors:
        raise ImportFileError(errors, total_errors)
    if not good:
        raise ImportFileError(["the file has no data rows"])
    return good


def check_rows(rows: Iterable[tuple[int, list[str]]],
               progress=None) -> tuple[list[tuple], list[str], int]:
    """The spot tuples of the good rows, the first MAX_ERRORS problems
    ("row N: ...") and the number of problems.

    Values repeat a lot in a Commercial Log (dates, months, names, codes,
    rates), so each distinct text is parsed once and remembered; equal
    values also share one string object, which keeps memory down."""
    width = len(COLUMNS)
    good: list[tuple] = []
    errors: list[str] = []
    total_errors = 0
    dates: dict[str, str | None] = {}
    months: dict[str, str | None] = {}
    texts: dict[str, str] = {}      # raw -> stripped
    names: dict[str, str] = {}      # raw -> whitespace-normalised
    money: dict[str, int | None] = {}  # raw -> cents, None if not money
    lengths: dict[str, int | None] = {}  # raw -> seconds, -2 if bad
    revenue_types: dict[str, str] = {}  # raw -> stripped, Trade spelt so
    text = texts.get
    name = names.get
    seen = 0

    def problem(line: int, message: str) -> None:
        nonlocal total_errors
        total_errors += 1
        if len(errors) < MAX_ERRORS:
            errors.append(f"row {line}: {message}")

    def clean(raw: str) -> str:
        value = texts[raw] = raw.strip()
        return value

    def cents(raw: str) -> int | None:
        try:
            value = parse_money(raw) if raw.strip() else None
        except ValueError:
            value = None
        money[raw] = value
        return value

    for line, cells in rows:
        seen += 1
        if progress is not None and seen % 10000 == 0:
            progress(10000)
        if len(cells) != width:
            problem(line, f"expected {width} columns, found {len(cells)}")
            continue
        (bill, air, month, customer, agency, ae, rtype, stype, lang, market,
         length, gross, net, broker, contract) = cells
        bad = False
        value = text(bill)
        if value is None:
            value = texts[bill] = bill.strip()
        bill = value
        if not bill:
            problem(line, "bill_code is empty")
            bad = True
        air_iso = dates.get(air, "")
        if air_iso == "":
            try:
                air_iso = _parse_date(air)
            except ValueError:
                air_iso = None
            dates[air] = air_iso
        if air_iso is None:
            problem(line, f"air_date {air!r} is not a date "
                          "(use YYYY-MM-DD or MM/DD/YYYY)")
            bad = True
        month_key = months.get(month, "")
        if month_key == "":
            try:
                month_key = parse_month(month)
            except MonthError:
                month_key = None
            months[month] = month_key
        if month_key is None:
            problem(line, f"broadcast_month {month!r} is not a month "
                          "like Jan-26")
            bad = True
        value = name(customer)
        if value is None:
            value = names[customer] = normalise_name(customer)
        if not value:  # take it from the bill code
            raw = bill.partition(":")[2]
            value = name(raw)
            if value is None:
                value = names[raw] = normalise_name(raw)
        customer = value
        if not customer:
            problem(line, "customer is empty (and bill_code has no "
                          "'Agency:Customer' part)")
            bad = True
        value = revenue_types.get(rtype)
        if value is None:
            value = rtype.strip()
            if value.casefold() == "trade":
                value = "Trade"
            revenue_types[rtype] = value
        if not value:
            problem(line, "revenue_type is empty")
            bad = True
        rtype = value
        seconds = lengths.get(length, -1)
        if seconds == -1:
            try:
                seconds = _parse_length(length)
            except ValueError:
                seconds = -2
            lengths[length] = seconds
        if seconds == -2:
            problem(line, f"length {length!r} is not seconds or H:MM:SS "
                          "(at most 24 hours)")
            bad = True
        gross_cents = money[gross] if gross in money else cents(gross)
        if gross_cents is None:
            problem(line, money_problem("gross_rate", gross))
            bad = True
        net_cents = money[net] if net in money else cents(net)
        if net_cents is None:
            problem(line, money_problem("station_net", net))
            bad = True
        if not broker.strip():
            broker_cents = 0
        else:
            broker_cents = money[broker] if broker in money else cents(broker)
            if broker_cents is None:
                problem(line, money_problem("broker_fees", broker))
                bad = True
        if bad:
            continue
        value = name(ae)
        if value is None:
            value = names[ae] = normalise_name(ae)
        ae = value
        agency = text(agency) or clean(agency)
        stype = text(stype) or clean(stype)
        lang = text(lang) or clean(lang)
        market = text(market) or clean(market)
        contract = text(contract) or clean(contract)
        good.append((bill, air_iso, month_key, customer, agency or None,
                     ae or None, rtype, stype or None, lang or None,
                     market or None, seconds, gross_cents, net_cents,
                     broker_cents, contract or None))
    if progress is not None:
        progress(seen % 10000)
    return good, errors, total_errors


def read_spot_file(path: Path, progress=None) -> list[tuple]:
    return validate_rows(iter_file_rows(path), progress)


def read_budget_file(path: Path) -> list[tuple[str, str, int]]:
    """CSV with columns ae, month, amount -> (sales_person, YYYY-MM, cents)."""
    if path.suffix.lower() != ".csv":
        raise ImportFileError(["budget files must be .csv (ae, month, amount)"])
    errors: list[str] = []
    result: list[tuple[str, str, int]] = []
    seen: dict[tuple[str, str], int] = {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise ImportFileError(["the file is empty (no header row)"])
        keys = [_header_key(h) for h in header]
        if sorted(keys) != ["ae", "amount", "month"]:
            raise ImportFileError(
                ["header must be exactly: ae, month, amount (found "
                 + ", ".join(keys) + ")"])
        index = [keys.index(k) for k in ("ae", "month", "amount")]
        for line, row in enumerate(reader, start=2):
            if not row or not any(c.strip() for c in row):
                continue
            if len(row) != 3:
                errors.append(f"row {line}: expected 3 columns, "
                              f"found {len(row)}")
                continue
            ae, month, amount = (row[i] for i in index)
            ae = normalise_name(ae)
            bad = False
            if not ae:
                errors.append(f"row {line}: ae is empty")
                bad = True
            try:
                month_key = parse_month(month)
            except MonthError:
                errors.append(f"row {line}: month {month!r} is not a month "
                              "like Jan-26")
                bad = True
            try:
                cents = parse_money(amount)
            except ValueError:
                errors.append(f"row {line}: "
                              + money_problem("amount", amount))
                bad = True
            if bad:
                continue
            key = (ae.casefold(), month_key)
            if key in seen:
                errors.append(f"row {line}: repeats ae {ae!r} and month "
                              f"{month.strip()} from row {seen[key]}")
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
        return (row[0], row[1], file_label(row[2]), row[3], row[4] or "",
                row[5] or "", row[6], row[7] or "", row[8] or "",
                row[9] or "", "" if row[10] is None else row[10],
                f"{row[11] / 100:.2f}", f"{row[12] / 100:.2f}",
                f"{row[13] / 100:.2f}", row[14] or "")

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
