"""Safe deploys: backups, the health gate with automatic rollback, the
rollback and restore playbooks, a killed service, an interrupted run and
the rebuild of a dead host from a backup.

Legacy scenario only: the host the operators left by hand, once converged,
is where a deploy has most to lose. (The default scenario exercises the
re-runs meanwhile; the two run side by side.) Runs after the end-state and
legacy checks and leaves the instance converged on the repository's app.
"""

import os
import signal
import subprocess
import time
import uuid

import pytest

from conftest import (
    APP_SRC,
    CODE_DIR,
    DATA_DIR,
    LOAD_ENV,
    PROJECT_DIR,
    UNIT,
    USER,
    VENV_DIR,
    copy_app,
    deployed_files,
    failure_output,
    playbook,
    run_as,
    shipped_files,
)

pytestmark = pytest.mark.skipif(
    os.environ.get("MOLECULE_SCENARIO_NAME", "legacy") != "legacy",
    reason="deploy safety is exercised in the legacy scenario",
)

DB = f"{DATA_DIR}/production.db"
BACKUPS = "/var/backups/ctv-bookedbiz-db"
RELEASE = "/usr/local/sbin/ctv-bookedbiz-db-release"
CLI = f"set -a; . /etc/ctv-bookedbiz-db/ctv-bookedbiz-db.env; set +a; {VENV_DIR}/bin/ctv-bookedbiz"
# What the reports add up, straight from SQLite: rows, and revenue without Trade.
TOTALS_SQL = (
    "SELECT count(*), sum(gross_rate), sum(station_net) FROM spots WHERE revenue_type <> 'Trade'; "
    "SELECT count(*) FROM spots; SELECT count(*) FROM budgets; SELECT count(*) FROM users;"
)


def sql(host, statement: str) -> str:
    # As the runtime user: root would leave root-owned WAL files behind.
    return run_as(host, USER, f"sqlite3 {DB} \"{statement}\"").stdout.strip()


def totals(host) -> str:
    return sql(host, TOTALS_SQL)


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
    # Leave the instance on the repository's app.
    assert playbook(name="deploy.yml").returncode == 0


def test_service_comes_back_after_being_killed(host):
    before = int(host.check_output(f"systemctl show -p NRestarts --value {UNIT}"))
    pid = host.check_output(f"systemctl show -p MainPID --value {UNIT}")
    host.check_output(f"systemctl kill -s KILL {UNIT}")
    # RestartSec=2, then uvicorn's start-up: a few seconds more.
    assert answer_after_start(host, limit=2 + 15) == "200"
    assert host.check_output(f"systemctl show -p MainPID --value {UNIT}") != pid
    assert int(host.check_output(f"systemctl show -p NRestarts --value {UNIT}")) == before + 1


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
    in_use = host.check_output(f"{RELEASE} current")
    tree = deployed_files(host)
    db_bytes = host.check_output(f"sha256sum {DB}")
    dump = run_as(host, USER, f"sqlite3 {DB} .dump").stdout
    version = sql(host, "PRAGMA user_version")

    run = playbook(
        "-e", f"ctv_bookedbiz_db_app_src={broken_app(tmp_path, migration=migration)}",
        "-e", "ctv_bookedbiz_db_health_timeout=8",
        name="deploy.yml",
        json_output=False,
    )
    output = " ".join((run.stdout + run.stderr).split())
    assert run.returncode != 0
    assert f"Release {in_use} was put back" in output, output[-4000:]
    assert "is serving: /health answers 200" in output

    assert health(host) == "200"
    assert host.check_output(f"{RELEASE} current") == in_use
    assert deployed_files(host) == tree
    assert sql(host, "PRAGMA user_version") == version
    assert run_as(host, USER, f"sqlite3 {DB} .dump").stdout == dump
    if migration:
        assert "with the database restored from" in output
    else:
        # Nothing wrote to the database: it is the same file, byte for byte.
        assert host.check_output(f"sha256sum {DB}") == db_bytes


