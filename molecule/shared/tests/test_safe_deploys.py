"""Safe deploys: backups, the health gate with automatic rollback, the
rollback and restore playbooks, a killed service, an interrupted run and
the rebuild of a dead host from a backup.

Legacy scenario only: the host the operators left by hand, once converged,
is where a deploy has most to lose. (The default scenario exercises the
re-runs meanwhile; the two run side by side.) Runs after the end-state and
legacy checks and leaves the instance on whichever release its last check
deployed (the checks after it look at permissions, not at the app).
"""

import json
import os
import re
import signal
import time
import uuid

import pytest

from conftest import (
    ADMIN,
    APP_SRC,
    CLI,
    CODE_DIR,
    DATA_DIR,
    DB,
    LOAD_ENV,
    UNIT,
    USER,
    VENV_DIR,
    alarms,
    changed_app,
    copy_app,
    deployed_files,
    failure_output,
    output_of,
    playbook,
    quote,
    read_until,
    run_as,
    shipped_files,
    start_playbook,
    wait_for,
)

pytestmark = pytest.mark.skipif(
    os.environ.get("MOLECULE_SCENARIO_NAME", "legacy") != "legacy",
    reason="deploy safety is exercised in the legacy scenario",
)

BACKUPS = "/var/backups/ctv-bookedbiz-db"
# What the reports add up, straight from SQLite: rows, and revenue without Trade.
TOTALS_SQL = (
    "SELECT count(*), sum(gross_rate), sum(station_net) FROM spots WHERE revenue_type <> 'Trade'; "
    "SELECT count(*) FROM spots; SELECT count(*) FROM budgets; SELECT count(*) FROM users;"
)


def sql(host, statement: str) -> str:
    # As the runtime user: root would leave root-owned WAL files behind.
    return run_as(host, USER, f'sqlite3 {DB} "{statement}"').stdout.strip()


def totals(host) -> str:
    return sql(host, TOTALS_SQL)


def current_release(host) -> str:
    return json.loads(host.check_output(f"{ADMIN} release status"))["current"]


def health(host) -> str:
    """The status /health answers, or 000 when nothing answers."""
    return host.run("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/health").stdout.strip()


def answer_after_start(host, limit: float = 30) -> str:
    """The first status /health answers once uvicorn listens again."""
    deadline = time.monotonic() + limit
    while (status := health(host)) == "000" and time.monotonic() < deadline:
        time.sleep(0.5)
    return status


@pytest.fixture(scope="module", autouse=True)
def demo_data(host):
    """Some business data to protect, loaded once with the app's own CLI."""
    if sql(host, "SELECT count(*) FROM spots") == "0":
        out = run_as(host, USER, f"{CLI} demo-data --spots 3000 --seed 11")
        assert out.rc == 0, out.stderr
    yield


def test_service_comes_back_after_being_killed(host):
    before = int(host.check_output(f"systemctl show -p NRestarts --value {UNIT}"))
    pid = host.check_output(f"systemctl show -p MainPID --value {UNIT}")
    host.check_output(f"systemctl kill -s KILL {UNIT}")
    # RestartSec=2, then uvicorn's start-up: a few seconds more.
    assert answer_after_start(host, limit=2 + 15) == "200"
    assert host.check_output(f"systemctl show -p MainPID --value {UNIT}") != pid
    assert int(host.check_output(f"systemctl show -p NRestarts --value {UNIT}")) == before + 1


def test_a_service_that_keeps_failing_stops_restarting_and_raises_the_alarm(host):
    """A code tree that cannot start (a line a developer added; it fails a
    second into its start, so that the restarts come every three seconds or
    so): restarted on failure, but not for ever, and the alarm says so. The
    fix shipped at once (within systemd's minute) starts all the same."""
    asgi = f"{CODE_DIR}/src/web/asgi.py"
    since = host.check_output("date '+%Y-%m-%d %H:%M:%S'")
    broken = "import time; time.sleep(1); raise RuntimeError('cannot start')"
    host.check_output(f"cp -p {asgi} /root/asgi.py.good && echo {quote(broken)} >> {asgi}")
    try:
        host.check_output(f"systemctl restart {UNIT}")
        wait_for(lambda: f"{UNIT} failed" in alarms(host, since), 90, "the service's alarm")
        assert host.check_output(f"systemctl show -p ActiveState --value {UNIT}") == "failed"
        log = host.check_output(f"journalctl --no-pager --since {quote(since)} -u {UNIT}")
        assert "Start request repeated too quickly" in log
        # The repository's app again: the deploy puts the file back and restarts the service.
        run = playbook("--tags", "deploy", json_output=False)
        assert run.returncode == 0, output_of(run)[-3000:]
        assert "was put back" not in output_of(run)
    finally:
        if host.run(f"systemctl is-active --quiet {UNIT}").rc != 0:
            restore = f"cp -p /root/asgi.py.good {asgi} && systemctl reset-failed {UNIT} && systemctl start {UNIT}"
            host.check_output(restore)
    assert answer_after_start(host, limit=30) == "200"
    assert deployed_files(host) == shipped_files(APP_SRC)


