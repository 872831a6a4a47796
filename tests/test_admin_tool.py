"""The host's admin tool (roles/ctv_bookedbiz_db/files/ctv-bookedbiz-db-admin)
on the control machine: backups, retention, restores, releases and the lock,
each under the fault it exists for. Real SQLite files, real processes holding
them, a real tmpfs that fills up, the app's own CLI for the schema; only the
systemd unit is left out (the settings name no service): the Molecule
scenarios run the same tool against a real one.
"""

from __future__ import annotations

import getpass
import grp
import http.server
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "roles" / "ctv_bookedbiz_db" / "files" / "ctv-bookedbiz-db-admin"
CLI = ROOT / "app" / ".venv" / "bin" / "ctv-bookedbiz"

pytestmark = pytest.mark.skipif(not CLI.exists(), reason="the app's venv is not built (cd app && uv sync)")


class Host:
    """A host's layout in a scratch directory, with the tool's settings."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.backups = root / "backups"
        self.code = root / "code"
        self.venv = root / "venv"
        self.releases = root / "releases"
        for path in (self.data, self.backups, self.code, self.venv, self.releases):
            path.mkdir()
        self.db = self.data / "production.db"
        self.env = {
            "DATABASE_PATH": str(self.db),
            "DATA_PATH": str(self.data),
            "SECRET_KEY": "x" * 40,
            "RELEASE_FILE": str(root / "release.json"),
        }
        self.settings = root / "admin.json"
        self.write_settings()

    def write_settings(self, **changes) -> None:
        settings = {
            "database": str(self.db),
            "backup_dir": str(self.backups),
            "backup_keep": {"nightly": 3, "deploy": 3, "manual": 3},
            "user": getpass.getuser(),
            "group": grp.getgrgid(os.getgid()).gr_name,
            "service": None,
            "code_dir": str(self.code),
            "venv_dir": str(self.venv),
            "releases_dir": str(self.releases),
            "releases_keep": 2,
            "cli": str(CLI),
            "app_env": self.env,
            "max_lock_seconds": 60,
            "audit_log": str(self.root / "audit.log"),
            "alarm_file": str(self.root / "alarm.json"),
        }
        settings.update(changes)
        self.settings.write_text(json.dumps(settings))

    def admin(self, *args: str, env: dict | None = None, input: str | None = None) -> subprocess.CompletedProcess:
        base = {k: v for k, v in os.environ.items() if not k.startswith("CTV_BOOKEDBIZ_DB_LOCK_")}
        return subprocess.run(
            [sys.executable, str(TOOL), "--config", str(self.settings), *args],
            capture_output=True,
            text=True,
            check=False,
            input=input,
            env={**base, "CTV_BOOKEDBIZ_DB_LOCK_WAIT": "1", **(env or {})},
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(CLI), *args],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **self.env},
            cwd=self.root,
        )

    def totals(self, path: Path | None = None) -> tuple:
        conn = sqlite3.connect(path or self.db)
        try:
            return conn.execute("SELECT count(*), total(gross_rate) FROM spots").fetchone()
        finally:
            conn.close()


@pytest.fixture
def host(tmp_path) -> Host:
    host = Host(tmp_path)
    assert host.cli("db", "upgrade").returncode == 0
    made = host.cli("demo-data", "--spots", "300", "--seed", "3")
    assert made.returncode == 0, made.stderr
    return host


def backup_names(host: Host) -> list[str]:
    return sorted(p.name for p in host.backups.iterdir() if not p.name.startswith("."))


# --- backups and retention ---------------------------------------------------------


def test_a_backup_is_a_checked_copy_of_committed_data(host):
    run = host.admin("backup", "manual")
    assert run.returncode == 0, run.stderr
    made = Path(run.stdout.strip())
    assert made.parent == host.backups and made.name.endswith("-manual.db")
    assert host.totals(made) == host.totals()


def test_retention_is_per_kind_and_never_removes_restore_copies(host):
    for label in ("nightly", "manual"):
        assert host.admin("backup", label).returncode == 0
    kept_copy = host.backups / "production-20200101T000000.000000000Z-before-restore.db"
    kept_copy.write_bytes(host.db.read_bytes())
    # A retry loop of failing deploys: each one takes a backup.
    for _ in range(6):
        assert host.admin("backup", "deploy").returncode == 0
    names = backup_names(host)
    assert sum(n.endswith("-deploy.db") for n in names) == 3
    assert sum(n.endswith("-nightly.db") for n in names) == 1
    assert sum(n.endswith("-manual.db") for n in names) == 1
    assert kept_copy.name in names


def test_a_backup_onto_a_full_disk_fails_and_removes_nothing(host, tmp_path):
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(small)], check=False).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        host.backups = small
        host.write_settings(backup_dir=str(small))
        # Fill the disk with older backups until the next one cannot fit.
        older = [small / f"production-2020010{i}T000000.000000000Z-deploy.db" for i in range(1, 4)]
        for path in older:
            path.write_bytes(b"x" * 60_000)
        run = host.admin("backup", "deploy")
        assert run.returncode != 0
        assert "the backup failed" in run.stderr and "no backup was removed" in run.stderr
        assert all(path.exists() for path in older)
        assert not [p for p in small.iterdir() if p.name.startswith(".")]
    finally:
        subprocess.run(["umount", str(small)], check=True)


# --- restore ------------------------------------------------------------------------


def test_restore_over_random_bytes_keeps_the_broken_files_aside(host):
    good = host.totals()
    assert host.admin("backup", "manual").returncode == 0
    # The live database is ruined, WAL and all.
    host.db.write_bytes(os.urandom(65536))
    Path(f"{host.db}-wal").write_bytes(os.urandom(4096))
    broken = host.db.read_bytes(), Path(f"{host.db}-wal").read_bytes()

    run = host.admin("restore", "latest")
    assert run.returncode == 0, run.stderr
    assert host.totals() == good
    kept = sorted(p for p in host.backups.iterdir() if "-before-restore.db" in p.name)
    assert [p.name.rsplit(".db", 1)[1] for p in kept] == ["", "-wal"]
    assert (kept[0].read_bytes(), kept[1].read_bytes()) == broken
    assert "kept as" in run.stdout
    assert not list(host.data.glob(".*"))


def test_restore_refuses_while_a_reader_holds_the_database_and_loses_nothing(host):
    assert host.admin("backup", "manual").returncode == 0
    # Rows committed after the backup, still in the WAL, and a reader holding
    # a snapshot open so that no checkpoint can finish.
    conn = sqlite3.connect(host.db)
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("UPDATE spots SET gross_rate = gross_rate + 1")
    conn.commit()
    conn.close()
    expected = host.totals()
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1]); c.execute('BEGIN');"
                "c.execute('SELECT count(*) FROM spots').fetchall(); print('ready', flush=True); time.sleep(600)"
            ),
            str(host.db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "ready"
        run = host.admin("restore", "latest")
        assert run.returncode != 0
        assert f"is open in: {reader.pid}" in run.stderr and "nothing was changed" in run.stderr
        assert host.totals() == expected
    finally:
        reader.kill()
        reader.wait()
    # With the reader gone the restore goes through, and the kept copy has
    # every committed row.
    run = host.admin("restore", "latest")
    assert run.returncode == 0, run.stderr
    (kept,) = [p for p in host.backups.iterdir() if p.name.endswith("-before-restore.db")]
    assert host.totals(kept) == expected


def test_a_restore_onto_a_full_disk_fails_before_changing_anything(host, tmp_path):
    assert host.admin("backup", "manual").returncode == 0
    small = tmp_path / "small"
    small.mkdir()
    size = host.db.stat().st_size
    # Room for the live database, not for a staged copy beside it.
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size * 3 // 2}", "tmpfs", str(small)], check=False
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        live = small / "production.db"
        live.write_bytes(host.db.read_bytes())
        host.env["DATABASE_PATH"] = str(live)
        host.write_settings(database=str(live))
        run = host.admin("restore", "latest")
        assert run.returncode != 0
        assert "could not copy" in run.stderr and "nothing was changed" in run.stderr
        assert live.read_bytes() == host.db.read_bytes()
        assert sorted(p.name for p in small.iterdir()) == ["production.db", "production.db.lock"]
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_restore_refuses_a_corrupt_or_foreign_backup_before_touching_anything(host):
    before = host.db.read_bytes()
    bogus = host.backups / "production-29991231T000000.000000000Z-manual.db"
    bogus.write_bytes(os.urandom(8192))
    run = host.admin("restore", "latest")
    assert run.returncode != 0 and "not a sound SQLite database" in run.stderr
    foreign = host.backups / "other.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.commit()
    run = host.admin("restore", "other.db")
    assert run.returncode != 0 and "not a CTV BookedBiz DB database" in run.stderr
    assert host.db.read_bytes() == before


# Undoes the app's migration 3 (per-month totals and the data version):
# what a backup taken before it looks like.
BEFORE_MIGRATION_3 = (
    "DROP TABLE data_version; DROP INDEX spot_totals_month; DROP TABLE spot_totals; PRAGMA user_version = 2;"
)


def test_restore_of_a_backup_from_before_a_migration_migrates_it(host):
    old = host.backups / "production-20200101T000000.000000000Z-manual.db"
    conn = sqlite3.connect(host.db)
    latest = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.execute(f"VACUUM INTO '{old}'")
    conn.close()
    conn = sqlite3.connect(old)
    conn.executescript(BEFORE_MIGRATION_3)
    conn.close()
    run = host.admin("restore", old.name)
    assert run.returncode == 0, run.stderr
    assert "schema upgraded" in run.stdout
    conn = sqlite3.connect(host.db)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == latest >= 3
    assert conn.execute("SELECT total(spots) FROM spot_totals").fetchone()[0] == host.totals()[0]


def test_a_restore_whose_migration_fails_puts_the_live_database_back(host):
    before = host.totals()
    old = host.backups / "production-20200101T000000.000000000Z-manual.db"
    conn = sqlite3.connect(host.db)
    conn.execute(f"VACUUM INTO '{old}'")
    conn.close()
    conn = sqlite3.connect(old)
    conn.execute("PRAGMA user_version = 2")  # migration 3 then meets its own tables
    conn.commit()
    conn.close()
    run = host.admin("restore", old.name)
    assert run.returncode != 0
    assert "'db upgrade' failed" in run.stderr and "the database in place before was put back" in run.stderr
    assert host.totals() == before
    assert not list(host.data.glob(".*"))


# --- the lock -------------------------------------------------------------------------


def holder_process(host: Host) -> subprocess.Popen:
    """Another process holding the lock, the way any holder does."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import fcntl, json, os, sys, time\n"
                "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o660)\n"
                "fcntl.flock(fd, fcntl.LOCK_EX)\n"
                "os.ftruncate(fd, 0)\n"
                "os.write(fd, json.dumps({'holder': 'an import by alice', 'pid': os.getpid(),"
                " 'since': 'then', 'token': 't'}).encode())\n"
                "print('ready', flush=True); time.sleep(600)\n"
            ),
            f"{host.db}.lock",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout.readline().strip() == "ready"
    return process


