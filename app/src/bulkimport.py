"""Spot imports on two processes: what ``import FILE`` runs.

The result is exactly that of ``db.replace_spots(conn,
importer.read_spot_file(path))`` -- the same rows with the same ids, the
same customers, report totals, batch row and data version -- but the work
is shared by two worker processes (forked, so the file's bytes are not
copied to them):

1. Each worker reads and validates a part of the file: a CSV is cut in
   two at a line break (when it has no quoted fields, whose line breaks
   could be inside a value; a CSV with quotes is read by the first worker
   alone); a workbook is parsed by the main process before the workers
   are forked, and each turns half of its rows into spots.
2. The main process opens the write transaction, adds the batch and new
   customers, and works out every spot's id from the per-month counts
   (ids follow broadcast month, then customer name, then file order, as
   ``replace_spots`` gives them).  The months are split between the
   workers at a month boundary; each sends the other the rows of the
   other's months.
3. Each worker writes its months' spots, with their ids, and their report
   totals into a scratch database of the same schema (a temporary file,
   thrown away after the import; no journal, no syncs), while the main
   process deletes the months being replaced.
4. The main process copies both scratch tables into the database with
   ``INSERT INTO spots SELECT * FROM scratch.spots``, which SQLite does
   page by page without decoding the rows (the transfer optimisation; it
   needs foreign keys off on the connection for that statement, so they
   are off for the import's transaction: every customer and batch id
   written was just looked up or created in it), updates the batch and
   the data version, archives the file and commits.

Anything unusual sends the import down the one-process path instead: a
file with any problem (so the problems are listed exactly as that path
lists them, and nothing is written), a worker that fails while reading.
Nothing is written until the main process commits; on any error it rolls
back.
"""

from __future__ import annotations

import codecs
import csv
import io
import multiprocessing
import os
import shutil
import sqlite3
import tempfile
import threading
import traceback
from collections import Counter
from collections.abc import Callable
from itertools import islice
from operator import itemgetter
from pathlib import Path

from . import db
from .importer import (ImportFileError, _csv_layout, _csv_records,
                       _xlsx_cells, _xlsx_sheet, check_rows, read_spot_file)

WORKERS = 2

