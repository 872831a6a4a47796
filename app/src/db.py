"""All database access: connections, migrations and the writes.

Every connection runs in WAL mode with foreign keys on.  Connections are in
autocommit mode; writes happen inside :func:`transaction`, so each logical
change (one migration, one import, one closure) is a single transaction.
Report queries live next to the report code and run through
:func:`get_db` / :func:`query`.
"""

from __future__ import annotations

import math
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

# Flask is imported where it is used (get_db, close_db): the command line
# needs none of it and starts 0.1 s sooner without it.

ROLES = ("admin", "management", "ae", "viewer")

# Columns of a spot row as produced by the importer and demo-data, in order.
SPOT_COLUMNS = (
    "bill_code",
    "air_date",
    "broadcast_month",
    "customer",
    "agency",
    "sales_person",
    "revenue_type",
    "spot_type",
    "language_code",
    "market",
    "length_seconds",
    "gross_rate",
    "station_net",
    "broker_fees",
    "contract",
)

# Versioned migrations: MIGRATIONS[i] takes the schema from version i to i+1.
# Never edit a released migration; append a new one.
MIGRATIONS: tuple[str, ...] = (
    # 1: initial schema
    """
    CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role          TEXT NOT NULL
                      CHECK (role IN ('admin', 'management', 'ae', 'viewer')),
        active        INTEGER NOT NULL DEFAULT 1,
        created_at    TEXT NOT NULL
    );
    CREATE TABLE customers (
        id   INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE
    );
    CREATE TABLE import_batches (
        id             INTEGER PRIMARY KEY,
        kind           TEXT NOT NULL,
        source_file    TEXT NOT NULL,
        stored_file    TEXT,
        started_at     TEXT NOT NULL,
        finished_at    TEXT,
        row_count      INTEGER NOT NULL DEFAULT 0,
        months         TEXT NOT NULL DEFAULT '',
        skipped_months TEXT NOT NULL DEFAULT '',
        status         TEXT NOT NULL DEFAULT 'running'
    );
    CREATE TABLE month_closures (
        broadcast_month TEXT PRIMARY KEY,
        closed_at       TEXT NOT NULL,
        closed_by       TEXT NOT NULL
    );
    CREATE TABLE budgets (
        sales_person    TEXT NOT NULL,
        broadcast_month TEXT NOT NULL,
        amount          INTEGER NOT NULL,
        import_batch_id INTEGER REFERENCES import_batches (id),
        PRIMARY KEY (sales_person, broadcast_month)
    );
    CREATE TABLE spots (
        id              INTEGER PRIMARY KEY,
        bill_code       TEXT NOT NULL,
        air_date        TEXT NOT NULL,
        broadcast_month TEXT NOT NULL,
        customer_id     INTEGER NOT NULL REFERENCES customers (id),
        agency          TEXT,
        sales_person    TEXT,
        revenue_type    TEXT NOT NULL,
        spot_type       TEXT,
        language_code   TEXT,
        market          TEXT,
        length_seconds  INTEGER,
        gross_rate      INTEGER NOT NULL,
        station_net     INTEGER NOT NULL,
        broker_fees     INTEGER NOT NULL,
        contract        TEXT,
        source_file     TEXT,
        import_batch_id INTEGER NOT NULL REFERENCES import_batches (id)
    );
    -- Every report selects a range of broadcast months first, then filters
    -- or groups on AE, revenue type, market or language within it; spots
    -- are written in month order, so this index plus the table order serve
    -- them all.  Indexes on the low-cardinality columns alone would not be
    -- chosen for a year's range and would slow imports.
    CREATE INDEX spots_month_customer ON spots (broadcast_month, customer_id);
    """,
    # 2: sessions that can be ended; failed logins for throttling
    """
    -- A user's sessions carry this nonce; changing it (logout, new
    -- password, disabling) ends every session of that user.
    ALTER TABLE users ADD COLUMN session_nonce TEXT NOT NULL DEFAULT '';
    UPDATE users SET session_nonce = lower(hex(randomblob(16)));
    -- Login attempts of the last few minutes (older rows are pruned):
    -- a row is written before the password is checked and removed again
    -- when the login succeeds, so the rows left are the failures.
    -- username is the name as typed, trimmed and casefolded.
    CREATE TABLE login_attempts (
        id           INTEGER PRIMARY KEY,
        username     TEXT NOT NULL,
        address      TEXT NOT NULL,
        attempted_at REAL NOT NULL
    );
    CREATE INDEX login_attempts_username
        ON login_attempts (username, attempted_at);
    CREATE INDEX login_attempts_address
        ON login_attempts (address, attempted_at);
    CREATE INDEX login_attempts_time ON login_attempts (attempted_at);
    """,
    # 3: report totals kept with the spots; a data version for caching
    """
    -- The reports' figures come from here, not from the spots: one row per
    -- broadcast month and combination of what the reports group or filter
    -- by, written by replace_spots in the same transaction as the spots
    -- (a few thousand rows where the spots are hundreds of thousands).
    -- import_batch_id: the batch that wrote the month (imports replace
    -- whole months).
    CREATE TABLE spot_totals (
        broadcast_month TEXT NOT NULL,
        customer_id     INTEGER NOT NULL REFERENCES customers (id),
        sales_person    TEXT,
        revenue_type    TEXT NOT NULL,
        market          TEXT,
        language_code   TEXT,
        import_batch_id INTEGER NOT NULL REFERENCES import_batches (id),
        spots           INTEGER NOT NULL,
        gross           INTEGER NOT NULL,
        net             INTEGER NOT NULL
    );
    CREATE INDEX spot_totals_month ON spot_totals (broadcast_month);
    INSERT INTO spot_totals
    SELECT broadcast_month, customer_id, sales_person, revenue_type, market,
           language_code, MAX(import_batch_id), COUNT(*), SUM(gross_rate),
           SUM(station_net)
    FROM spots
    GROUP BY broadcast_month, customer_id, sales_person, revenue_type,
             market, language_code;
    -- Bumped in the same transaction as every change to what the reports
    -- show (spots, budgets, month closures): the key of the report cache.
    CREATE TABLE data_version (
        id      INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL
    );
    INSERT INTO data_version (id, version) VALUES (1, 1);
    """,
    # 4: batch ids are never used twice
    """
    -- With AUTOINCREMENT a batch id is never given again, also after the
    -- newest batches were deleted: the archived file of a batch
    -- (DATA_PATH/batch-NNNNNN-<name>) stays that batch's.  SQLite cannot
    -- add it to a table, so the table is made anew (upgrade runs this with
    -- foreign keys off and checks them before committing).
    CREATE TABLE import_batches_new (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        kind           TEXT NOT NULL,
        source_file    TEXT NOT NULL,
        stored_file    TEXT,
        started_at     TEXT NOT NULL,
        finished_at    TEXT,
        row_count      INTEGER NOT NULL DEFAULT 0,
        months         TEXT NOT NULL DEFAULT '',
        skipped_months TEXT NOT NULL DEFAULT '',
        status         TEXT NOT NULL DEFAULT 'running'
    );
    INSERT INTO import_batches_new SELECT * FROM import_batches;
    DROP TABLE import_batches;
    ALTER TABLE import_batches_new RENAME TO import_batches;
    """,
)