def test_a_held_lock_makes_a_restore_wait_then_fail_naming_the_holder(host):
    assert host.admin("backup", "manual").returncode == 0
    before = host.db.read_bytes()
    holder = holder_process(host)
    try:
        run = host.admin("restore", "latest")
        assert run.returncode != 0
        assert f"locked by an import by alice (pid {holder.pid}) since then" in run.stderr
        assert host.db.read_bytes() == before
        assert host.admin("backup", "nightly").returncode != 0
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The kernel let go of a killed holder's lock.
    assert host.admin("restore", "latest").returncode == 0


def test_a_held_run_lock_lets_only_its_own_commands_through(host):
    run = host.admin("lock", "hold", "--holder", "deploy by bob")
    assert run.returncode == 0, run.stderr
    held = json.loads(run.stdout)
    try:
        assert host.admin("lock", "status").stdout.startswith("held by deploy by bob")
        # Another run waits, then fails naming the holder.
        other = host.admin("lock", "hold", "--holder", "deploy by carol", "--wait", "1")
        assert other.returncode != 0 and "locked by deploy by bob" in other.stderr
        # The run's own commands, and the app's CLI, pass with its token.
        token = {"CTV_BOOKEDBIZ_DB_LOCK_TOKEN": held["token"]}
        assert host.admin("backup", "deploy", env=token).returncode == 0
        assert host.admin("backup", "deploy", env={"CTV_BOOKEDBIZ_DB_LOCK_TOKEN": "f" * 32}).returncode != 0
    finally:
        released = host.admin("lock", "release", held["token"])
    assert released.returncode == 0, released.stderr
    assert host.admin("lock", "status").stdout.strip() == "free"


