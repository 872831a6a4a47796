"""The host lock (src/hostlock.py): CLI commands that write the database
take flock(2) on DATABASE_PATH + ".lock", the lock a deploy, restore or
backup holds on the server.

The other holders here are real processes (a small Python script that
takes the lock the way the host tool does, then sleeps); nothing is
mocked.  Killing a holder with SIGKILL shows that the kernel lets go.
"""

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import click
import pytest

from src import db
from src.cli import main

from .conftest import dump
from .test_cli import GOOD_ROWS, totals, write_csv

CLI = shutil.which("ctv-bookedbiz", path=str(Path(sys.executable).parent))
USER = pwd.getpwuid(os.geteuid()).pw_name
TOKEN = "0123456789abcdef0123456789abcdef"
HOLDER_TEXT = "ctv-bookedbiz-db-admin restore nightly.db (pid 4242)"
SINCE = "2026-01-05T03:00:00+00:00"

# Takes the lock as the host tool does, writes the holder line (argv[2] is
# the line, "{pid}" replaced by its pid), says "locked" and sleeps.
HOLD = r"""
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o660)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
os.ftruncate(fd, 0)
os.pwrite(fd, sys.argv[2].replace("{pid}", str(os.getpid())).encode(), 0)
print("locked", flush=True)
time.sleep(600)
"""

# Exit 0 when the lock can be taken at once, 3 when someone holds it.
PROBE = r"""
import errno, fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o660)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError as exc:
    sys.exit(3 if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN) else 1)
"""


def lock_file(database) -> Path:
    return Path(f"{database}.lock")


def holder_line(holder=HOLDER_TEXT, token=TOKEN) -> str:
    return (
        json.dumps({"holder": holder, "pid": "{pid}", "since": SINCE, "token": token}).replace('"{pid}"', "{pid}")
        + "\n"
    )


@pytest.fixture
def hold():
    """hold(database, line=holder_line()) -> the holding process."""
    started = []

    def start(database, line=None):
        process = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(lock_file(database)), holder_line() if line is None else line],
            stdout=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        assert process.stdout.readline() == "locked\n"
        return process

    yield start
    for process in started:
        process.kill()
        process.wait()
        process.stdout.close()


def lock_is_free(database) -> bool:
    code = subprocess.run([sys.executable, "-c", PROBE, str(lock_file(database))]).returncode
    assert code in (0, 3)
    return code == 0


def kill(process) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


def snapshot(path) -> tuple[bytes, str]:
    return Path(path).read_bytes(), dump(path)


def locked_message(pid: int) -> str:
    return f"the database is locked by {HOLDER_TEXT} (pid {pid}) since {SINCE}; try again later"


# --- waiting, failing, and the kernel letting go ----------------------------


def test_import_waits_then_fails_naming_the_holder(runner, tmp_path, data_dir, hold):
    source = write_csv(tmp_path / "weekly.csv", GOOD_ROWS)
    holder = hold(runner.db_path)
    before = snapshot(runner.db_path)
    runner.env = {**runner.env, "CTV_BOOKEDBIZ_DB_LOCK_WAIT": "1"}
    started = time.monotonic()
    result = runner("import", source)
    waited = time.monotonic() - started
    assert result.exit_code == 1, result.output
    assert locked_message(holder.pid) in result.output
    assert 0.9 <= waited < 10
    assert snapshot(runner.db_path) == before
    assert list(data_dir.iterdir()) == []

    kill(holder)  # SIGKILL: the kernel releases the lock
    result = runner("import", source)
    assert result.exit_code == 0, result.output
    assert "imported 4 spots" in result.output
    assert len(totals(runner.db_path)) == 2


def test_import_goes_ahead_when_the_holder_lets_go_in_time(runner, tmp_path, hold):
    source = write_csv(tmp_path / "weekly.csv", GOOD_ROWS)
    holder = hold(runner.db_path)
    threading.Timer(0.6, kill, (holder,)).start()
    runner.env = {**runner.env, "CTV_BOOKEDBIZ_DB_LOCK_WAIT": "20"}
    started = time.monotonic()
    result = runner("import", source)
    assert result.exit_code == 0, result.output
    assert 0.5 <= time.monotonic() - started < 10
    assert lock_is_free(runner.db_path)


def test_a_holder_line_that_is_not_json(runner, tmp_path, hold):
    hold(runner.db_path, "not json at all\n")
    before = snapshot(runner.db_path)
    runner.env = {**runner.env, "CTV_BOOKEDBIZ_DB_LOCK_WAIT": "0"}
    result = runner("close-month", "Jan-25")
    assert result.exit_code == 1
    assert "held by an unknown process" in result.output
    assert snapshot(runner.db_path) == before