LATEST_VERSION = len(MIGRATIONS)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# How long a connection waits for another one's lock before "database is
# locked".
BUSY_TIMEOUT_MS = 10000


def _use_wal(conn: sqlite3.Connection) -> None:
    """Put the database in WAL mode (a no-op once it is).  Switching a new
    file to WAL needs an exclusive lock, and when another connection is
    switching it or writing at the same moment SQLite answers "database is
    locked" at once, without waiting (waiting could deadlock): so retry,
    for as long as the busy timeout, until the other one is done."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() >= deadline:
                raise
        time.sleep(0.02)


def connect(path: str | Path, *, create: bool = False) -> sqlite3.Connection:
    """Open the database.  Without ``create`` a missing file is an error
    (so the web application never creates an empty database)."""
    uri = Path(path).absolute().as_uri() + ("?mode=rwc" if create else "?mode=rw")
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _use_wal(conn)
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = NORMAL")
        # a large import grows the WAL; keep it from staying large afterwards
        conn.execute("PRAGMA journal_size_limit = 67108864")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# --- schema ---------------------------------------------------------------


def schema_version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def _statements(script: str) -> Iterator[str]:
    """The SQL statements of a migration script, one at a time (comments
    stay with the statement they precede).  ``executescript`` would commit
    the transaction that :func:`upgrade` has to hold around them."""
    start = 0
    for end, char in enumerate(script):
        if char == ";" and sqlite3.complete_statement(script[start : end + 1]):
            yield script[start : end + 1]
            start = end + 1
    if script[start:].strip():
        yield script[start:]


def upgrade(conn: sqlite3.Connection) -> tuple[int, int]:
    """Apply pending migrations, each in its own transaction.
    Returns (version before, version after).

    Several processes may upgrade the same database at once (two ``db
    upgrade`` started together on a new file): each step takes the write
    lock first (BEGIN IMMEDIATE, waiting for the busy timeout) and only
    then reads the version and applies the migration that follows it, so
    no migration is applied twice.  "Before" is the version found under
    the lock at the first step: before == after exactly when this call
    applied nothing (another process had done it all)."""
    before = None
    # A migration may make a table anew (SQLite's way to change one): with
    # foreign keys on, dropping the old table would delete through them.
    # So they are off while migrating (the pragma is a no-op inside a
    # transaction, hence here) and checked before each commit.
    foreign_keys = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        return _upgrade_steps(conn, before, check_keys=bool(foreign_keys))
    finally:
        conn.execute(f"PRAGMA foreign_keys = {'ON' if foreign_keys else 'OFF'}")


def _upgrade_steps(conn: sqlite3.Connection, before: int | None, *, check_keys: bool) -> tuple[int, int]:
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = schema_version(conn)
            if before is None:
                before = version
            if version > LATEST_VERSION:
                raise RuntimeError(
                    f"database schema version {version} is newer than this application ({LATEST_VERSION})"
                )
            if version == LATEST_VERSION:
                conn.execute("ROLLBACK")  # nothing was written
                return before, version
            for statement in _statements(MIGRATIONS[version]):
                conn.execute(statement)
            if check_keys:
                broken = conn.execute("PRAGMA foreign_key_check").fetchone()
                if broken is not None:
                    raise RuntimeError(
                        f"migration {version + 1} leaves a row of {broken[0]} referring to no row of {broken[2]}"
                    )
            conn.execute(f"PRAGMA user_version = {version + 1}")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")


# --- Flask glue ------------------------------------------------------------


def get_db() -> sqlite3.Connection:
    """The request's connection, opened on first use."""
    from flask import current_app, g

    if "db" not in g:
        g.db = connect(current_app.config["DATABASE_PATH"])
    return g.db