def test_nightly_backup_timer_is_active_and_its_service_backs_up(host):
    assert host.service("ctv-bookedbiz-db-backup.timer").is_enabled
    assert host.check_output("systemctl is-active ctv-bookedbiz-db-backup.timer") == "active"
    host.check_output("systemctl start ctv-bookedbiz-db-backup.service")
    newest = host.check_output(f"ls -1 {BACKUPS} | grep -- '-nightly.db$' | tail -n 1")
    assert newest
    assert run_as(host, USER, f"sqlite3 {BACKUPS}/{newest} 'PRAGMA integrity_check'").stdout.strip() == "ok"
    # Developers cannot write backups.
    assert run_as(host, "daseme", f"touch {BACKUPS}/intruder").rc != 0


def test_backup_wipe_restore_drill_gives_back_the_same_data(host):
    expected = totals(host)
    run = playbook(name="backup.yml")
    assert run.returncode == 0, failure_output(run)

    # Lose the database.
    host.check_output(f"systemctl stop {UNIT} && rm -f {DB} {DB}-wal {DB}-shm && systemctl start {UNIT}")
    assert answer_after_start(host) == "503"

    run = playbook("-e", "ctv_bookedbiz_db_restore_backup=latest", name="restore.yml")
    assert run.returncode == 0, failure_output(run)
    assert totals(host) == expected
    assert health(host) == "200"
    assert host.file(DB).user == USER


def test_a_corrupt_backup_is_refused_and_the_live_database_untouched(host):
    live = host.check_output(f"sha256sum {DB}")
    since = host.check_output("date '+%Y-%m-%d %H:%M:%S'")
    bogus = f"{BACKUPS}/production-29991231T000000.000000000Z-corrupt.db"
    run_as(host, USER, f"head -c 65536 /dev/urandom > {bogus}")
    try:
        run = playbook("-e", "ctv_bookedbiz_db_restore_backup=latest", name="restore.yml", json_output=False)
        output = " ".join((run.stdout + run.stderr).split())
        assert run.returncode != 0
        assert "refusing" in output and "not a sound SQLite database" in output, output[-3000:]
        assert "the live database was not touched" in output
    finally:
        host.run(f"rm -f {bogus}")
    assert host.check_output(f"sha256sum {DB}") == live
    assert health(host) == "200"
    last = json.loads(host.check_output("tail -n 1 /var/log/ctv-bookedbiz-db/audit.log"))
    assert (last["action"], last["result"], last["detail"]) == ("restore", "failed", "from latest")
    # A restore that fails raises the alarm, as the service and the nightly backup do.
    wait_for(lambda: re.search(r"ctv-bookedbiz-db-restore-\S+ failed", alarms(host, since)), 20, "the restore's alarm")


def broken_app(tmp_path, *, migration: bool):
    app = copy_app(tmp_path)
    asgi = app / "src" / "web" / "asgi.py"
    asgi.write_text(asgi.read_text() + "\nraise RuntimeError('this release cannot start')\n")
    if migration:
        db = app / "src" / "db.py"
        # One more migration, the way the app declares them.
        db.write_text(
            db.read_text()
            + '\nMIGRATIONS = MIGRATIONS + ("CREATE TABLE deploy_probe (id INTEGER PRIMARY KEY);",)'
            + "\nLATEST_VERSION = len(MIGRATIONS)\n"
        )
    return app


