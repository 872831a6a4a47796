"""Operator command line: ``ctv-bookedbiz``.

The commands need DATABASE_PATH (``import`` also DATA_PATH) but never the
session secret.  Every command that writes the database is decorated with
:func:`_writes_database`: it runs holding the host lock
(:mod:`src.hostlock`).
"""

from __future__ import annotations

import errno
import functools
import gc
import os
import pwd
import re
import shutil
import sqlite3
import sys
import time
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import click

from . import config, db, hostlock
from .importer import ImportFileError, read_budget_file, read_spot_file
from .months import MonthError, label, parse_month

MIN_PASSWORD_LENGTH = 8
SHOW_ERRORS = 50


def _config(getter):
    try:
        return getter()
    except config.ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _open(create: bool = False) -> sqlite3.Connection:
    path = _config(config.database_path)
    if not create and not path.exists():
        raise click.ClickException(f"DATABASE_PATH {path} does not exist: run 'ctv-bookedbiz db upgrade' first")
    try:
        return db.connect(path, create=create)
    except sqlite3.Error as exc:
        raise click.ClickException(f"DATABASE_PATH {path}: {exc}") from None


def _lock_holder() -> str:
    """Who holds the host lock: the command, its arguments and the user,
    e.g. "ctv-bookedbiz import weekly.csv (user ctvbooked)"."""
    ctx = click.get_current_context()
    names = []
    outer = ctx
    while outer.parent is not None:
        names.append(outer.info_name)
        outer = outer.parent
    words = ["ctv-bookedbiz", *reversed(names)]
    words += [str(ctx.params[param.name]) for param in ctx.command.params if isinstance(param, click.Argument)]
    try:
        user = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        user = str(os.geteuid())
    return f"{' '.join(words)} (user {user})"


def _writes_database(unless: str | None = None):
    """Decorates a command that writes the database: it runs holding the
    host lock of DATABASE_PATH (or checks the run's token), so that no
    deploy, restore or backup swaps the file under it; when the lock stays
    taken the command fails naming the holder, having changed nothing.
    ``unless``: the name of a flag with which the command only reads (it
    then runs without the lock)."""

    def decorate(command):
        @functools.wraps(command)
        def run(**params):
            if unless is not None and params.get(unless):
                return command(**params)
            path = _config(config.database_path)
            try:
                with hostlock.held(path, _lock_holder()):
                    return command(**params)
            except hostlock.LockError as exc:
                raise click.ClickException(str(exc)) from None

        return run

    return decorate


@contextmanager
def _database():
    """A connection to a database whose schema is current."""
    conn = _open()
    try:
        version = db.schema_version(conn)
        if version != db.LATEST_VERSION:
            raise click.ClickException(
                f"database schema is at version {version}, this application "
                f"needs {db.LATEST_VERSION}: run 'ctv-bookedbiz db upgrade'"
            )
        yield conn
    finally:
        conn.close()


@contextmanager
def _bulk():
    """Large imports allocate millions of small objects that are never
    cyclic garbage; pausing the cyclic collector halves the time taken."""
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _month(value: str) -> str:
    try:
        return parse_month(value)
    except MonthError as exc:
        raise click.BadParameter(str(exc)) from None


@click.group()
@click.version_option(package_name="ctv-bookedbiz-db")
def main() -> None:
    """CTV BookedBiz DB: booked-business reporting."""


# --- db --------------------------------------------------------------------


@main.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@_writes_database()
def db_upgrade() -> None:
    """Create the database if missing and apply pending migrations."""
    conn = _open(create=True)
    try:
        before, after = db.upgrade(conn)
    except (RuntimeError, sqlite3.Error) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        conn.close()
    if before == after:
        click.echo(f"schema up to date at version {after}")
    else:
        click.echo(f"schema upgraded from version {before} to {after}")


@db_group.command("version")
def db_version() -> None:
    """Print the schema version of the database."""
    conn = _open()
    try:
        click.echo(db.schema_version(conn))
    finally:
        conn.close()