_INSERT_SPOT_WITH_ID = (
    "INSERT INTO spots (id, bill_code, air_date, broadcast_month,"
    " customer_id, agency, sales_person, revenue_type, spot_type,"
    " language_code, market, length_seconds, gross_rate, station_net,"
    " broker_fees, contract, import_batch_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class WorkerError(RuntimeError):
    """A worker process failed after the file was found valid."""


# --- reading: what each worker validates -----------------------------------

def _csv_parts(path: Path) -> list[Callable[[], list]]:
    """Readers of the CSV's two halves; one reader of the whole file when
    it has quoted fields (a line break may be inside a value), blank lines
    before the header or an old Mac line end in it."""
    data = path.read_bytes()
    start = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
    end_of_header = data.find(b"\n", start)
    whole = [lambda: read_spot_file(path)]
    if b'"' in data or end_of_header < 0:
        return whole
    head = data[start:end_of_header + 1]
    if b"\r" in head[:-2]:
        return whole
    try:
        header = next(csv.reader([head.decode("utf-8")]), None)
        order = _csv_layout(header) if header else None
    except Exception:  # reading the whole file reports it
        return whole
    if not header:
        return whole
    body = end_of_header + 1
    middle = data.find(b"\n", body + (len(data) - body) // 2)
    cut = len(data) if middle < 0 else middle + 1
    # a record ends at \n, \r\n or a lone \r (there are no quotes)
    first = data[body:cut]
    records = (first.count(b"\n") + first.count(b"\r")
               - first.count(b"\r\n"))

    def part(lo: int, hi: int, line: int) -> Callable[[], list]:
        def read():
            text = data[lo:hi].decode("utf-8")
            reader = csv.reader(io.StringIO(text, newline=""))
            return _checked(_csv_records(reader, order, line))
        return read

    return [part(body, cut, 2), part(cut, len(data), 2 + records)]


def _xlsx_parts(rows, height: int) -> list[Callable[[], list]]:
    """Readers of the first and second half of a parsed sheet's rows.
    Parsing is most of the time a workbook takes and calamine cannot parse
    half a sheet: the main process parses it before the workers are
    forked, and each worker has it (copy-on-write) and turns its half of
    the rows into spots."""
    half = max(height - 1, 0) // 2

    def first() -> list:
        return _checked(_xlsx_cells(islice(rows, half)))

    def second() -> list:
        for _ in islice(rows, half):
            pass
        return _checked(_xlsx_cells(rows, 2 + half))

    return [first, second]


def _checked(rows) -> list:
    good, _errors, total = check_rows(rows)
    if total:
        raise _Invalid()
    return good


class _Invalid(Exception):
    """The part has problems: the one-process path lists them."""


# --- the worker processes ----------------------------------------------------

def _send_rows(pipe, payload) -> None:
    pipe.send(payload)


def _worker(index: int, read: Callable[[], list] | None, main, peers,
            scratch: str) -> None:
    # only this worker's end of the pipe to the other one stays open here,
    # so that either sees the end of the pipe when the other one fails
    peers[1 - index].close()
    peer = peers[index]
    try:
        try:
            rows = read() if read is not None else []
        except (_Invalid, ImportFileError):
            main.send(("invalid", None))
            return
        # what the main process needs: months and their spot counts, and
        # the distinct (month, customer) pairs in file order
        pairs = dict.fromkeys(zip(map(itemgetter(2), rows),
                                  map(itemgetter(3), rows)))
        main.send(("read", (Counter(map(itemgetter(2), rows)), list(pairs))))
        plan = main.recv()
        if plan is None:
            return
        months, first_id, batch_id, by_name = plan[index]
        mine = set(months)
        theirs = set(plan[1 - index][0])
        own: dict[str, list] = {}
        other: dict[str, list] = {}
        for row in rows:
            month = row[2]
            if month in mine:
                target = own
            elif month in theirs:
                target = other
            else:
                continue  # a closed month
            group = target.get(month)
            if group is None:
                group = target[month] = []
            group.append(row)
        del rows
        sender = threading.Thread(target=_send_rows, args=(peer, other))
        sender.start()
        received = peer.recv()
        sender.join()
        del other
        conn = sqlite3.connect(scratch, isolation_level=None)
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute(f"PRAGMA cache_size = -{db.BULK_CACHE_KIB}")
        conn.execute("BEGIN")
        next_id = first_id
        for month in months:
            # file order: the first part's rows come before the second's
            a, b = own.get(month, []), received.get(month, [])
            part = a + b if index == 0 else b + a
            part.sort(key=itemgetter(3))
            conn.executemany(_INSERT_SPOT_WITH_ID, [
                (spot_id, bill, air, month, by_name[customer], agency, ae,
                 rtype, stype, lang, market, length, gross, net, broker,
                 contract, batch_id)
                for spot_id, (bill, air, month, customer, agency, ae, rtype,
                              stype, lang, market, length, gross, net,
                              broker, contract)
                in enumerate(part, next_id)])
            conn.execute(db._INSERT_TOTALS, (month,))
            next_id += len(part)
        conn.execute("COMMIT")
        conn.close()
        main.send(("written", next_id - first_id))
    except BaseException:
        main.send(("failed", traceback.format_exc()))
    finally:
        peer.close()
        main.close()


class _Workers:
    def __init__(self, reads: list, scratches: list[str]):
        context = multiprocessing.get_context("fork")
        peers = context.Pipe()
        self.pipes = []
        self.processes = []
        for index in range(WORKERS):
            ours, theirs = context.Pipe()
            read = reads[index] if index < len(reads) else None
            process = context.Process(
                target=_worker, daemon=True,
                args=(index, read, theirs, peers, scratches[index]))
            process.start()
            theirs.close()
            self.pipes.append(ours)
            self.processes.append(process)
        for end in peers:
            end.close()

    def receive_from(self, index: int):
        try:
            return self.pipes[index].recv()
        except EOFError:
            return ("failed", "the worker process ended")

    def receive(self) -> list:
        return [self.receive_from(i) for i in range(len(self.pipes))]

    def send(self, message) -> None:
        for pipe in self.pipes:
            try:
                pipe.send(message)
            except OSError:
                pass  # the worker has ended; receive() will say so

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.close()
        for process in self.processes:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()


# --- the import --------------------------------------------------------------

def _scratch_database(path: Path, conn: sqlite3.Connection) -> None:
    """An empty database with the spots and spot_totals tables and the
    spots index exactly as in ``conn`` (the transfer optimisation needs the
    same columns and indexes)."""
    schema = [row[0] for row in conn.execute(
        "SELECT sql FROM sqlite_master WHERE tbl_name IN"
        " ('spots', 'spot_totals') AND sql IS NOT NULL"
        " ORDER BY type = 'index', name")]
    scratch = sqlite3.connect(path, isolation_level=None)
    try:
        scratch.executescript(";\n".join(schema) + ";")
    finally:
        scratch.close()


def _split(months: list[str], counts: Counter) -> int:
    """Index of the month boundary that shares the spots most evenly."""
    total = sum(counts[m] for m in months)
    best, best_gap, done = len(months), total, 0
    for i, month in enumerate(months):
        gap = abs(total - 2 * done)
        if gap < best_gap:
            best, best_gap = i, gap
        done += counts[month]
    return best


def import_spot_file(
    conn: sqlite3.Connection,
    path: Path,
    *,
    source_file: str,
    kind: str = "import",
    archive: Callable[[int], str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> db.ImportResult:
    """Import a spot file (see the module docstring); raises what
    ``read_spot_file`` raises for a bad file, and nothing is written.
    ``progress(n)``: n more rows done (half of them when the file has been
    read, the rest when the import is committed)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        reads = _csv_parts(path)
    elif suffix == ".xlsx":
        try:
            reads = _xlsx_parts(*_xlsx_sheet(path))
        except ImportFileError:
            return _one_process(conn, path, source_file, kind, archive,
                                progress)
    else:
        return _one_process(conn, path, source_file, kind, archive,
                            progress)
    folder = tempfile.mkdtemp(prefix="ctv-import-")
    try:
        scratches = [os.path.join(folder, f"part{i}.db")
                     for i in range(WORKERS)]
        workers = _Workers(reads, scratches)
        try:
            answers = workers.receive()
            if any(kind_ != "read" for kind_, _ in answers):
                workers.send(None)
                return _one_process(conn, path, source_file, kind, archive,
                                    progress)
            if not any(counts for (_, (counts, _)) in answers):
                workers.send(None)
                return _one_process(conn, path, source_file, kind, archive,
                                    progress)
            for scratch in scratches:
                _scratch_database(Path(scratch), conn)
            return _write(conn, workers, answers, scratches, source_file,
                          kind, archive, progress)
        finally:
            workers.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _one_process(conn, path, source_file, kind, archive,
                 progress) -> db.ImportResult:
    rows = read_spot_file(path, progress)
    return db.replace_spots(conn, rows, source_file=source_file, kind=kind,
                            archive=archive)


def _write(conn, workers: _Workers, answers, scratches, source_file, kind,
           archive, progress) -> db.ImportResult:
    counts: Counter = Counter()
    pairs: list[tuple[str, str]] = []
    for _, (part_counts, part_pairs) in answers:
        counts.update(part_counts)
        pairs.extend(part_pairs)
    months = sorted(counts)
    total_rows = sum(counts.values())
    if progress is not None:
        progress(total_rows // 2)
    started = db.now_iso()
    attached = 0
    sent = False
    try:
        # ATTACH is not allowed inside a transaction, and the transfer
        # optimisation is off while foreign keys are enforced.
        for scratch in scratches:
            conn.execute(f"ATTACH DATABASE ? AS scratch{attached}",
                         (scratch,))
            attached += 1
        conn.execute("PRAGMA foreign_keys = OFF")
        with db._bulk_cache(conn):
            # BEGIN (deferred), not IMMEDIATE, which would also lock the
            # scratch databases the workers are about to write; the first
            # statement writes, so the write lock is taken (or waited
            # for) before anything is read.
            conn.execute("BEGIN")
            try:
                batch_id = conn.execute(
                    "INSERT INTO import_batches (kind, source_file,"
                    " started_at) VALUES (?, ?, ?)",
                    (kind, source_file, started)).lastrowid
                closed = db.closed_months(conn)
                skipped = [m for m in months if m in closed]
                keep = [m for m in months if m not in closed]
                # the distinct names in file order (replace_spots: by month
                # when some months are skipped): the first spelling is kept
                if skipped:
                    names = dict.fromkeys(
                        name for month in keep for m, name in pairs
                        if m == month)
                else:
                    names = dict.fromkeys(map(itemgetter(1), pairs))
                by_name = db._customer_ids(conn, names)
                marks = ", ".join("?" * len(keep))
                base = conn.execute(
                    "SELECT coalesce(max(id), 0) FROM spots"
                    f" WHERE broadcast_month NOT IN ({marks})",
                    keep).fetchone()[0]
                cut = _split(keep, counts)
                first, second = keep[:cut], keep[cut:]
                second_id = base + 1 + sum(counts[m] for m in first)
                workers.send([(first, base + 1, batch_id, by_name),
                              (second, second_id, batch_id, by_name)])
                sent = True
                if keep:
                    conn.execute("DELETE FROM spots WHERE broadcast_month"
                                 f" IN ({marks})", keep)
                    conn.execute("DELETE FROM spot_totals WHERE"
                                 f" broadcast_month IN ({marks})", keep)
                # each part is copied in as soon as its worker is done
                written = 0
                for i in range(len(scratches)):
                    what, value = workers.receive_from(i)
                    if what != "written":
                        raise WorkerError(f"import worker failed:\n{value}")
                    written += value
                    # Foreign keys are off for the fast copy, so the part's
                    # references are checked here (200,000 spots: ~0.05 s).
                    stray = conn.execute(
                        f"SELECT count(*) FROM scratch{i}.spots"
                        " WHERE import_batch_id IS NOT ?"
                        " OR customer_id NOT IN (SELECT id FROM main.customers)",
                        (batch_id,)).fetchone()[0]
                    if stray:
                        raise WorkerError(
                            f"import worker wrote {stray} spots whose customer"
                            " or batch does not exist")
                    conn.execute("INSERT INTO main.spots"
                                 f" SELECT * FROM scratch{i}.spots")
                    conn.execute("INSERT INTO main.spot_totals"
                                 f" SELECT * FROM scratch{i}.spot_totals")
                if written != sum(counts[m] for m in keep):
                    raise WorkerError(f"the workers wrote {written} spots,"
                                      f" not {sum(counts[m] for m in keep)}")
                stored = archive(batch_id) if archive is not None else None
                conn.execute(
                    "UPDATE import_batches SET stored_file = ?,"
                    " finished_at = ?, row_count = ?, months = ?,"
                    " skipped_months = ?, status = 'completed' WHERE id = ?",
                    (stored, db.now_iso(), written, ",".join(keep),
                     ",".join(skipped), batch_id))
                db._bump_data_version(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
    finally:
        if not sent:
            workers.send(None)
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.execute("PRAGMA foreign_keys = ON")
        for i in range(attached):
            conn.execute(f"DETACH DATABASE scratch{i}")
    if progress is not None:
        progress(total_rows - total_rows // 2)
    return db.ImportResult(batch_id, written, keep, skipped,
                           total_rows - written, stored)