@pytest.mark.parametrize("migration", [False, True], ids=["import-error", "migration-then-crash"])
def test_a_release_that_cannot_start_is_rolled_back(host, tmp_path, migration):
    in_use = current_release(host)
    tree = deployed_files(host)
    db_bytes = host.check_output(f"sha256sum {DB}")
    dump = run_as(host, USER, f"sqlite3 {DB} .dump").stdout
    version = sql(host, "PRAGMA user_version")

    run = playbook(
        "-e",
        f"ctv_bookedbiz_db_app_src={broken_app(tmp_path, migration=migration)}",
        "-e",
        "ctv_bookedbiz_db_health_timeout=8",
        "--tags",
        "deploy",
        json_output=False,
    )
    output = " ".join((run.stdout + run.stderr).split())
    assert run.returncode != 0
    assert f"Release {in_use} was put back" in output, output[-4000:]
    assert "is serving: /health answers 200" in output

    assert health(host) == "200"
    assert current_release(host) == in_use
    assert deployed_files(host) == tree
    assert sql(host, "PRAGMA user_version") == version
    assert run_as(host, USER, f"sqlite3 {DB} .dump").stdout == dump
    if migration:
        assert "with the database restored from" in output
    else:
        # Nothing wrote to the database: it is the same file, byte for byte.
        assert host.check_output(f"sha256sum {DB}") == db_bytes


def test_rollback_returns_to_the_release_before_a_good_deploy(host, tmp_path):
    first = current_release(host)
    app = copy_app(tmp_path)
    (app / "src" / "web" / "asgi.py").write_text(
        (app / "src" / "web" / "asgi.py").read_text() + f"# second release {uuid.uuid4()}\n"
    )
    run = playbook("-e", f"ctv_bookedbiz_db_app_src={app}", "--tags", "deploy")
    assert run.returncode == 0, failure_output(run)
    second = current_release(host)
    assert second != first
    assert deployed_files(host) == shipped_files(app)

    run = playbook(name="rollback.yml")
    assert run.returncode == 0, failure_output(run)
    assert current_release(host) == first
    assert deployed_files(host) == shipped_files(APP_SRC)
    # The record's checks still hold.
    assert host.file(CODE_DIR).mode == 0o2775
    assert host.file(CODE_DIR).user == USER
    assert host.check_output(f"systemctl is-active {UNIT}") == "active"
    status = host.check_output("curl -s -o /dev/null -w '%{http_code} %{redirect_url}' http://127.0.0.1:8000/")
    assert status.startswith("302 ") and status.endswith("/reports/")
    imported = run_as(host, USER, f"{LOAD_ENV} cd {CODE_DIR} && {VENV_DIR}/bin/python -B -c 'import src.web.asgi'")
    assert imported.rc == 0, imported.stderr


def test_a_backup_uploaded_from_the_control_machine_is_restored(host, tmp_path):
    """A host without replication gets its database back from a backup file
    the operator has (the dead-host drill from the replica is the default
    scenario's): upload it, restore it, same data."""
    # The repository's app, whatever the tests before left.
    assert playbook("--tags", "deploy").returncode == 0
    expected = totals(host)
    run = playbook(name="backup.yml")
    assert run.returncode == 0, failure_output(run)
    newest = host.check_output(f"ls -1 {BACKUPS} | grep -- '-manual.db$' | tail -n 1")
    saved = tmp_path / "copy-from-the-control-machine.db"
    saved.write_bytes(host.file(f"{BACKUPS}/{newest}").content)
    sql(host, "DELETE FROM spots WHERE id % 3 = 0")
    assert totals(host) != expected

    run = playbook("-e", f"ctv_bookedbiz_db_restore_upload={saved}", name="restore.yml")
    assert run.returncode == 0, failure_output(run)
    assert host.file(f"{BACKUPS}/{saved.name}").exists
    assert totals(host) == expected
    assert health(host) == "200"


# --- the bad day: faults made real ------------------------------------------------


def sha(host, path: str) -> str:
    return host.check_output(f"sha256sum {path}").split()[0]


def main_pid(host) -> str:
    return host.check_output(f"systemctl show -p MainPID --value {UNIT}")