# --- users -----------------------------------------------------------------


@main.group("users")
def users_group() -> None:
    """Accounts for the web application."""


def _password_hash(password: str) -> str:
    # imported here: werkzeug takes 0.1 s to import, which every other
    # command (an import, say) would pay for nothing
    from werkzeug.security import generate_password_hash

    return generate_password_hash(password)


def _read_password() -> str:
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise click.ClickException(f"the password must have at least {MIN_PASSWORD_LENGTH} characters")
    return password


@users_group.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(db.ROLES), required=True)
@_writes_database()
def users_add(name: str, role: str) -> None:
    """Add a user; the password comes from a prompt, or from stdin when
    stdin is not a terminal."""
    name = name.strip()
    if not name:
        raise click.BadParameter("the name is empty", param_hint="NAME")
    with _database() as conn:
        if db.get_user(conn, username=name) is not None:
            raise click.ClickException(f"user {name!r} already exists")
        password = _read_password()
        db.add_user(conn, name, _password_hash(password), role)
    click.echo(f"added user {name} ({role})")


@users_group.command("list")
def users_list() -> None:
    """List users."""
    with _database() as conn:
        for row in db.list_users(conn):
            state = "active" if row["active"] else "disabled"
            click.echo(f"{row['username']}\t{row['role']}\t{state}")


@users_group.command("set-password")
@click.argument("name")
@_writes_database()
def users_set_password(name: str) -> None:
    """Set a user's password (prompt, or stdin when not a terminal)."""
    with _database() as conn:
        if db.get_user(conn, username=name) is None:
            raise click.ClickException(f"no user {name!r}")
        password = _read_password()
        db.update_user(conn, name, password_hash=_password_hash(password))
    click.echo(f"password changed for {name}")


@users_group.command("set-role")
@click.argument("name")
@click.option("--role", type=click.Choice(db.ROLES), required=True)
@_writes_database()
def users_set_role(name: str, role: str) -> None:
    """Change a user's role."""
    with _database() as conn:
        if not db.update_user(conn, name, role=role):
            raise click.ClickException(f"no user {name!r}")
    click.echo(f"{name} is now {role}")


@users_group.command("disable")
@click.argument("name")
@_writes_database()
def users_disable(name: str) -> None:
    """Disable a user; they can no longer log in."""
    with _database() as conn:
        if not db.update_user(conn, name, active=0):
            raise click.ClickException(f"no user {name!r}")
    click.echo(f"disabled {name}")


@users_group.command("enable")
@click.argument("name")
@_writes_database()
def users_enable(name: str) -> None:
    """Enable a disabled user."""
    with _database() as conn:
        if not db.update_user(conn, name, active=1):
            raise click.ClickException(f"no user {name!r}")
    click.echo(f"enabled {name}")


@users_group.command("unlock")
@click.argument("name")
@_writes_database()
def users_unlock(name: str) -> None:
    """Clear a user's failed logins: a locked-out user can log in again
    at once."""
    # imported here, as flask is slow to import
    from .web.auth import throttle_key

    with _database() as conn:
        if db.get_user(conn, username=name) is None:
            raise click.ClickException(f"no user {name!r}")
        cleared = db.clear_login_failures(conn, throttle_key(name))
    click.echo(f"cleared {cleared} failed login(s) of {name}")


# --- imports ---------------------------------------------------------------


def _report_errors(exc: ImportFileError, path: Path) -> None:
    click.echo(f"{path}: {exc.total} problem(s), nothing was imported:", err=True)
    for line in exc.errors[:SHOW_ERRORS]:
        click.echo(f"  {line}", err=True)
    if exc.total > SHOW_ERRORS:
        click.echo(f"  ... and {exc.total - SHOW_ERRORS} more", err=True)
    sys.exit(1)


