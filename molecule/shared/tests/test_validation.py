"""Wrong and dangerous variables stop the run in the validation play.

Each value below goes through a real `ansible-playbook playbooks/validate.yml -e ...`
against the bare host, before the first converge and beside the preview
(`--check --diff`, test_check_mode.py): the first play of site.yml (and of
every playbook that changes the host, which a test below checks). Every run
must fail in the validation play (the first play, which changes nothing),
with a message naming the variable; then the host must be byte-identical to
before the sweep and the preview: every file's path, owner, group, mode and
sha256 (and every link's target) under /etc, /usr, /var and /opt, which
test_check_mode.py compares after them all. Values that must keep working
(the defaults, other sound layouts) pass the validation play.

These run only in the default scenario (the same playbook, so once is enough).
"""

import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from conftest import PROJECT_DIR, playbook

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("MOLECULE_SCENARIO_NAME", "default") != "default",
        reason="playbook runs are exercised in the default scenario",
    ),
    # On the bare host, beside the preview: all of them must change nothing
    # (test_check_mode.py compares the host's listing after them all).
    pytest.mark.before_converge,
]

VALIDATION_PLAY = "Check the inventory variables of every role"

# (variable, value): each must stop the run before anything changes. The
# issue's list in full, then one or two of each kind of danger (each run costs
# a few seconds of the test command's ten minutes).
REFUSED = [
    # Issue finding 11: absolute and well-formed, yet they hand the system to the app.
    # (One check loops over every directory variable: a few of them stand for all.)
    ("ctv_bookedbiz_db_data_dir", "/etc"),  # chown -R of /etc to the runtime user
    ("ctv_bookedbiz_db_code_dir", "/usr"),  # the tree sync removes what is not the app
    ("ctv_bookedbiz_db_backup_dir", "/var"),
    ("ctv_bookedbiz_db_user", "root"),
    ("developers_group", "root"),
    ("ctv_bookedbiz_db_deploy_group", "sudo"),
    ("ctv_bookedbiz_db_group", "shadow"),
    ("developers_users", ["root"]),
    # A newline writes extra directives into the timer unit.
    ("ctv_bookedbiz_db_backup_on_calendar", "*-*-* 02:30:00\nOnBootSec=1"),
    # / itself, system directories and their parents.
    ("ctv_bookedbiz_db_code_dir", "/"),
    # Under places that are never the app's.
    ("ctv_bookedbiz_db_data_dir", "/home/ctv-bookedbiz-db"),
    # Inside a directory a Debian package owns on the host (found by dpkg only).
    ("ctv_bookedbiz_db_data_dir", "/var/lib/dpkg/ctv-bookedbiz-db"),
    # Not in normal form, or with characters that change a unit file or a command line.
    ("ctv_bookedbiz_db_python", "/usr/bin/python3 -I"),
    # A trailing newline: a regular expression ending in $ lets it through.
    ("ctv_bookedbiz_db_host", "0.0.0.0\nUser=root"),
    # Managed directories nested in each other.
    ("ctv_bookedbiz_db_data_dir", "/opt/apps/ctv-bookedbiz-db/data"),
    # Accounts and groups of the base system and of system packages.
    ("ctv_bookedbiz_db_user", "systemd-network"),
    # The runtime group must keep the developers out of the data and the secret.
    # Wrong before this check existed.
    # Replication: Litestream's venv is removed when replication is turned off.
    ("ctv_bookedbiz_db_litestream_dir", "/usr/local/bin"),
    # The alarm's command goes into a unit file.
    ("ctv_bookedbiz_db_notify_command", "/usr/bin/logger x\nExecStartPre=/bin/sh"),
    ("ctv_bookedbiz_db_replica_type", "ftp"),
    # Trusting every client's X-Forwarded-For lets anyone pick the address the login throttle counts.
    ("ctv_bookedbiz_db_forwarded_allow_ips", ["*"]),
]

