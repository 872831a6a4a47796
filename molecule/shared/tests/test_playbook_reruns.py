"""Runs of the real playbook against the converged instance, from the controller.

- a wrong inventory variable stops the run before any change, naming it;
- an app change updates the tree and restarts the service once, without a
  venv sync; a lock change re-syncs the venv; going back restores both, and
  nothing but the app's deploy changes in that run of the whole playbook.

The same playbook everywhere, so each runs once: the lock change on the
converged legacy host, the rest in the default scenario (the two scenarios
run side by side; this evens out their time).
"""

import json
import os
import secrets
import subprocess
import uuid

import pytest

from conftest import CODE_DIR, INSTANCE, SECRET_FILE, UNIT, VENV_DIR, changed_tasks, copy_app, playbook, results

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "default")
# What a deploy of an app change changes (task names, or their beginnings).
DEPLOY_CHANGES = (
    "Back up the database before the app changes",
    "Unpack the app into",
    "Sync the venv",
    "Keep the release in use for a rollback",
    "Mark the new release pending",
    "Record the release in use",
    "Restart ctv-bookedbiz-db",
)
in_default = pytest.mark.skipif(SCENARIO != "default", reason="run in the default scenario")
in_legacy = pytest.mark.skipif(SCENARIO != "legacy", reason="run in the legacy scenario")


@in_default
def test_the_playbook_reaches_the_host_over_ssh(host):
    """As in production: SSH with pipelining, not the container runtime.

    The checks reach the host over SSH too, on one connection opened before
    this: a new login that sshd logs during the ping is Ansible's.
    """
    logins = "journalctl -u ssh.service -o cat --no-pager | grep -c 'Accepted publickey for root' || true"
    before = int(host.check_output(logins))
    inventory = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory")
    shown = subprocess.run(
        ["ansible-inventory", "-i", inventory, "--host", INSTANCE],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(shown.stdout)["ansible_connection"] == "ssh"
    # A connection of its own (not one an earlier run left open), so that
    # its login is the one counted.
    ping = subprocess.run(
        ["ansible", "-i", inventory, INSTANCE, "-m", "ansible.builtin.ping"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "ANSIBLE_SSH_ARGS": "-o ControlMaster=no"},
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert int(host.check_output(logins)) > before


def service_starts(host, since: str) -> int:
    log = host.check_output(f"journalctl -u {UNIT} --since=@{since} -o cat --no-pager")
    return sum(1 for line in log.splitlines() if line.startswith("Started "))


@in_default
def test_an_app_change_updates_the_tree_and_restarts_once(host, tmp_path):
    app = copy_app(tmp_path)
    marker = f"# deployed by the re-run test {uuid.uuid4()}"
    target = app / "src" / "web" / "asgi.py"
    target.write_text(target.read_text() + marker + "\n")
    since = host.check_output("date +%s")
    before = host.check_output(f"systemctl show -p InvocationID --value {UNIT}")

    # --tags deploy: only the app is shipped, after the variables are checked.
    run = playbook("-e", f"ctv_bookedbiz_db_app_src={app}", "--tags", "deploy")
    assert run.returncode == 0, run.stdout[-3000:]
    stats, tasks = results(run)
    plays = {play["play"]["name"]: play["tasks"] for play in json.loads(run.stdout)["plays"]}
    assert "Check the inventory variables of every role" in plays
    # After the checks, only the app's deploy ran.
    ran = [
        task["task"]["name"]
        for name, play_tasks in plays.items()
        if not name.startswith("Check the inventory variables")
        for task in play_tasks
        if not all(result.get("skipped") for result in task["hosts"].values())
        # Each role's argument specs are checked under any tag too.
        and "Validating arguments against arg spec" not in task["task"]["name"]
    ]
    provisioning = (
        "base : ",
        "developers : ",
        "uv : ",
        "legacy_flaskapp : ",
        "Create the runtime user",
        "Write the env file",
        "Install the admin tool",
        "Replicate the database",
    )
    assert not [name for name in ran if any(part in name for part in provisioning)], ran
    changed = changed_tasks(tasks)
    assert any(name.startswith("Unpack the app") for name in changed), changed
    assert not any(name.startswith("Sync the venv") for name in changed), changed
    assert changed.count("Restart ctv-bookedbiz-db") == 1, changed
    assert marker in host.file(f"{CODE_DIR}/src/web/asgi.py").content_string
    assert host.check_output(f"systemctl show -p InvocationID --value {UNIT}") != before
    assert service_starts(host, since) == 1


@in_legacy
def test_a_lock_change_resyncs_the_venv_and_going_back_restores_it(host, tmp_path):
    app = copy_app(tmp_path)
    # A new runtime dependency changes pyproject.toml and uv.lock.
    subprocess.run(
        ["uv", "add", "--no-sync", "--directory", str(app), "six==1.17.0"],
        check=True,
        capture_output=True,
    )
    since = host.check_output("date +%s")
    secret = host.file(SECRET_FILE).content_string
    run = playbook("-e", f"ctv_bookedbiz_db_app_src={app}", "--tags", "deploy")
    assert run.returncode == 0, run.stdout[-3000:]
    # A run without a secret in the inventory keeps the one the host has.
    assert host.file(SECRET_FILE).content_string == secret
    _, tasks = results(run)
    changed = changed_tasks(tasks)
    assert any(name.startswith("Sync the venv") for name in changed), changed
    assert changed.count("Restart ctv-bookedbiz-db") == 1, changed
    assert service_starts(host, since) == 1
    assert host.run(f"{VENV_DIR}/bin/python -c 'import six'").rc == 0

    # The repository's own app again, with the whole playbook: the extra
    # package goes, the tree is as before, and nothing but the app's deploy
    # changes (on this host, converged from the legacy one, this second run of
    # the whole playbook stands for Molecule's idempotence step).
    run = playbook()
    assert run.returncode == 0, run.stdout[-3000:]
    _, tasks = results(run)
    changed = changed_tasks(tasks)
    assert any(name.startswith("Sync the venv") for name in changed)
    assert [name for name in changed if not name.startswith(DEPLOY_CHANGES)] == [], changed
    assert host.run(f"{VENV_DIR}/bin/python -c 'import six'").rc != 0
    assert host.check_output(f"systemctl is-active {UNIT}") == "active"


@in_default
def test_a_secret_from_ansible_vault_is_installed_and_never_shown(host, tmp_path):
    secret = "vault-" + secrets.token_hex(24)
    password_file = tmp_path / "vault-password"
    password_file.write_text(secrets.token_hex(16))
    vars_file = tmp_path / "secret.yml"
    vars_file.write_text(f"ctv_bookedbiz_db_secret_key: {secret}\n")
    subprocess.run(
        ["ansible-vault", "encrypt", "--vault-password-file", str(password_file), str(vars_file)],
        check=True,
        capture_output=True,
    )
    assert secret not in vars_file.read_text()

    run = playbook(
        "-e", f"@{vars_file}", "--vault-password-file", str(password_file), "-vv", name="deploy.yml", json_output=False
    )
    assert run.returncode == 0, run.stdout[-3000:]
    assert secret not in run.stdout + run.stderr
    assert host.file(SECRET_FILE).content_string.strip() == secret
    assert host.check_output(f"systemctl is-active {UNIT}") == "active"