def close_db(_exc: BaseException | None = None) -> None:
    from flask import g

    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def init_app(app) -> None:
    app.teardown_appcontext(close_db)


def query(sql: str, params: Sequence | dict = ()) -> list[sqlite3.Row]:
    return get_db().execute(sql, params).fetchall()


# --- users -----------------------------------------------------------------


def new_session_nonce() -> str:
    return secrets.token_hex(16)


def add_user(conn, username: str, password_hash: str, role: str) -> int:
    with transaction(conn):
        cur = conn.execute(
            "INSERT INTO users (username, password_hash, role, created_at, session_nonce) VALUES (?, ?, ?, ?, ?)",
            (username, password_hash, role, now_iso(), new_session_nonce()),
        )
    return cur.lastrowid


def get_user(conn, *, user_id: int | None = None, username: str | None = None) -> sqlite3.Row | None:
    if user_id is not None:
        return conn.execute("SELECT * FROM users WHERE id = ?", (user_id,)).fetchone()
    return conn.execute("SELECT * FROM users WHERE username = ?", (username,)).fetchone()


def list_users(conn) -> list[sqlite3.Row]:
    return conn.execute("SELECT id, username, role, active, created_at FROM users ORDER BY username").fetchall()


def update_user(conn, username: str, **changes) -> bool:
    """Change a user.  A new password or disabling the user also ends all
    of the user's sessions (a new session nonce)."""
    allowed = {"password_hash", "role", "active"}
    if not changes or set(changes) - allowed:
        raise ValueError(f"can only change {sorted(allowed)}")
    if "password_hash" in changes or changes.get("active") == 0:
        changes["session_nonce"] = new_session_nonce()
    assignments = ", ".join(f"{name} = ?" for name in changes)
    with transaction(conn):
        cur = conn.execute(
            f"UPDATE users SET {assignments} WHERE username = ?",
            (*changes.values(), username),
        )
    return cur.rowcount == 1