def test_rollback_returns_to_the_release_before_a_good_deploy(host, tmp_path):
    first = host.check_output(f"{RELEASE} current")
    app = copy_app(tmp_path)
    (app / "src" / "web" / "asgi.py").write_text(
        (app / "src" / "web" / "asgi.py").read_text() + f"# second release {uuid.uuid4()}\n"
    )
    run = playbook("-e", f"ctv_bookedbiz_db_app_src={app}", name="deploy.yml")
    assert run.returncode == 0, failure_output(run)
    second = host.check_output(f"{RELEASE} current")
    assert second != first
    assert deployed_files(host) == shipped_files(app)

    run = playbook(name="rollback.yml")
    assert run.returncode == 0, failure_output(run)
    assert host.check_output(f"{RELEASE} current") == first
    assert deployed_files(host) == shipped_files(APP_SRC)
    # The record's checks still hold.
    assert host.file(CODE_DIR).mode == 0o2775
    assert host.file(CODE_DIR).user == USER
    assert host.check_output(f"systemctl is-active {UNIT}") == "active"
    status = host.check_output("curl -s -o /dev/null -w '%{http_code} %{redirect_url}' http://127.0.0.1:8000/")
    assert status.startswith("302 ") and status.endswith("/reports/")
    imported = run_as(host, USER, f"{LOAD_ENV} cd {CODE_DIR} && {VENV_DIR}/bin/python -B -c 'import src.web.asgi'")
    assert imported.rc == 0, imported.stderr


def test_an_interrupted_run_is_finished_by_the_next_one(host, tmp_path):
    app = copy_app(tmp_path)
    (app / "src" / "web" / "asgi.py").write_text(
        (app / "src" / "web" / "asgi.py").read_text() + f"# interrupted release {uuid.uuid4()}\n"
    )
    inventory = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory")
    process = subprocess.Popen(
        ["ansible-playbook", "-i", inventory, str(PROJECT_DIR / "playbooks" / "deploy.yml"),
         "-e", f"ctv_bookedbiz_db_app_src={app}"],
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    # Kill the whole run as soon as it has started to change the code tree.
    seen = []
    for line in process.stdout:
        seen.append(line)
        if "Unpack the app" in line:
            break
    time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert any("Unpack the app" in line for line in seen), "".join(seen)[-3000:]

    run = playbook("-e", f"ctv_bookedbiz_db_app_src={app}", name="deploy.yml")
    assert run.returncode == 0, failure_output(run)
    assert deployed_files(host) == shipped_files(app)
    assert health(host) == "200"
    assert host.check_output(f"systemctl is-active {UNIT}") == "active"


def test_a_dead_host_rebuilt_and_restored_serves_the_same_data(host, tmp_path):
    # The repository's app, whatever the tests before left.
    assert playbook(name="deploy.yml").returncode == 0
    expected = totals(host)
    run = playbook(name="backup.yml")
    assert run.returncode == 0, failure_output(run)
    newest = host.check_output(f"ls -1 {BACKUPS} | grep -- '-manual.db$' | tail -n 1")
    saved = tmp_path / newest
    saved.write_bytes(host.file(f"{BACKUPS}/{newest}").content)

    # The host dies: everything the playbook made is gone.
    host.check_output(
        f"systemctl disable --now {UNIT} ctv-bookedbiz-db-backup.timer; "
        f"rm -rf {CODE_DIR} {VENV_DIR} {DATA_DIR} {BACKUPS} /opt/releases /etc/ctv-bookedbiz-db "
        f"/etc/systemd/system/{UNIT} /etc/systemd/system/ctv-bookedbiz-db-backup.* /var/cache/ctv-bookedbiz-db; "
        "systemctl daemon-reload"
    )
    run = playbook()
    assert run.returncode == 0, failure_output(run)
    assert sql(host, "SELECT count(*) FROM spots") == "0"

    run = playbook("-e", f"ctv_bookedbiz_db_restore_upload={saved}", name="restore.yml")
    assert run.returncode == 0, failure_output(run)
    assert totals(host) == expected
    assert health(host) == "200"