@contextmanager
def _file_problems(file: Path):
    """A file that is not a valid import: its problems, and exit 1."""
    try:
        yield
    except ImportFileError as exc:
        _report_errors(exc, file)
    except OSError as exc:
        if exc.filename is None or Path(exc.filename) != file:
            raise
        raise click.ClickException(f"{file}: {exc}") from None


def _rate(started: float, length: int):
    """What the progress bar shows after its bar: rows per second and the
    time left at that rate."""

    def show(done: int | None) -> str:
        elapsed = time.perf_counter() - started
        if not done or elapsed <= 0:
            return ""
        rate = done / elapsed
        return f"{rate:,.0f} rows/s, {(length - done) / rate:.1f}s left"

    return show


def _run_with_progress(text: str, length: int, work):
    """``work(update)`` with a progress bar of ``length`` rows on stderr
    when it is a terminal (rate and time left); else ``work(None)``."""
    if not sys.stderr.isatty() or length <= 0:
        return work(None)
    started = time.perf_counter()
    show = _rate(started, length)
    done = 0
    with click.progressbar(
        length=length,
        label=text,
        file=sys.stderr,
        show_eta=False,
        show_percent=True,
        item_show_func=show,
        update_min_steps=1,
    ) as bar:

        def update(count: int) -> None:
            nonlocal done
            done += count
            bar.update(count, done)

        return work(update)


_ARCHIVED = re.compile(r"batch-(\d+)-")


def _highest_archived(data_dir: Path) -> int:
    """The highest batch id of a file archived in DATA_PATH (0 if none)."""
    numbers = [int(match.group(1)) for name in os.listdir(data_dir) if (match := _ARCHIVED.match(name))]
    return max(numbers, default=0)


