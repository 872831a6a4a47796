"""The weekly work from the control machine: imports, budgets, months, users,
what is deployed, alarms and the archived imports' retention.

Each is one playbook run, as the README's operator's guide gives it, with real files
the app itself exported (`demo-data --export`), a real refused file, a real failing
backup (its directory made unwritable), a real webhook on the host's loopback and
a real terminal for the password prompt. The output is searched for both
passwords, and the host's process list for the one from ansible-vault.

These run only in the default scenario (a host built from bare Debian), in this
order: each test starts from what the ones before it left.
"""

import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import (
    ADMIN,
    DATA_DIR,
    DB,
    PROJECT_DIR,
    USER,
    alarms,
    failure_output,
    log_in,
    output_of,
    playbook,
    quote,
    sql,
    start_playbook,
    wait_for,
)

pytestmark = pytest.mark.skipif(
    os.environ.get("MOLECULE_SCENARIO_NAME", "default") != "default",
    reason="the everyday operations are exercised in the default scenario",
)

AUDIT_LOG = "/var/log/ctv-bookedbiz-db/audit.log"
PASSWORD = "vault-kept password of erin 7Qx!"
# Where the default instance's alarms go (molecule/shared/host_vars/ctv-bookedbiz-db-default.yml).
WEBHOOK_PORT = 18765
RECEIVED = "/root/webhook-received.jsonl"
LISTENER = f"""
import http.server, json
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open("{RECEIVED}", "a") as out:
            out.write(json.dumps({{"path": self.path, **body}}) + "\\n")
        self.send_response(200)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", {WEBHOOK_PORT}), Handler).serve_forever()
"""


def operator() -> str:
    """Who the runs say ran them: this control machine's user and host."""
    user = subprocess.run(["id", "-un"], capture_output=True, text=True, check=True).stdout.strip()
    return f"{user}@{subprocess.run(['hostname'], capture_output=True, text=True, check=True).stdout.strip()}"


def audit(host) -> list[dict]:
    return [json.loads(line) for line in host.check_output(f"cat {AUDIT_LOG}").splitlines()]


def exported(host, tmp_path, name: str, spots: int, seed: int) -> tuple:
    """A weekly file the app itself writes, brought to the control machine."""
    remote = f"/tmp/{name}"
    host.check_output(
        f"{ADMIN} app demo-data --spots {spots} --seed {seed} --start 2024-01 --months 3 --export {remote} --no-db"
    )
    local = tmp_path / name
    local.write_text(host.check_output(f"cat {remote}") + "\n")
    return local, local.read_text().splitlines()


def staged_copies(host) -> str:
    return host.check_output(f"find {DATA_DIR} -maxdepth 1 -name '.incoming-*'")


def test_the_weekly_import_is_one_command_and_prints_the_apps_summary(host, tmp_path):
    weekly, _ = exported(host, tmp_path, "weekly.csv", 1500, 21)
    run = playbook("-e", f"ctv_bookedbiz_db_import_file={weekly}", name="import.yml", json_output=False)
    out = output_of(run)
    assert run.returncode == 0, out[-3000:]
    assert "imported 1500 spots for Jan 2024, Feb 2024, Mar 2024" in out
    assert sql(host, "SELECT count(*) FROM spots WHERE broadcast_month BETWEEN '2024-01' AND '2024-03'") == "1500"
    # The app keeps its own copy; the staged one is gone.
    assert staged_copies(host) == ""
    assert host.check_output(f"ls {DATA_DIR}/processed").endswith("-weekly.csv")
    (last,) = audit(host)[-1:]
    assert (last["action"], last["result"], last["by"], last["detail"]) == ("import", "ok", operator(), "weekly.csv")