def end_sessions(conn, user_id: int) -> None:
    """Every session of the user stops being accepted (see web.auth)."""
    with transaction(conn):
        conn.execute("UPDATE users SET session_nonce = ? WHERE id = ?", (new_session_nonce(), user_id))


# --- login throttling --------------------------------------------------------


@dataclass
class LoginAttempt:
    """The outcome of :func:`begin_login_attempt`: either ``attempt_id`` (a
    row recorded as a failure until :func:`login_succeeded`) or
    ``retry_after`` seconds when a limit is reached."""

    attempt_id: int | None
    retry_after: int = 0


def _retry_after(conn, column: str, key: str, since: float, limit: int, window: float, now: float) -> int:
    """Seconds until fewer than ``limit`` failures remain in the window, or
    0 when fewer already do."""
    row = conn.execute(
        f"SELECT attempted_at FROM login_attempts WHERE {column} = ?"
        " AND attempted_at > ? ORDER BY attempted_at DESC LIMIT 1 OFFSET ?",
        (key, since, limit - 1),
    ).fetchone()
    if row is None:
        return 0
    return max(1, math.ceil(row[0] + window - now))


def begin_login_attempt(
    conn, username: str, address: str, *, now: float, window: float, per_user: int, per_address: int
) -> LoginAttempt:
    """In one transaction: prune attempts older than ``window`` seconds;
    refuse when ``username`` or ``address`` has ``per_user`` /
    ``per_address`` failures in the window; otherwise record this attempt
    (as a failure, until :func:`login_succeeded`).  Recording it before the
    password is checked means that concurrent attempts, in any process,
    cannot get past the limit."""
    since = now - window
    with transaction(conn):
        conn.execute("DELETE FROM login_attempts WHERE attempted_at <= ?", (since,))
        wait = max(
            _retry_after(conn, "username", username, since, per_user, window, now),
            _retry_after(conn, "address", address, since, per_address, window, now),
        )
        if wait:
            return LoginAttempt(None, wait)
        cur = conn.execute(
            "INSERT INTO login_attempts (username, address, attempted_at) VALUES (?, ?, ?)", (username, address, now)
        )
    return LoginAttempt(cur.lastrowid)


def login_succeeded(conn, username: str) -> None:
    """A successful login clears the failures counted for its user name."""
    with transaction(conn):
        conn.execute("DELETE FROM login_attempts WHERE username = ?", (username,))


def clear_login_failures(conn, username: str) -> int:
    """Unlocks a user name (the throttle key, see web.auth): deletes the
    failed logins counted for it, which then no longer count for their
    address either, and returns how many there were."""
    with transaction(conn):
        cur = conn.execute("DELETE FROM login_attempts WHERE username = ?", (username,))
    return cur.rowcount


# --- data version ------------------------------------------------------------


def data_version(conn) -> int:
    """Changes whenever spots, budgets or month closures change."""
    return conn.execute("SELECT version FROM data_version WHERE id = 1").fetchone()[0]


def _bump_data_version(conn) -> None:
    """Call inside the transaction that changes report data."""
    conn.execute("UPDATE data_version SET version = version + 1 WHERE id = 1")