def test_db_upgrade_of_a_new_file_takes_the_lock_beside_it(tmp_path, hold):
    from .conftest import Cli

    path = tmp_path / "new.db"
    cli = Cli({"DATABASE_PATH": str(path), "CTV_BOOKEDBIZ_ENV": None, "CTV_BOOKEDBIZ_DB_LOCK_WAIT": "0"})
    holder = hold(path)
    result = cli("db", "upgrade")
    assert result.exit_code == 1
    assert locked_message(holder.pid) in result.output
    assert not path.exists()
    kill(holder)
    lock_file(path).unlink()
    result = cli("db", "upgrade")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("schema upgraded from version 0")
    assert lock_file(path).exists() and lock_is_free(path)


# --- which commands take it -----------------------------------------------------

BUDGETS = "ae,month,amount\nAlice,Jan-25,1000\n"

# Every command that writes the database, with arguments that succeed on
# the database of prepared_runner, and its standard input.
WRITES = {
    "db upgrade": ([], None),
    "import": (["{dir}/weekly.csv"], None),
    "import-budget": (["{dir}/budgets.csv"], None),
    "close-month": (["Jan-25"], None),
    "reopen-month": (["Feb-25"], None),
    "demo-data": (["--spots", "50", "--months", "2", "--start", "Jan-24", "--force"], None),
    "users add": (["gus", "--role", "viewer"], "a long password\n"),
    "users set-password": (["fay"], "another password\n"),
    "users set-role": (["fay", "--role", "ae"], None),
    "users disable": (["fay"], None),
    "users enable": (["fay"], None),
    "users unlock": (["fay"], None),
}

# Commands (or invocations) that only read it.
READS = {
    "db version": [],
    "users list": [],
    "batches": [],
    "import": ["--check", "{dir}/weekly.csv"],
    "demo-data": ["--spots", "50", "--no-db", "--export", "{dir}/demo.csv"],
}


def _args(command, arguments, directory):
    return [*command.split(), *(a.replace("{dir}", str(directory)) for a in arguments)]


@pytest.fixture
def prepared_runner(runner, tmp_path):
    write_csv(tmp_path / "weekly.csv", GOOD_ROWS)
    (tmp_path / "budgets.csv").write_text(BUDGETS)
    assert runner("import", tmp_path / "weekly.csv").exit_code == 0
    assert runner("close-month", "Feb-25").exit_code == 0
    assert runner("users", "add", "fay", "--role", "viewer", input="first password\n").exit_code == 0
    return runner


def _commands(group: click.Group, prefix=()) -> set[str]:
    names = set()
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            names |= _commands(command, (*prefix, name))
        else:
            names.add(" ".join((*prefix, name)))
    return names


def test_every_command_is_known_as_writing_or_reading():
    """A new command must be added to WRITES or READS (and so get a test
    of whether it takes the lock)."""
    assert _commands(main) == set(WRITES) | set(READS)


@pytest.mark.parametrize("command", sorted(WRITES))
def test_every_writing_command_takes_the_lock(prepared_runner, tmp_path, hold, command):
    runner = prepared_runner
    arguments, stdin = WRITES[command]
    args = _args(command, arguments, tmp_path)
    holder = hold(runner.db_path)
    before = snapshot(runner.db_path)
    runner.env = {**runner.env, "CTV_BOOKEDBIZ_DB_LOCK_WAIT": "0"}
    result = runner(*args, input=stdin)
    assert result.exit_code == 1, result.output
    assert locked_message(holder.pid) in result.output
    assert snapshot(runner.db_path) == before
    kill(holder)
    result = runner(*args, input=stdin)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", sorted(READS))
def test_reading_commands_work_while_the_lock_is_held(prepared_runner, tmp_path, hold, command):
    runner = prepared_runner
    hold(runner.db_path)
    before = dump(runner.db_path)
    runner.env = {**runner.env, "CTV_BOOKEDBIZ_DB_LOCK_WAIT": "0"}
    result = runner(*_args(command, READS[command], tmp_path))
    assert result.exit_code == 0, result.output
    assert dump(runner.db_path) == before


# --- a run that holds the lock: the token -------------------------------------


def test_the_holders_token_lets_a_command_run_under_its_lock(runner, tmp_path, hold):
    holder = hold(runner.db_path)
    runner.env = {**runner.env, "CTV_BOOKEDBIZ_DB_LOCK_WAIT": "0", "CTV_BOOKEDBIZ_DB_LOCK_TOKEN": TOKEN}
    assert runner("db", "upgrade").exit_code == 0
    result = runner("import", write_csv(tmp_path / "weekly.csv", GOOD_ROWS))
    assert result.exit_code == 0, result.output
    assert len(totals(runner.db_path)) == 2
    assert holder.poll() is None and not lock_is_free(runner.db_path)