def test_a_refused_file_fails_with_the_apps_row_numbered_errors_and_changes_nothing(host, tmp_path):
    _, lines = exported(host, tmp_path, "refused.csv", 40, 22)
    lines[3] = lines[3].replace("-24,", "-2x,", 1)  # row 4 (the header is row 1): no such month
    lines[6] = ",".join(lines[6].split(",")[:-4] + ["lots"] + lines[6].split(",")[-3:])  # row 7: no amount
    refused = tmp_path / "refused.csv"
    refused.write_text("\n".join(lines) + "\n")
    # The app's tables (Litestream keeps a table of its own in the file, which it writes by itself).
    tables = "spots customers import_batches budgets month_closures users"
    dump = f"sudo -u {USER} sqlite3 {DB} '.dump {tables}' | sha256sum"
    before = host.check_output(dump)
    run = playbook("-e", f"ctv_bookedbiz_db_import_file={refused}", name="import.yml", json_output=False)
    out = output_of(run)
    assert run.returncode != 0
    assert "row 4: broadcast_month" in out and "row 7: gross_rate" in out, out[-3000:]
    assert host.check_output(dump) == before
    assert staged_copies(host) == ""
    assert audit(host)[-1]["result"] == "failed"


def test_a_user_is_added_with_a_password_from_vault_that_never_shows(host, tmp_path):
    vault_pass = tmp_path / "vault-pass"
    vault_pass.write_text("a vault password\n")
    secrets = tmp_path / "erin.vault.yml"
    secrets.write_text(f"ctv_bookedbiz_db_user_password: {json.dumps(PASSWORD)}\n")
    subprocess.run(
        ["ansible-vault", "encrypt", "--vault-password-file", str(vault_pass), str(secrets)],
        check=True,
        capture_output=True,
    )
    run = start_playbook(
        "-e",
        f"@{secrets}",
        "--vault-password-file",
        str(vault_pass),
        "-e",
        "ctv_bookedbiz_db_user_action=add",
        "-e",
        "ctv_bookedbiz_db_user_name=erin",
        "-e",
        "ctv_bookedbiz_db_user_role=management",
        name="users.yml",
    )
    # The host's process list, all through the run: the password is on no command line.
    seen = []
    while run.poll() is None:
        seen.append(host.check_output("ps -eo args"))
        time.sleep(0.2)
    out = run.stdout.read()
    assert run.returncode == 0, out[-3000:]
    assert PASSWORD not in out and not any(PASSWORD in listing for listing in seen)
    assert PASSWORD not in host.check_output(f"cat {AUDIT_LOG}")
    assert log_in(host, "erin", PASSWORD) == "302"
    assert audit(host)[-1]["detail"] == "add erin management"


def month_of(host, month: str) -> str:
    return sql(host, f"SELECT count(*), total(gross_rate) FROM spots WHERE broadcast_month = '{month}'")


def test_a_closed_month_is_left_as_it_is_by_an_import_until_it_is_reopened(host, tmp_path):
    run = playbook("-e", "ctv_bookedbiz_db_month=2024-02", name="month.yml", json_output=False)
    assert run.returncode == 0, output_of(run)[-3000:]
    assert "closed Feb 2024" in output_of(run)
    february = month_of(host, "2024-02")
    later, lines = exported(host, tmp_path, "later.csv", 900, 23)
    february_rows = sum(",Feb-24," in line for line in lines)
    run = playbook("-e", f"ctv_bookedbiz_db_import_file={later}", name="import.yml", json_output=False)
    out = output_of(run)
    assert run.returncode == 0, out[-3000:]
    # The app's own summary, in the play output: what it replaced and what it refused.
    assert f"imported {900 - february_rows} spots for Jan 2024, Mar 2024" in out
    assert f"skipped {february_rows} rows of closed month(s) Feb 2024" in out
    assert month_of(host, "2024-02") == february
    run = playbook(
        "-e", "ctv_bookedbiz_db_month=2024-02", "-e", "ctv_bookedbiz_db_month_action=reopen", name="month.yml"
    )
    assert run.returncode == 0, failure_output(run)
    assert sql(host, "SELECT count(*) FROM month_closures WHERE broadcast_month = '2024-02'") == "0"
    assert [(entry["action"], entry["result"], entry["detail"]) for entry in audit(host)[-3:]] == [
        ("close-month", "ok", "2024-02"),
        ("import", "ok", "later.csv"),
        ("reopen-month", "ok", "2024-02"),
    ]