# --- months ----------------------------------------------------------------


def closed_months(conn) -> set[str]:
    return {row[0] for row in conn.execute("SELECT broadcast_month FROM month_closures")}


def close_month(conn, month: str, closed_by: str) -> bool:
    """Close a month; False when it was already closed."""
    with transaction(conn):
        cur = conn.execute(
            "INSERT OR IGNORE INTO month_closures (broadcast_month, closed_at, closed_by) VALUES (?, ?, ?)",
            (month, now_iso(), closed_by),
        )
        if cur.rowcount == 1:
            _bump_data_version(conn)
    return cur.rowcount == 1


def reopen_month(conn, month: str) -> bool:
    with transaction(conn):
        cur = conn.execute("DELETE FROM month_closures WHERE broadcast_month = ?", (month,))
        if cur.rowcount == 1:
            _bump_data_version(conn)
    return cur.rowcount == 1


def last_import(conn) -> str | None:
    return conn.execute("SELECT max(finished_at) FROM import_batches WHERE status = 'completed'").fetchone()[0]


def has_imported_spots(conn) -> bool:
    """True when some stored spots came from a real import (not demo-data)."""
    return (
        conn.execute(
            "SELECT EXISTS (SELECT 1 FROM spots AS s JOIN import_batches AS b"
            " ON b.id = s.import_batch_id WHERE b.kind <> 'demo')"
        ).fetchone()[0]
        == 1
    )


def recent_batches(conn, limit: int = 20) -> list[sqlite3.Row]:
    return conn.execute("SELECT * FROM import_batches ORDER BY id DESC LIMIT ?", (limit,)).fetchall()


# --- imports ---------------------------------------------------------------


@dataclass
class ImportResult:
    batch_id: int
    rows_written: int
    months: list[str]
    skipped_months: list[str] = field(default_factory=list)
    rows_skipped: int = 0
    stored_file: str | None = None


def _customer_ids(conn, names: Iterable[str]) -> dict[str, int]:
    """Map each of ``names`` (exact spelling) -> customer id, adding
    customers not seen yet.  Spellings that differ only in case are one
    customer; the first spelling seen is the one kept."""
    ids = {name.casefold(): cid for cid, name in conn.execute("SELECT id, name FROM customers")}
    result = {}
    for name in names:
        key = name.casefold()
        if key not in ids:
            ids[key] = conn.execute("INSERT INTO customers (name) VALUES (?)", (name,)).lastrowid
        result[name] = ids[key]
    return result


def spot_schema() -> dict:
    """The polars schema of spot rows (SPOT_COLUMNS, money in cents)."""
    import polars as pl

    numbers = {"length_seconds", "gross_rate", "station_net", "broker_fees"}
    return {name: pl.Int64 if name in numbers else pl.String for name in SPOT_COLUMNS}