def test_restore_works_when_the_live_database_is_random_bytes(host):
    expected = totals(host)
    assert playbook(name="backup.yml").returncode == 0
    run_as(host, USER, f"head -c 65536 /dev/urandom > {DB}; head -c 8192 /dev/urandom > {DB}-wal")
    broken = sha(host, DB), sha(host, f"{DB}-wal")

    run = playbook("-e", "ctv_bookedbiz_db_restore_backup=latest", name="restore.yml", json_output=False)
    assert run.returncode == 0, output_of(run)[-3000:]
    assert totals(host) == expected
    assert health(host) == "200"
    kept = host.check_output(f"ls -1 {BACKUPS} | grep -- '-before-restore.db' | tail -n 2").split()
    assert [name.rsplit(".db", 1)[1] for name in kept] == ["", "-wal"]
    assert (sha(host, f"{BACKUPS}/{kept[0]}"), sha(host, f"{BACKUPS}/{kept[1]}")) == broken
    assert f"kept as {BACKUPS}/{kept[0]}" in output_of(run)
    assert not host.check_output(f"ls -A {DATA_DIR} | grep -- '.restoring' || true")


def test_restore_refuses_while_a_reader_holds_the_database_and_loses_no_commit(host):
    assert playbook(name="backup.yml").returncode == 0
    # A commit after the backup, left in the WAL, and a reader that holds a
    # snapshot open, so that no checkpoint can finish.
    sql(host, "PRAGMA wal_autocheckpoint = 0; UPDATE spots SET gross_rate = gross_rate + 1 WHERE id % 7 = 0")
    expected = totals(host)
    host.check_output(
        f"systemd-run --unit=ctv-test-reader --uid={USER} python3 -c "
        + quote(
            f"import sqlite3, time; c = sqlite3.connect('{DB}'); c.execute('BEGIN'); "
            "c.execute('SELECT count(*) FROM spots').fetchall(); time.sleep(300)"
        )
    )
    try:
        reader = host.check_output("systemctl show -p MainPID --value ctv-test-reader")
        deadline = time.monotonic() + 10
        while f"{DB}" not in host.run(f"ls -l /proc/{reader}/fd").stdout:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        run = playbook("-e", "ctv_bookedbiz_db_restore_backup=latest", name="restore.yml", json_output=False)
        assert run.returncode != 0
        assert f"is open in: {reader} (/usr/bin/python3" in output_of(run), output_of(run)[-3000:]
        assert "nothing was changed" in output_of(run)
        assert health(host) == "200"
        assert totals(host) == expected
    finally:
        host.run("systemctl stop ctv-test-reader")
    run = playbook("-e", "ctv_bookedbiz_db_restore_backup=latest", name="restore.yml")
    assert run.returncode == 0, failure_output(run)
    kept = host.check_output(f"ls -1 {BACKUPS} | grep -- '-before-restore.db$' | tail -n 1")
    kept_totals = run_as(host, USER, f'sqlite3 {BACKUPS}/{kept} "{TOTALS_SQL}"').stdout.strip()
    assert kept_totals == expected


def test_a_deploy_whose_backup_fails_leaves_the_running_service_alone(host, tmp_path):
    assert playbook(name="backup.yml").returncode == 0
    expected = totals(host)
    in_use, pid = current_release(host), main_pid(host)
    # Random bytes over a page in the middle of the database: it still
    # serves, but no backup of it passes the integrity check.
    sql(host, "PRAGMA wal_checkpoint(TRUNCATE)")
    pages = int(host.check_output(f"stat -c %s {DB}")) // 4096
    run_as(host, USER, f"head -c 4096 /dev/urandom | dd of={DB} bs=4096 seek={pages // 2} conv=notrunc status=none")
    try:
        run = playbook(
            "-e", f"ctv_bookedbiz_db_app_src={changed_app(tmp_path, 'unbacked')}", "--tags", "deploy", json_output=False
        )
        assert run.returncode != 0
        assert "failed before any new release was put in place" in output_of(run), output_of(run)[-3000:]
        assert "the backup failed" in output_of(run) and "no backup was removed" in output_of(run)
        assert f"Release {in_use} was left in place and the service was not stopped" in output_of(run)
        assert main_pid(host) == pid
        assert health(host) == "200"
        assert current_release(host) == in_use
    finally:
        run = playbook("-e", "ctv_bookedbiz_db_restore_backup=latest", name="restore.yml")
    assert run.returncode == 0, failure_output(run)
    assert totals(host) == expected