class _Archive:
    """The copy of an imported file kept in DATA_PATH as
    batch-NNNNNN-<name>.  :meth:`copy` runs inside the import's
    transaction: it writes the copy unnamed (O_TMPFILE), so that a failure
    or a full disk leaves nothing behind, then names it, never over an
    existing file, before the commit: a committed batch always has its
    file.  :meth:`undo` removes the named copy when the import did not
    commit.  (SIGKILL between the naming and the commit leaves a complete
    copy whose batch does not exist: the next import numbers its batch
    above it, and ``imports prune`` removes it in time.)  Where the file
    system has no O_TMPFILE the copy is written under a hidden name first,
    removed on failure."""

    def __init__(self, file: Path, folder: Path):
        self.file = file
        self.folder = folder
        self.fd: int | None = None
        self.hidden: Path | None = None
        self.target: Path | None = None
        self.batch_id: int | None = None

    def copy(self, batch_id: int) -> str:
        target = self.folder / f"batch-{batch_id:06d}-{self.file.name}"
        try:
            try:
                self.fd = os.open(self.folder, os.O_TMPFILE | os.O_WRONLY, 0o640)
            except OSError as exc:
                if exc.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                    raise
                self.hidden = self.folder / f".{target.name}.partial"
                self.fd = os.open(self.hidden, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
            # (not fsynced: the database's own commit is not either, with
            # synchronous = NORMAL)
            with os.fdopen(self.fd, "wb", closefd=False) as out, self.file.open("rb") as source:
                shutil.copyfileobj(source, out, 1 << 20)
            self._link(target)
        except FileExistsError:
            self.close()
            raise click.ClickException(
                f"{target} exists already: it is not overwritten. Nothing was imported."
            ) from None
        except OSError as exc:
            self.close()
            raise click.ClickException(
                f"cannot keep a copy of the file in DATA_PATH {self.folder}:"
                f" {exc.strerror or exc}. Nothing was imported."
            ) from None
        self.target, self.batch_id = target, batch_id
        return str(target)

    def _link(self, target: Path) -> None:
        """Name the copy TARGET (FileExistsError if taken)."""
        if self.hidden is not None:
            os.link(self.hidden, target)
            return
        # linkat(AT_SYMLINK_FOLLOW) of /proc/self/fd/N names the unnamed
        # file (os.link makes that call only when given a dir_fd)
        proc = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.link(str(self.fd), target, src_dir_fd=proc, follow_symlinks=True)
        finally:
            os.close(proc)

    def undo(self, conn: sqlite3.Connection) -> None:
        """Remove the named copy unless its batch was committed (the
        database, not the exception, says whether it was)."""
        if self.target is None or self.batch_id is None:
            return
        try:
            committed = db.batch_completed(conn, self.batch_id)
        except sqlite3.Error:
            committed = True  # cannot tell: a copy too many beats a batch without its file
        if committed:
            return
        self.target.unlink(missing_ok=True)
        self.target = None

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        if self.hidden is not None:
            self.hidden.unlink(missing_ok=True)
            self.hidden = None


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--check", is_flag=True, help="Only validate the file and say what an import would do.")
@_writes_database(unless="check")
def import_file(file: Path, check: bool) -> None:
    """Import a Commercial Log (.xlsx) or spots CSV.  The broadcast months
    in the file replace those months; closed months are skipped."""
    data_dir = None if check else _config(config.data_path)
    started = time.perf_counter()
    # polars allocates with jemalloc, which keeps freed memory for ~10 s
    # before giving it back; an import frees and allocates hundreds of MB
    # within seconds, so it gives it back at once (peak at 400,000 spots
    # ~375 -> ~310 MB, no slower).  Read when polars is first loaded (just
    # below), so set here; an allocator without the setting ignores it.
    os.environ.setdefault("_RJEM_MALLOC_CONF", "dirty_decay_ms:0,muzzy_decay_ms:0")
    with _database() as conn, _bulk():
        if sys.stderr.isatty():
            click.echo(f"reading {file} ...", err=True)
        with _file_problems(file):
            spots = read_spot_file(file)
        read = f" ({spots.encoding})" if spots.encoding else ""
        if check:
            months = spots.months()
            closed = db.closed_months(conn)
            replace = [label(m) for m in months if m not in closed]
            skip = [label(m) for m in months if m in closed]
            click.echo(
                f"{file}{read}: {len(spots)} valid spots; an import "
                f"would replace {', '.join(replace) or 'no months'}"
                + (f" and skip closed {', '.join(skip)}" if skip else "")
            )
            return

        archive = _Archive(file, data_dir)
        try:
            result = _run_with_progress(
                "importing",
                len(spots),
                lambda update: db.replace_spots(
                    conn,
                    spots.spots,
                    source_file=str(file.resolve()),
                    archive=archive.copy,
                    progress=update,
                    batch_ids_after=_highest_archived(data_dir),
                ),
            )
        except BaseException:
            archive.undo(conn)
            raise
        finally:
            archive.close()
    elapsed = time.perf_counter() - started
    months = ", ".join(label(m) for m in result.months) or "none"
    click.echo(
        f"batch {result.batch_id}: imported {result.rows_written} "
        f"spots for {months} in {elapsed:.1f}s" + (f", read as {spots.encoding}" if spots.encoding else "")
    )
    if result.skipped_months:
        click.echo(
            f"skipped {result.rows_skipped} rows of closed month(s) "
            + ", ".join(label(m) for m in result.skipped_months)
        )
    click.echo(f"file kept as {result.stored_file}")


@main.command("import-budget")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@_writes_database()
def import_budget(file: Path) -> None:
    """Import AE budgets from a CSV with columns ae, month, amount."""
    with _database() as conn:
        with _file_problems(file):
            rows = read_budget_file(file)
        result = db.replace_budgets(conn, rows, source_file=str(file.resolve()))
    click.echo(f"batch {result.batch_id}: {result.rows_written} budget rows imported")
    if result.skipped_months:
        click.echo(
            f"skipped {result.rows_skipped} rows of closed month(s) "
            + ", ".join(label(m) for m in result.skipped_months)
        )


@main.command("batches")
@click.option("--limit", type=click.IntRange(1, 10000), default=20, show_default=True)
def batches(limit: int) -> None:
    """List the most recent import batches."""
    with _database() as conn:
        rows = db.recent_batches(conn, limit)
    for row in rows:
        months = ",".join(label(m) for m in row["months"].split(",") if m)
        skipped = ",".join(label(m) for m in row["skipped_months"].split(",") if m)
        click.echo(
            "\t".join(
                str(v)
                for v in (
                    row["id"],
                    row["kind"],
                    row["status"],
                    row["finished_at"] or "",
                    row["row_count"],
                    months or "-",
                    f"skipped {skipped}" if skipped else "-",
                    row["source_file"],
                )
            )
        )


@main.command("close-month")
@click.argument("month")
@click.option(
    "--by",
    "closed_by",
    default=lambda: os.environ.get("USER", "cli"),
    show_default="$USER",
    help="Who closes the month.",
)
@_writes_database()
def close_month(month: str, closed_by: str) -> None:
    """Close a broadcast month (Mmm-YY): imports no longer change it."""
    key = _month(month)
    with _database() as conn:
        if db.close_month(conn, key, closed_by):
            click.echo(f"closed {label(key)}")
        else:
            click.echo(f"{label(key)} was already closed")


@main.command("reopen-month")
@click.argument("month")
@_writes_database()
def reopen_month(month: str) -> None:
    """Reopen a closed broadcast month (Mmm-YY)."""
    key = _month(month)
    with _database() as conn:
        if db.reopen_month(conn, key):
            click.echo(f"reopened {label(key)}")
        else:
            click.echo(f"{label(key)} was not closed")


@main.command("demo-data")
@click.option("--spots", type=click.IntRange(1, 5_000_000), default=20000, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--start", "start", default=None, help="First broadcast month (Mmm-YY); default January of last year.")
@click.option("--months", type=click.IntRange(1, 120), default=24, show_default=True)
@click.option(
    "--export",
    "export",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the spots as an import file (.csv or .xlsx).",
)
@click.option("--no-db", is_flag=True, help="Only write the --export file; leave the database alone.")
@click.option("--force", is_flag=True, help="Replace months even if they hold imported (real) spots.")
@_writes_database(unless="no_db")
def demo_data(
    spots: int, seed: int, start: str | None, months: int, export: Path | None, no_db: bool, force: bool
) -> None:
    """Generate deterministic synthetic spots and budgets."""
    from .demo import generate
    from .importer import write_spot_file

    if no_db and export is None:
        raise click.UsageError("--no-db needs --export FILE")
    if export is not None and export.suffix.lower() not in (".csv", ".xlsx"):
        raise click.BadParameter("use a .csv or .xlsx file", param_hint="--export")
    start_key = _month(start) if start else f"{date.today().year - 1}-01"
    if not no_db and not force:
        with _database() as conn:
            if db.has_imported_spots(conn):
                raise click.ClickException(
                    "the database holds imported spots, which demo data "
                    "would replace; use --force to do so anyway, or "
                    "--export FILE --no-db"
                )
    started = time.perf_counter()
    with _bulk():
        rows, budgets = generate(spots, seed, start_key, months)
    if export is not None:
        count = write_spot_file(export, rows)
        click.echo(f"wrote {count} spots to {export}")
    if no_db:
        return
    with _database() as conn, _bulk():
        result = db.replace_spots(
            conn,
            rows,
            kind="demo",
            source_file=f"demo-data --spots {spots} --seed {seed} --start {start_key} --months {months}",
        )
        db.replace_budgets(conn, budgets, source_file=f"demo-data --seed {seed}")
    elapsed = time.perf_counter() - started
    click.echo(
        f"batch {result.batch_id}: {result.rows_written} demo spots "
        f"for {label(start_key)} to "
        f"{label(rows and max(r[2] for r in rows) or start_key)} "
        f"in {elapsed:.1f}s"
    )
    if result.skipped_months:
        click.echo("skipped closed month(s) " + ", ".join(label(m) for m in result.skipped_months))