# spots.source_file is left NULL: the batch row names the file once
# (spots.import_batch_id -> import_batches.source_file), which keeps every
# spot record about a quarter smaller and the import faster.
_INSERT_SPOT = (
    "INSERT INTO spots (bill_code, air_date, broadcast_month, customer_id,"
    " agency, sales_person, revenue_type, spot_type, language_code, market,"
    " length_seconds, gross_rate, station_net, broker_fees, contract,"
    " import_batch_id)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

_INSERT_TOTALS = (
    "INSERT INTO spot_totals (broadcast_month, customer_id, sales_person,"
    " revenue_type, market, language_code, import_batch_id, spots, gross,"
    " net) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# what a spot_totals row adds up
_TOTALS_KEY = ("broadcast_month", "customer_id", "sales_person", "revenue_type", "market", "language_code")

_FINISH_BATCH = (
    "UPDATE import_batches SET stored_file = ?, finished_at = ?,"
    " row_count = ?, months = ?, skipped_months = ?, status = 'completed'"
    " WHERE id = ?"
)

# Page cache of the connection while it writes a large import (KiB,
# negative as SQLite wants it): the month index and the pages being filled
# stay in memory instead of being evicted and read back.
BULK_CACHE_KIB = 65536
# Spots handed to executemany at a time: the Python objects of one chunk
# exist at once (not those of the whole file), and progress moves by it.
CHUNK = 10_000


@contextmanager
def _bulk_cache(conn: sqlite3.Connection) -> Iterator[None]:
    before = conn.execute("PRAGMA cache_size").fetchone()[0]
    conn.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA cache_size = {before}")


def _new_batch(conn, kind: str, source_file: str, after: int) -> int:
    """Add a running batch whose id is above every id given before (the
    AUTOINCREMENT sequence) and above ``after`` (say the highest batch
    whose file is archived: a database restored from an older copy has
    an older sequence)."""
    next_id = conn.execute(
        "SELECT max(coalesce((SELECT seq FROM sqlite_sequence"
        " WHERE name = 'import_batches'), 0),"
        " coalesce((SELECT max(id) FROM import_batches), 0), ?) + 1",
        (after,),
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO import_batches (id, kind, source_file, started_at) VALUES (?, ?, ?, ?)",
        (next_id, kind, source_file, now_iso()),
    )
    return next_id


def batch_completed(conn, batch_id: int) -> bool:
    """Whether batch ``batch_id`` was committed as completed."""
    row = conn.execute("SELECT status FROM import_batches WHERE id = ?", (batch_id,)).fetchone()
    return row is not None and row[0] == "completed"


def _finish_batch(
    conn, batch_id: int, *, stored: str | None, rows: int, months: Sequence[str], skipped: Sequence[str]
) -> None:
    conn.execute(_FINISH_BATCH, (stored, now_iso(), rows, ",".join(months), ",".join(skipped), batch_id))


def _spot_frame(spots):
    """Spots as a polars DataFrame (they may come as tuples)."""
    import polars as pl

    if isinstance(spots, pl.DataFrame):
        return spots
    return pl.DataFrame(list(spots), schema=spot_schema(), orient="row")


def _totals(spots, by_name: dict[str, int], batch_id: int) -> list[tuple]:
    """The spot_totals rows of ``spots`` (SPOT_COLUMNS), in the order that
    SQLite's GROUP BY over the written spots gives them (and the
    migration wrote them): by month, customer id, AE, revenue type,
    market, language, NULL first, text in code point order (BINARY)."""
    import polars as pl

    rows = (
        spots.with_columns(customer_id=pl.col("customer").replace_strict(by_name, return_dtype=pl.Int64))
        .group_by(_TOTALS_KEY)
        .agg(
            pl.len(),
            pl.col("gross_rate").sum(),
            pl.col("station_net").sum(),
        )
        .rows()
    )
    rows.sort(key=lambda row: [(value is not None, value) for value in row[: len(_TOTALS_KEY)]])
    return [(*row[:6], batch_id, *row[6:]) for row in rows]


def replace_spots(
    conn: sqlite3.Connection,
    spots,
    *,
    source_file: str,
    kind: str = "import",
    archive: Callable[[int], str] | None = None,
    progress: Callable[[int], None] | None = None,
    batch_ids_after: int = 0,
) -> ImportResult:
    """Replace the broadcast months present in ``spots`` (a polars
    DataFrame or tuples, SPOT_COLUMNS order, money in cents) in ONE
    transaction, with their report totals (spot_totals).  Closed months
    are left untouched and reported.  ``archive(batch_id)`` runs inside
    the transaction (e.g. to copy the source file); if it fails nothing is
    written.  ``progress(n)``: n more spots written."""
    import polars as pl

    frame = _spot_frame(spots)
    months = sorted(frame.get_column("broadcast_month").unique().to_list())
    with _bulk_cache(conn), transaction(conn):
        closed = closed_months(conn)
        skipped = [m for m in months if m in closed]
        keep = [m for m in months if m not in closed]
        batch_id = _new_batch(conn, kind, source_file, batch_ids_after)
        kept = frame
        if skipped:
            kept = frame.filter(pl.col("broadcast_month").is_in(keep))
        # one buffer per column: taking a chunk's rows from it is cheaper
        kept = kept.rechunk()
        month_rank = {month: rank for rank, month in enumerate(keep)}
        by_month = kept.get_column("broadcast_month").replace_strict(month_rank, return_dtype=pl.Int64)
        names = kept.get_column("customer")
        # the distinct names in file order (by month, then file order,
        # when months are skipped): the first spelling seen is kept
        first_seen = (
            names.gather((by_month * len(names) + pl.int_range(len(names), dtype=pl.Int64, eager=True)).arg_sort())
            if skipped
            else names
        )
        by_name = _customer_ids(conn, first_seen.unique(maintain_order=True).to_list())
        if keep:
            marks = ", ".join("?" * len(keep))
            conn.execute(f"DELETE FROM spots WHERE broadcast_month IN ({marks})", keep)
            conn.execute(f"DELETE FROM spot_totals WHERE broadcast_month IN ({marks})", keep)
        # Written month by month and by customer name within a month (file
        # order for the same name), a month's spots sit together on disk
        # and the (month, customer) index is filled in order: inserting is
        # faster than in file order and month-range queries read fewer
        # pages.  The order is worked out on integer keys (the names
        # sorted as Python sorts them) and the spots are taken in that
        # order a chunk at a time, so the spots are never copied whole.
        name_rank = {name: rank for rank, name in enumerate(sorted(by_name))}
        # (with the row number in the key, every key is distinct: the
        # order is that of a stable sort)
        order = (
            (by_month * len(name_rank) + names.replace_strict(name_rank, return_dtype=pl.Int64)) * len(names)
            + pl.int_range(len(names), dtype=pl.Int64, eager=True)
        ).arg_sort()
        del by_month
        columns = [*SPOT_COLUMNS[:3], "customer_id", *SPOT_COLUMNS[4:], "import_batch_id"]
        month_sizes = kept.get_column("broadcast_month").value_counts()
        sizes = dict(month_sizes.iter_rows())
        start = 0
        for month in keep:
            end = start + sizes.get(month, 0)
            for offset in range(start, end, CHUNK):
                part = kept[order[offset : min(offset + CHUNK, end)]]
                part = part.with_columns(
                    customer_id=pl.col("customer").replace_strict(by_name, return_dtype=pl.Int64),
                    import_batch_id=pl.lit(batch_id, dtype=pl.Int64),
                )
                conn.executemany(_INSERT_SPOT, zip(*(part.get_column(c).to_list() for c in columns), strict=True))
                if progress is not None:
                    progress(part.height)
            start = end
        written = start
        conn.executemany(_INSERT_TOTALS, _totals(kept, by_name, batch_id))
        stored = archive(batch_id) if archive is not None else None
        _finish_batch(conn, batch_id, stored=stored, rows=written, months=keep, skipped=skipped)
        _bump_data_version(conn)
    return ImportResult(batch_id, written, keep, skipped, frame.height - written, stored)


def replace_budgets(conn, rows: Sequence[tuple[str, str, int]], *, source_file: str) -> ImportResult:
    """Insert or replace (sales_person, month, amount in cents) budget rows;
    months that are closed are skipped and reported."""
    months = sorted({row[1] for row in rows})
    with transaction(conn):
        closed = closed_months(conn)
        skipped = [m for m in months if m in closed]
        keep = [row for row in rows if row[1] not in closed]
        batch_id = _new_batch(conn, "budget", source_file, 0)
        conn.executemany(
            "INSERT INTO budgets (sales_person, broadcast_month, amount,"
            " import_batch_id) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (sales_person, broadcast_month) DO UPDATE SET"
            " amount = excluded.amount,"
            " import_batch_id = excluded.import_batch_id",
            [(*row, batch_id) for row in keep],
        )
        _finish_batch(
            conn, batch_id, stored=None, rows=len(keep), months=[m for m in months if m not in closed], skipped=skipped
        )
        _bump_data_version(conn)
    return ImportResult(batch_id, len(keep), [m for m in months if m not in closed], skipped, len(rows) - len(keep))