def test_backups_are_kept_per_kind_and_restore_copies_are_never_removed(host):
    host.check_output("systemctl start ctv-bookedbiz-db-backup.service")
    before = set(host.check_output(f"ls -1 {BACKUPS}").split())
    nightly = {n for n in before if n.endswith("-nightly.db")}
    restore_copies = {n for n in before if "-before-restore.db" in n}
    assert nightly and restore_copies
    for _ in range(6):
        run = run_as(host, USER, f"{ADMIN} backup manual")
        assert run.rc == 0, run.stderr
    after = set(host.check_output(f"ls -1 {BACKUPS}").split())
    assert len([n for n in after if n.endswith("-manual.db")]) == 5
    assert nightly <= after and restore_copies <= after


def test_restore_of_a_backup_from_before_a_migration_migrates_it(host):
    expected = totals(host)
    latest = sql(host, "PRAGMA user_version")
    old = f"{BACKUPS}/production-20200101T000000.000000000Z-manual.db"
    run_as(
        host,
        USER,
        f"sqlite3 {DB} \"VACUUM INTO '{old}'\" && sqlite3 {old} "
        + quote(
            "DROP TABLE data_version; DROP INDEX spot_totals_month; DROP TABLE spot_totals; PRAGMA user_version = 2;"
        ),
    )
    try:
        run = playbook("-e", f"ctv_bookedbiz_db_restore_backup={old}", name="restore.yml", json_output=False)
        assert run.returncode == 0, output_of(run)[-3000:]
        assert "schema upgraded" in output_of(run)
        assert health(host) == "200"
        assert sql(host, "PRAGMA user_version") == latest
        assert totals(host) == expected
    finally:
        host.run(f"rm -f {old}")


def test_rollback_after_a_migrating_deploy_refuses_then_restores_on_request(host, tmp_path):
    first = current_release(host)
    dump = run_as(host, USER, f"sqlite3 {DB} .dump").stdout
    version = int(sql(host, "PRAGMA user_version"))
    app = copy_app(tmp_path)
    db_py = app / "src" / "db.py"
    db_py.write_text(
        db_py.read_text()
        + (
            '\nMIGRATIONS = MIGRATIONS + ("CREATE TABLE rollback_probe (id INTEGER PRIMARY KEY);",)'
            "\nLATEST_VERSION = len(MIGRATIONS)\n"
        )
    )
    run = playbook("-e", f"ctv_bookedbiz_db_app_src={app}", "--tags", "deploy")
    assert run.returncode == 0, failure_output(run)
    second = current_release(host)
    assert sql(host, "PRAGMA user_version") == str(version + 1)
    tree = deployed_files(host)

    for _ in range(2):  # refused, and refused again: nothing moves
        run = playbook(name="rollback.yml", json_output=False)
        assert run.returncode != 0
        refusal = f"ran on schema version {version} but the database is at version {version + 1}"
        assert refusal in output_of(run), output_of(run)[-3000:]
        assert "nothing was changed" in output_of(run)
        assert current_release(host) == second and deployed_files(host) == tree
        assert health(host) == "200"

    run = playbook("-e", "ctv_bookedbiz_db_rollback_restore_database=true", name="rollback.yml", json_output=False)
    assert run.returncode == 0, output_of(run)[-3000:]
    assert "the replaced database is kept as" in output_of(run)
    assert current_release(host) == first
    assert health(host) == "200"
    assert run_as(host, USER, f"sqlite3 {DB} .dump").stdout == dump


def test_a_run_killed_after_the_unpack_is_finished_by_the_next_one(host, tmp_path):
    app = changed_app(tmp_path, "killed run")
    # A short ControlPersist, so that the killed run's SSH connection (and
    # with it the lock) goes in seconds rather than a minute.
    killed = start_playbook(
        "-e",
        f"ctv_bookedbiz_db_app_src={app}",
        env={"ANSIBLE_SSH_ARGS": "-C -o ControlMaster=auto -o ControlPersist=3s"},
    )
    read_until(killed, "List what is in the code tree")  # the unpack is done
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    killed_at = float(host.check_output("cut -d' ' -f1 /proc/uptime"))

    run = playbook("-e", f"ctv_bookedbiz_db_app_src={app}", "--tags", "deploy")
    assert run.returncode == 0, failure_output(run)
    assert deployed_files(host) == shipped_files(app)
    # The service runs the new release: it was started after the kill.
    started = int(host.check_output(f"systemctl show -p ExecMainStartTimestampMonotonic --value {UNIT}"))
    assert started / 1e6 > killed_at
    assert health(host) == "200"
    assert json.loads(host.check_output(f"{ADMIN} release status"))["pending"] == ""