def test_a_token_that_is_not_the_holders_fails(runner, tmp_path, hold):
    holder = hold(runner.db_path)
    before = snapshot(runner.db_path)
    runner.env = {**runner.env, "CTV_BOOKEDBIZ_DB_LOCK_WAIT": "0", "CTV_BOOKEDBIZ_DB_LOCK_TOKEN": "f" * 32}
    result = runner("import", write_csv(tmp_path / "weekly.csv", GOOD_ROWS))
    assert result.exit_code == 1
    assert (f"the lock is held by {HOLDER_TEXT} (pid {holder.pid}) since {SINCE}, not by this run") in result.output
    assert snapshot(runner.db_path) == before


def test_a_token_when_nobody_holds_the_lock_fails(runner, tmp_path):
    before = snapshot(runner.db_path)
    runner.env = {**runner.env, "CTV_BOOKEDBIZ_DB_LOCK_TOKEN": TOKEN}
    result = runner("import", write_csv(tmp_path / "weekly.csv", GOOD_ROWS))
    assert result.exit_code == 1
    assert "lock token given but nobody holds the lock" in result.output
    assert snapshot(runner.db_path) == before
    assert lock_is_free(runner.db_path)  # the check let go again


# --- the CLI as the holder (the real ctv-bookedbiz program) -------------------


def _wait_for_holder_line(database, pid) -> dict:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            record = json.loads(lock_file(database).read_text())
        except (OSError, ValueError):
            record = None
        if isinstance(record, dict) and record.get("pid") == pid:
            return record
        time.sleep(0.05)
    raise AssertionError("the CLI wrote no holder line")


@pytest.mark.parametrize("ending", ["finishes", "is killed"])
def test_the_cli_holds_the_lock_with_a_holder_line(runner, ending):
    """``users add`` waits for the password on stdin while it holds the
    lock: the lock file names it, others cannot take the lock, and when it
    ends (or is SIGKILLed) the lock is free again."""
    assert CLI, "ctv-bookedbiz is installed in the environment"
    env = {**os.environ, **{k: v for k, v in runner.env.items() if v}, "CTV_BOOKEDBIZ_DB_LOCK_WAIT": "5"}
    process = subprocess.Popen(
        [CLI, "users", "add", "hal", "--role", "ae"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        record = _wait_for_holder_line(runner.db_path, process.pid)
        assert set(record) == {"holder", "pid", "since", "token"}
        assert record["holder"] == f"ctv-bookedbiz users add hal (user {USER})"
        assert datetime.fromisoformat(record["since"]).utcoffset() is not None
        assert len(record["token"]) == 32 and int(record["token"], 16) >= 0
        assert lock_file(runner.db_path).read_text().count("\n") == 1
        assert not lock_is_free(runner.db_path)
        if ending == "finishes":
            output, _ = process.communicate("a long password\n", timeout=20)
            assert process.returncode == 0, output
        else:
            kill(process)
    finally:
        process.kill()
        process.communicate()
    assert lock_is_free(runner.db_path)
    conn = db.connect(runner.db_path)
    try:
        added = db.get_user(conn, username="hal") is not None
    finally:
        conn.close()
    assert added == (ending == "finishes")


# --- the module itself ----------------------------------------------------------


def test_forked_children_do_not_keep_the_lock(tmp_path):
    """The import's forked workers close their copy of the descriptor: the
    lock is free as soon as its holder lets go."""
    import multiprocessing

    from src import hostlock

    database = tmp_path / "x.db"
    context = multiprocessing.get_context("fork")
    with hostlock.held(database, "test", wait=0):
        child = context.Process(target=time.sleep, args=(30,))
        child.start()
        assert not lock_is_free(database)
    try:
        assert lock_is_free(database)
    finally:
        child.kill()
        child.join()


@pytest.mark.parametrize("wait", ["soon", "-1", "nan", "inf"])
def test_a_wait_that_is_not_a_number_of_seconds(runner, wait):
    runner.env = {**runner.env, "CTV_BOOKEDBIZ_DB_LOCK_WAIT": wait}
    result = runner("close-month", "Jan-25")
    assert result.exit_code == 1
    assert (f"CTV_BOOKEDBIZ_DB_LOCK_WAIT={wait!r} is not a number of seconds") in result.output