def test_a_run_lock_goes_when_the_run_that_took_it_dies(host, tmp_path):
    # A stand-in for ansible-playbook running on the host itself: the holder
    # lives as long as the outermost process of that name above it.
    playbook = tmp_path / "ansible-playbook"
    playbook.write_text(
        f"#!{sys.executable}\n"
        "import signal, subprocess, sys\n"
        "subprocess.run(sys.argv[1:], check=True)\n"
        "print('held', flush=True)\n"
        "signal.pause()\n"
    )
    playbook.chmod(0o755)
    run = subprocess.Popen(
        [str(playbook), sys.executable, str(TOOL), "--config", str(host.settings), "lock", "hold", "--holder", "a run"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert json.loads(run.stdout.readline())["anchor"] == "ansible-playboo"
    assert run.stdout.readline().strip() == "held"
    assert host.admin("lock", "status").stdout.startswith("held by a run")
    run.kill()
    run.wait()
    deadline = time.monotonic() + 5
    while host.admin("lock", "status").stdout.strip() != "free":
        assert time.monotonic() < deadline, "the lock outlived its run"
        time.sleep(0.2)


def test_a_run_lock_goes_at_the_latest_after_its_longest_life_or_when_its_holder_is_killed(host):
    host.write_settings(max_lock_seconds=2)
    assert host.admin("lock", "hold", "--holder", "a run whose connection stays").returncode == 0
    assert host.admin("lock", "status").stdout.startswith("held by a run whose connection stays")
    deadline = time.monotonic() + 8
    while host.admin("lock", "status").stdout.strip() != "free":
        assert time.monotonic() < deadline, "the lock outlived max_lock_seconds"
        time.sleep(0.2)
    # Breaking it by hand: the holder's pid, as `lock status` names it.
    host.write_settings(max_lock_seconds=600)
    held = json.loads(host.admin("lock", "hold", "--holder", "a stuck run").stdout)
    assert f"(pid {held['pid']})" in host.admin("lock", "status").stdout
    os.kill(held["pid"], signal.SIGTERM)
    deadline = time.monotonic() + 5
    while host.admin("lock", "status").stdout.strip() != "free":
        assert time.monotonic() < deadline, "killing the holder did not break the lock"
        time.sleep(0.2)


# --- releases -------------------------------------------------------------------------


def deploy(host: Host, release: str, marker: str) -> None:
    """What a deploy does to the tool's record, with files standing for the tree."""
    assert host.admin("release", "keep").returncode == 0
    assert host.admin("release", "begin", release).returncode == 0
    (host.code / "app.py").write_text(marker)
    (host.venv / "lib.py").write_text(marker)
    assert host.admin("release", "commit", release).returncode == 0


def status(host: Host) -> dict:
    return json.loads(host.admin("release", "status").stdout)


def shown(host: Host) -> str:
    """The release the app shows: the file the tool writes when one goes live."""
    record = json.loads(Path(host.env["RELEASE_FILE"]).read_text())
    assert record["live_since"].endswith("+00:00")
    return record["release"]


def test_a_dead_run_leaves_its_release_pending_for_the_next(host):
    deploy(host, "a" * 16, "one")
    assert host.admin("release", "keep").returncode == 0
    assert host.admin("release", "begin", "b" * 16).returncode == 0
    assert status(host) == {"current": "a" * 16, "previous": "", "pending": "b" * 16}
    assert shown(host) == "a" * 16
    assert host.admin("release", "commit", "b" * 16).returncode == 0
    assert status(host)["pending"] == ""
    assert shown(host) == "b" * 16


def test_the_live_release_file_never_follows_a_link_the_app_planted(host, tmp_path):
    """The file's directory is the app's to write: links planted where the tool
    writes must not make root write through them."""
    victim = tmp_path / "victim"
    victim.write_text("root's own file\n")
    shown_file = Path(host.env["RELEASE_FILE"])
    for name in (shown_file.name, shown_file.name + ".partial", shown_file.name + ".tmp"):
        (shown_file.parent / name).symlink_to(victim)
    deploy(host, "a" * 16, "one")
    assert victim.read_text() == "root's own file\n"
    assert not shown_file.is_symlink() and shown(host) == "a" * 16


def test_revert_puts_the_kept_release_back(host):
    deploy(host, "a" * 16, "one")
    assert host.admin("release", "keep").returncode == 0
    assert host.admin("release", "begin", "b" * 16).returncode == 0
    (host.code / "app.py").write_text("two")
    run = host.admin("revert", "a" * 16)
    assert run.returncode == 0, run.stderr
    assert (host.code / "app.py").read_text() == "one"
    assert status(host) == {"current": "a" * 16, "previous": "", "pending": ""}
    assert shown(host) == "a" * 16


def test_rollback_after_a_migrating_deploy_refuses_or_restores_and_can_run_twice(host):
    deploy(host, "a" * 16, "one")
    backup = host.admin("backup", "deploy").stdout.strip()
    before = host.totals()
    assert host.admin("release", "keep").returncode == 0
    assert host.admin("release", "begin", "b" * 16).returncode == 0
    (host.code / "app.py").write_text("two")
    conn = sqlite3.connect(host.db)
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    conn.execute(f"PRAGMA user_version = {version + 1}")  # release b migrated
    conn.execute("DELETE FROM spots WHERE id % 2 = 0")
    conn.commit()
    conn.close()
    assert host.admin("release", "commit", "b" * 16, "--backup", backup).returncode == 0

    run = host.admin("rollback")
    assert run.returncode != 0
    assert "nothing was changed" in run.stderr and backup in run.stderr
    assert (host.code / "app.py").read_text() == "two"
    assert status(host)["current"] == "b" * 16

    for _ in range(2):  # a rollback whose health check failed is run again
        run = host.admin("rollback", "--restore-database")
        assert run.returncode == 0, run.stderr
        assert (host.code / "app.py").read_text() == "one"
        assert host.totals() == before
        assert status(host)["current"] == "b" * 16
        assert shown(host) == "a" * 16  # the release running
    assert host.admin("release", "pop", "b" * 16).returncode == 0
    assert host.admin("release", "pop", "b" * 16).stdout == ""
    assert status(host)["current"] == "a" * 16
    assert host.admin("rollback").returncode != 0  # nothing earlier than a


# --- the off-host replica ---------------------------------------------------------
# A real Litestream (the control machine's, same pin as the hosts') streaming
# to a replica in a directory: the admin tool's decisions and restores
# against it. The SFTP replica and the systemd unit are the default
# scenario's part.

LITESTREAM = ROOT / ".venv" / "bin" / "litestream"


def with_replica(host: Host, replica: Path) -> Path:
    """Give HOST a replica in REPLICA; returns Litestream's configuration."""
    config = host.root / "litestream.yml"
    config.write_text(
        json.dumps(
            {
                "dbs": [
                    {"path": str(host.db), "replica": {"type": "file", "path": str(replica), "sync-interval": "100ms"}}
                ]
            }
        )
    )
    host.write_settings(
        replica={
            "litestream": str(LITESTREAM),
            "config": str(config),
            "service": None,
            "target": f"file://{replica}",
            "status_file": str(host.root / "replica-status.json"),
        }
    )
    return config


def stream(host: Host, config: Path, seconds: float = 3.0) -> None:
    """Run the replication for a while, as the unit does, then stop it."""
    # As in the unit: no AWS_* settings of this machine (AWS_CA_BUNDLE breaks it).
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    process = subprocess.Popen(
        [str(LITESTREAM), "replicate", "-no-expand-env", "-config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    time.sleep(seconds)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == 0, process.stderr.read()


def test_a_restore_from_the_replica_brings_back_what_was_streamed(host, tmp_path):
    config = with_replica(host, tmp_path / "replica")
    assert host.admin("replica", "start").returncode == 0
    stream(host, config)
    streamed = host.totals()
    # The host's disk is lost: the database is random bytes now.
    host.db.write_bytes(os.urandom(65536))
    for side in ("-wal", "-shm"):
        Path(f"{host.db}{side}").unlink(missing_ok=True)

    run = host.admin("restore", "replica")
    assert run.returncode == 0, run.stderr
    assert "from the replica" in run.stdout
    assert host.totals() == streamed
    # The restored database is the one the replica follows from now on.
    assert Path(f"{host.data}/.production.db-replica").read_text().strip() == f"file://{tmp_path / 'replica'}"
    assert not Path(f"{host.data}/.production.db-litestream").exists()


def test_replication_is_held_when_the_replica_holds_another_databases_data(host, tmp_path):
    config = with_replica(host, tmp_path / "replica")
    assert host.admin("replica", "start").returncode == 0
    stream(host, config)
    # A rebuilt host: a new, empty database, no record of ever streaming.
    (tmp_path / "rebuilt").mkdir()
    rebuilt = Host(tmp_path / "rebuilt")
    assert rebuilt.cli("db", "upgrade").returncode == 0
    with_replica(rebuilt, tmp_path / "replica")
    run = rebuilt.admin("replica", "start")
    assert run.returncode == 3
    assert "replication is held" in run.stderr and "Restore from the replica first" in run.stderr
    assert not Path(f"{rebuilt.data}/.production.db-replica").exists()
    state = json.loads(rebuilt.admin("replica", "status").stdout)
    assert state["replica_txid"] and state["error"] is None
    # The operator who knows better (the replica moved) can say so.
    assert rebuilt.admin("replica", "start", "--adopt").returncode == 0
    assert Path(f"{rebuilt.data}/.production.db-replica").exists()


def test_a_restore_from_an_empty_or_unreadable_replica_touches_nothing(host, tmp_path):
    before = host.db.read_bytes()
    with_replica(host, tmp_path / "empty")
    run = host.admin("restore", "replica")
    assert run.returncode == 1
    assert "no matching backup files" in run.stderr and "the live database was not touched" in run.stderr
    assert host.db.read_bytes() == before
    assert not [p for p in host.backups.iterdir()]
    run = host.admin("restore", "replica", "--timestamp", "yesterday")
    assert run.returncode == 1 and "RFC 3339" in run.stderr
    assert host.db.read_bytes() == before


def test_a_restore_from_the_replica_to_a_point_in_time(host, tmp_path):
    config = with_replica(host, tmp_path / "replica")
    assert host.admin("replica", "start").returncode == 0
    stream(host, config, seconds=2)
    first = host.totals()
    time.sleep(1.5)
    middle = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    time.sleep(1.5)
    conn = sqlite3.connect(host.db)
    conn.execute("DELETE FROM spots WHERE id % 2 = 0")
    conn.commit()
    conn.close()
    stream(host, config, seconds=2)
    assert host.totals() != first
    run = host.admin("restore", "replica", "--timestamp", middle)
    assert run.returncode == 0, run.stderr
    assert host.totals() == first


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_roles_s3_configuration_replicates_to_a_real_s3_server_and_restores(host, tmp_path):
    """S3-compatible storage (B2 in production): the configuration the role
    renders from its variables, Litestream, a real S3 server (moto's), and a
    restore from it through the admin tool."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    server = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "moto_server"), "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/"], check=False).returncode:
            assert time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.3)
        assert (
            subprocess.run(["curl", "-s", "-X", "PUT", f"http://127.0.0.1:{port}/ctv-replica"], check=False).returncode
            == 0
        )
        # The role's template, rendered with the role's defaults and vars.
        config = tmp_path / "litestream.yml"
        variables = {
            "ctv_bookedbiz_db_data_dir": str(host.data),
            "ctv_bookedbiz_db_replica_type": "s3",
            "ctv_bookedbiz_db_replica_s3_bucket": "ctv-replica",
            "ctv_bookedbiz_db_replica_s3_endpoint": f"http://127.0.0.1:{port}",
            "ctv_bookedbiz_db_replica_s3_region": "us-east-1",
            "ctv_bookedbiz_db_replica_s3_force_path_style": True,
            "ctv_bookedbiz_db_replica_s3_access_key_id": "testing",
            # A "$" stays a "$": the configuration is read with -no-expand-env.
            "ctv_bookedbiz_db_replica_s3_secret_access_key": "te$ting/secret",
            "ctv_bookedbiz_db_replica_sync_interval": "100ms",
        }
        role = ROOT / "roles" / "ctv_bookedbiz_db"
        play = tmp_path / "render.yml"
        play.write_text(
            json.dumps(
                [
                    {
                        "hosts": "localhost",
                        "gather_facts": False,
                        "connection": "local",
                        "vars": {"ansible_python_interpreter": sys.executable},
                        "vars_files": [str(role / "defaults" / "main.yml"), str(role / "vars" / "main.yml")],
                        "tasks": [
                            {
                                "ansible.builtin.template": {
                                    "src": str(role / "templates" / "etc" / "ctv-bookedbiz-db" / "litestream.yml.j2"),
                                    "dest": str(config),
                                    "mode": "0600",
                                }
                            }
                        ],
                    }
                ]
            )
        )
        rendered = subprocess.run(
            [
                str(ROOT / ".venv" / "bin" / "ansible-playbook"),
                "-i",
                "localhost,",
                str(play),
                "-e",
                json.dumps(variables),
            ],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        assert rendered.returncode == 0, rendered.stdout[-2000:]
        host.write_settings(
            replica={
                "litestream": str(LITESTREAM),
                "config": str(config),
                "service": None,
                "target": "s3://ctv-replica/ctv-bookedbiz-db",
                "status_file": str(tmp_path / "status.json"),
            }
        )
        assert host.admin("replica", "start").returncode == 0
        stream(host, config)
        streamed = host.totals()
        host.db.write_bytes(os.urandom(65536))
        run = host.admin("restore", "replica")
        assert run.returncode == 0, run.stderr
        assert host.totals() == streamed
    finally:
        server.terminate()
        server.wait(timeout=10)


# --- operations: the app's command line, the audit log, the status, the alarms -------


def test_app_runs_the_apps_command_line_with_the_services_environment(host):
    added = host.admin("app", "users", "add", "carol", "--role", "ae", input="a password of carol's\n")
    assert added.returncode == 0, added.stderr
    listed = host.admin("app", "users", "list")
    assert listed.returncode == 0 and "carol" in listed.stdout
    # The app's own exit status and message come through.
    refused = host.admin("app", "users", "set-role", "nobody", "--role", "ae")
    assert refused.returncode == 1 and "nobody" in refused.stderr


def test_the_audit_log_gets_one_line_per_change_and_refuses_unknown_actions(host):
    for result in ("ok", "failed"):
        run = host.admin("audit", "import", "--by", "ann@desk", "--result", result, "--detail", "weekly.csv\nbatch 7")
        assert run.returncode == 0, run.stderr
    lines = (host.root / "audit.log").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [(r["action"], r["result"], r["by"], r["detail"]) for r in records] == [
        ("import", "ok", "ann@desk", "weekly.csv batch 7"),
        ("import", "failed", "ann@desk", "weekly.csv batch 7"),
    ]
    assert (host.root / "audit.log").stat().st_mode & 0o777 == 0o640
    assert host.admin("audit", "format-disk", "--by", "x", "--result", "ok").returncode != 0
    assert len((host.root / "audit.log").read_text().splitlines()) == 2


def test_status_shows_who_shipped_the_live_release_the_kept_ones_backups_and_changes(host):
    deploy(host, "a" * 16, "one")
    assert host.admin("release", "keep").returncode == 0
    assert host.admin("release", "begin", "b" * 16).returncode == 0
    commit = host.admin(
        "release",
        "commit",
        "b" * 16,
        "--by",
        "ann@desk",
        "--commit",
        "c0ffee" * 6 + "abcd",
        "--dirty",
        "--version",
        "0.2.0",
    )
    assert commit.returncode == 0, commit.stderr
    backup = host.admin("backup", "manual").stdout.strip()
    host.admin("audit", "deploy", "--by", "ann@desk", "--result", "ok", "--detail", "release " + "b" * 16)
    report = json.loads(host.admin("status", "--json").stdout)
    assert {k: report["live"][k] for k in ("release", "by", "commit", "dirty", "version")} == {
        "release": "b" * 16,
        "by": "ann@desk",
        "commit": "c0ffee" * 6 + "abcd",
        "dirty": True,
        "version": "0.2.0",
    }
    assert [entry["release"] for entry in report["kept"]] == ["a" * 16]
    assert report["backups"][0]["name"] == Path(backup).name and report["backups"][0]["label"] == "manual"
    assert report["changes"][-1]["action"] == "deploy"
    text = host.admin("status").stdout
    assert "live release:  " + "b" * 16 in text and "(with uncommitted changes)" in text and "by ann@desk" in text
    assert "kept release:  " + "a" * 16 in text and "manual" in text and "deploy ok" in text


class Listener:
    """A webhook on the loopback: what was POSTed to it, by path."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((self.path, json.loads(body)))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_notify_posts_a_failure_to_the_alarm_url_and_a_success_to_the_ping_url(host):
    listener = Listener()
    try:
        # No URLs: nothing is sent, and that is not an error.
        assert host.admin("notify", "ctv-bookedbiz-db-backup.service").returncode == 0
        (host.root / "alarm.json").write_text(
            json.dumps({"alarm_url": listener.url + "/alarm/s3cr3t", "backup_ping_url": listener.url + "/ping/s3cr3t"})
        )
        assert host.admin("notify", "ctv-bookedbiz-db-backup.service").returncode == 0
        assert host.admin("notify", "ctv-bookedbiz-db-backup.service", "--ok").returncode == 0
        assert [(path, body["unit"], body["state"]) for path, body in listener.received] == [
            ("/alarm/s3cr3t", "ctv-bookedbiz-db-backup.service", "failed"),
            ("/ping/s3cr3t", "ctv-bookedbiz-db-backup.service", "succeeded"),
        ]
    finally:
        listener.server.shutdown()
    # A webhook that does not answer: the notify unit fails, without the URL's token in the journal.
    run = host.admin("notify", "ctv-bookedbiz-db.service")
    assert run.returncode == 1 and "could not be sent" in run.stderr and "s3cr3t" not in run.stderr


def test_imports_prune_keeps_the_newest_the_young_and_every_live_batch(host, tmp_path):
    def imported(name: str, seed: int, month: str) -> None:
        path = tmp_path / name
        made = host.cli(
            "demo-data",
            "--spots",
            "30",
            "--seed",
            str(seed),
            "--start",
            month,
            "--months",
            "1",
            "--export",
            str(path),
            "--no-db",
        )
        assert made.returncode == 0, made.stderr
        run = host.cli("import", str(path))
        assert run.returncode == 0, run.stderr

    imported("a.csv", 5, "2031-01")  # replaced by b.csv: no longer live
    imported("b.csv", 6, "2031-01")  # the live data of 2031-01
    imported("c.csv", 7, "2031-02")  # live
    (host.data / "batch-000000-ancient.csv").write_text("x\n")  # no batch of this database
    for name in ("batch-000008-young.csv", "batch-000009-newest.csv"):
        (host.data / name).write_text("x\n")
    long_ago = time.time() - 100 * 86400
    for path in host.data.glob("batch-*"):
        if "young" not in path.name and "newest" not in path.name:
            os.utime(path, (long_ago, long_ago))
    host.write_settings(imports_keep=1, imports_max_age_days=30)
    run = host.admin("imports", "prune")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "removed 2 archived import file(s); 4 kept"
    kept = sorted(path.name.split("-", 2)[2] for path in host.data.glob("batch-*"))
    assert kept == ["b.csv", "c.csv", "newest.csv", "young.csv"]
    # Without settings it refuses rather than guessing.
    host.write_settings()
    assert host.admin("imports", "prune").returncode == 1