# Values that must still pass the validation play.
# (The defaults pass in every converge.)
ACCEPTED = {
    "another sound layout": {
        "ctv_bookedbiz_db_code_dir": "/srv/ctv/app",
        "ctv_bookedbiz_db_venv_dir": "/srv/ctv/venv",
        "ctv_bookedbiz_db_data_dir": "/srv/ctv/data",
        "ctv_bookedbiz_db_config_dir": "/etc/opt/ctv",
        "ctv_bookedbiz_db_cache_dir": "/var/cache/ctv_app",
        "ctv_bookedbiz_db_backup_dir": "/var/backups/ctv.app",
        "ctv_bookedbiz_db_releases_dir": "/var/opt/ctv+app@2/releases",
        "ctv_bookedbiz_db_python": "/usr/bin/python3.11",
        "ctv_bookedbiz_db_user": "ctv-app",
        "ctv_bookedbiz_db_group": "ctv-app",
        "ctv_bookedbiz_db_backup_on_calendar": "Mon..Fri *-*-* 03:00:00 Europe/Berlin",
        "developers_group": "ctv-devs",
        "developers_users": ["alice", "bob_2"],
        "developers_shell": "/usr/bin/bash",
        "uv_install_dir": "/usr/local/lib/uv",
        "uv_bin_link": "/usr/local/sbin/uv",
        "legacy_flaskapp_archive_dir": "/usr/local/lib/systemd/system",
        "ctv_bookedbiz_db_litestream_dir": "/srv/ctv/litestream",
        "ctv_bookedbiz_db_replica_type": "s3",
        "ctv_bookedbiz_db_replica_s3_bucket": "ctv-bookedbiz-db-replica",
        "ctv_bookedbiz_db_replica_s3_endpoint": "https://s3.example.net:9000",
        "ctv_bookedbiz_db_replica_s3_region": "us-west-004",
        "ctv_bookedbiz_db_replica_s3_access_key_id": "0041a2b3c4d5",
        "ctv_bookedbiz_db_replica_s3_secret_access_key": "K004$secret/with+signs",
        "ctv_bookedbiz_db_notify_command": "/usr/local/bin/page-the-team --channel ops",
        "ctv_bookedbiz_db_forwarded_allow_ips": ["127.0.0.1", "::1", "100.64.0.0/10"],
    },
}

CASE_IDS = [f"{variable}={json.dumps(value)}" for variable, value in REFUSED]


@pytest.fixture(scope="module")
def sweep(before_converge) -> dict[str, subprocess.CompletedProcess]:
    """Each refused value's run, side by side (they only read the host), one
    per processor: each is mostly the controller's own start-up and templating.
    """
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        runs = pool.map(lambda case: playbook("-e", json.dumps({case[0]: case[1]}), name="validate.yml"), REFUSED)
        return dict(zip(CASE_IDS, runs, strict=True))


def messages(result: dict) -> list[str]:
    """Every message of a host result, its loop items' included."""
    found = [str(result.get("msg", ""))]
    for item in result.get("results", []):
        found.extend(messages(item))
    return found


@pytest.mark.parametrize(("variable", "value"), REFUSED, ids=CASE_IDS)
def test_a_dangerous_variable_stops_the_run_in_the_validation_play(sweep, variable, value):
    run = sweep[f"{variable}={json.dumps(value)}"]
    assert run.returncode != 0, f"{variable}={value!r} passed: {run.stdout[-3000:]}"
    report = json.loads(run.stdout)
    # Only the validation play began: no play that changes anything ran.
    assert [play["play"]["name"] for play in report["plays"]] == [VALIDATION_PLAY]
    # Nothing changed on any host (the backup host's included).
    assert [stats["changed"] for stats in report["stats"].values()] == [0] * len(report["stats"])
    assert sum(stats["failures"] for stats in report["stats"].values()) == 1
    failed = [
        message
        for play in report["plays"]
        for task in play["tasks"]
        for result in task["hosts"].values()
        if result.get("failed")
        for message in messages(result)
    ]
    assert any(variable in message for message in failed), failed


def test_every_playbook_that_changes_the_host_checks_the_variables_first():
    """The sweep runs validate.yml; every playbook that changes the host begins with it."""
    for name in ("site.yml", "provision.yml", "replicate.yml"):
        first = yaml.safe_load((PROJECT_DIR / "playbooks" / name).read_text())[0]
        assert first.get("ansible.builtin.import_playbook") in ("validate.yml", "provision.yml"), name
    first = yaml.safe_load((PROJECT_DIR / "playbooks/site.yml").read_text())[0]
    assert first["ansible.builtin.import_playbook"] == "provision.yml"


@pytest.mark.parametrize("values", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_sound_values_pass_the_validation_play(before_converge, values):
    run = playbook("--check", "-e", json.dumps(values), name="validate.yml")
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    report = json.loads(run.stdout)
    assert [stats["changed"] for stats in report["stats"].values()] == [0] * len(report["stats"])


def test_the_roles_share_one_list_of_system_directories_and_accounts():
    """Each role checks its own variables alone, so each holds the lists it needs."""

    def lists(role: str, names: tuple[str, ...]) -> dict:
        tasks = yaml.safe_load((PROJECT_DIR / "roles" / role / "tasks" / "validate.yml").read_text())
        (block,) = [task for task in tasks if "block" in task and "vars" in task]
        found = {name: block["vars"].get(f"__{role}_{name}") for name in names}
        assert all(found.values()), (role, found)
        return found

    dirs = ("system_dirs", "foreign_dirs", "data_homes")
    assert lists("uv", dirs) == lists("legacy_flaskapp", dirs) == lists("ctv_bookedbiz_db", dirs)
    accounts = ("package_accounts",)
    assert lists("developers", accounts) == lists("ctv_bookedbiz_db", accounts)