def test_the_budgets_are_imported_from_the_control_machine(host, tmp_path):
    aes = sql(host, "SELECT DISTINCT sales_person FROM spots ORDER BY 1 LIMIT 3").splitlines()
    budgets = tmp_path / "budgets-2024.csv"
    rows = [f"{ae},2024-0{month},{1000 * month + i}.50" for i, ae in enumerate(aes) for month in (1, 2)]
    budgets.write_text("\n".join(["ae,month,amount", *rows]) + "\n")
    run = playbook("-e", f"ctv_bookedbiz_db_import_file={budgets}", name="import-budget.yml", json_output=False)
    out = output_of(run)
    assert run.returncode == 0, out[-3000:]
    assert f"{len(rows)} budget rows imported" in out
    amount = sql(host, f"SELECT amount FROM budgets WHERE sales_person = '{aes[1]}' AND broadcast_month = '2024-02'")
    assert amount == "200150"
    assert staged_copies(host) == ""
    assert audit(host)[-1]["action"] == "import-budget"


def test_status_says_what_is_deployed_and_by_whom(host):
    run = playbook(name="status.yml", json_output=False)
    out = output_of(run)
    assert run.returncode == 0, out[-3000:]
    live = json.loads(host.check_output(f"{ADMIN} status --json"))["live"]
    commit = subprocess.run(
        ["git", "-C", str(PROJECT_DIR), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert live["commit"] == commit and live["by"] == operator() and live["version"]
    assert f"live release: {live['release']}" in out and f"by {operator()}" in out
    assert "service: active (running)" in out
    assert "import ok" in out and "users ok" in out  # the last changes, from the audit log


def users(*args: str) -> subprocess.CompletedProcess:
    """users.yml with -e ctv_bookedbiz_db_user_NAME=VALUE for each 'NAME=VALUE' given."""
    return playbook(*(part for arg in args for part in ("-e", f"ctv_bookedbiz_db_user_{arg}")), name="users.yml")


def test_a_user_is_given_a_role_disabled_enabled_and_unlocked(host):
    run = users("action=set-role", "name=erin", "role=ae")
    assert run.returncode == 0, failure_output(run)
    assert sql(host, "SELECT role FROM users WHERE username = 'erin'") == "ae"
    run = users("action=disable", "name=erin")
    assert run.returncode == 0, failure_output(run)
    assert log_in(host, "erin", PASSWORD) == "401"
    run = users("action=enable", "name=erin")
    assert run.returncode == 0, failure_output(run)
    assert log_in(host, "erin", PASSWORD) == "302"
    # Locked out by wrong passwords (the throttle's limit per user name):
    # the right one is refused too, until the lock-out is cleared.
    for _ in range(5):
        assert log_in(host, "erin", "not her password") == "401"
    assert log_in(host, "erin", PASSWORD) == "429"
    run = users("action=unlock", "name=erin")
    assert run.returncode == 0, failure_output(run)
    assert log_in(host, "erin", PASSWORD) == "302"
    assert [entry["detail"] for entry in audit(host)[-4:]] == [
        "set-role erin ae",
        "disable erin",
        "enable erin",
        "unlock erin",
    ]


def test_a_password_typed_at_the_prompt_is_never_shown(host):
    """set-password without vault asks, without echo, on the operator's terminal.

    The password is typed once the prompt has turned the terminal's echo
    off, as a person types after reading it (typed before, it is echoed,
    and the prompt empties the input and waits on)."""
    import pty
    import termios

    def silent(terminal: int) -> bool:
        lflag = termios.tcgetattr(terminal)[3]
        return not lflag & (termios.ECHO | termios.ICANON)

    new = "typed at the prompt 4Zr#"
    inventory = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory"
    command = ["ansible-playbook", "-i", str(inventory), str(PROJECT_DIR / "playbooks/users.yml")]
    command += ["-e", "ctv_bookedbiz_db_user_action=set-password", "-e", "ctv_bookedbiz_db_user_name=erin"]
    pid, terminal = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    seen, typed, ended = b"", False, False
    deadline = time.monotonic() + 180  # never a test that hangs: the run is killed
    try:
        while time.monotonic() < deadline:
            if not select.select([terminal], [], [], 1)[0]:
                continue
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # the run has ended: its side of the terminal is closed
                chunk = b""
            if not chunk:
                ended = True
                break
            seen += chunk
            if not typed and b"Password for erin (not shown)" in seen:
                while not silent(terminal):
                    assert time.monotonic() < deadline, "the prompt left the echo on"
                    time.sleep(0.05)
                # (Ansible empties the input once more just after: a person
                # reading the prompt is slower than that.)
                time.sleep(0.5)
                os.write(terminal, new.encode() + b"\r")
                typed = True
    finally:
        if not ended:
            os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    out = seen.decode(errors="replace")
    assert typed and os.waitstatus_to_exitcode(status) == 0, out[-3000:]
    assert new not in out
    assert log_in(host, "erin", new) == "302"
    assert log_in(host, "erin", PASSWORD) == "401"
    assert audit(host)[-1]["detail"] == "set-password erin"


@pytest.fixture
def webhook(host):
    """A webhook listening on the host's loopback, as the alarm URLs name it."""
    host.check_output(f"rm -f {RECEIVED}; systemd-run --unit ctv-test-webhook --collect python3 -c {quote(LISTENER)}")
    deadline = time.monotonic() + 10
    while host.run(f"ss -Hltn 'sport = :{WEBHOOK_PORT}' | grep -q LISTEN").rc:
        assert time.monotonic() < deadline, "the webhook did not start"
        time.sleep(0.2)
    yield lambda: [json.loads(line) for line in host.run(f"cat {RECEIVED}").stdout.splitlines()]
    host.run("systemctl stop ctv-test-webhook")


def test_a_failing_backup_raises_the_alarm_and_a_good_one_pings(host, webhook):
    backups = "/var/backups/ctv-bookedbiz-db"
    since = host.check_output("date '+%Y-%m-%d %H:%M:%S'")
    host.check_output(f"chmod 0500 {backups}")
    try:
        assert host.run("systemctl start ctv-bookedbiz-db-backup.service").rc != 0
    finally:
        host.check_output(f"chmod 0750 {backups}")
    alarm, *_ = wait_for(lambda: [r for r in webhook() if r["path"] == "/alarm"], 20, "the alarm's POST")
    assert (alarm["unit"], alarm["state"]) == ("ctv-bookedbiz-db-backup.service", "failed")
    assert "ctv-bookedbiz-db-backup.service failed" in alarms(host, since)
    # A backup that works pings, so that silence would be the alarm.
    host.check_output("systemctl reset-failed ctv-bookedbiz-db-backup.service; systemctl start ctv-bookedbiz-db-backup")
    ping, *_ = wait_for(lambda: [r for r in webhook() if r["path"] == "/ping"], 20, "the ping")
    assert (ping["unit"], ping["state"]) == ("ctv-bookedbiz-db-backup.service", "succeeded")


def test_the_nightly_backup_prunes_old_archived_imports_but_never_a_live_one(host, tmp_path):
    """This instance keeps the newest archived import and those younger than
    30 days (molecule/shared/host_vars/ctv-bookedbiz-db-default.yml); an old
    one whose batch is still the live data of a month is kept all the same."""
    processed = f"{DATA_DIR}/processed"

    def archived() -> dict[str, str]:
        """Each archived file -> the name it was imported under."""
        names = host.check_output(f"ls {processed}").split()
        return {name.split("-", 2)[2]: name for name in names}

    # Imported by the tests above: weekly.csv (now the live data of Feb 2024
    # alone, its Jan and Mar replaced by later.csv) and later.csv (Jan, Mar).
    earlier = archived()
    assert {"weekly.csv", "later.csv"} <= earlier.keys(), earlier
    host.check_output(f"touch -d '60 days ago' {processed}/*")
    _, lines = exported(host, tmp_path, "months.csv", 300, 24)
    for name, month in (("feb.csv", "Feb-24"), ("jan.csv", "Jan-24"), ("feb-again.csv", "Feb-24")):
        text = "\n".join([lines[0], *(line for line in lines[1:] if f",{month}," in line)]) + "\n"
        host.check_output(f"printf %s {quote(text)} > /tmp/{name} && {ADMIN} app import /tmp/{name}")
    # Now weekly.csv is old and no month's data (feb.csv replaced its Feb);
    # feb.csv is no month's data either (feb-again.csv replaced it) but young.
    host.check_output("systemctl start ctv-bookedbiz-db-backup.service")
    kept = archived()
    assert kept.keys() == {"later.csv", "feb.csv", "jan.csv", "feb-again.csv"} | (earlier.keys() - {"weekly.csv"})
    journal = host.check_output("journalctl --no-pager -u ctv-bookedbiz-db-backup.service -n 20")
    assert "removed 1 archived import file(s)" in journal
