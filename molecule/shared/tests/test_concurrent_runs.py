"""Runs that meet each other or die half-way: a second ansible-playbook while
one holds the host lock, a run SIGKILLed after its unpack, and the health
gate on the address the service listens on.

Default scenario only (the legacy scenario has the safe-deploy checks; the
two run side by side). Leaves the instance converged on the repository's app.
"""

import json
import os
import signal
import subprocess
import uuid

import pytest

from conftest import PROJECT_DIR, UNIT, copy_app, deployed_files, failure_output, playbook, shipped_files

pytestmark = pytest.mark.skipif(
    os.environ.get("MOLECULE_SCENARIO_NAME", "default") != "default",
    reason="concurrent and killed runs are exercised in the default scenario",
)

ADMIN = "/usr/local/sbin/ctv-bookedbiz-db-admin --config /etc/ctv-bookedbiz-db/admin.json"


@pytest.fixture(scope="module", autouse=True)
def back_on_the_repository_app():
    yield
    assert playbook(name="deploy.yml").returncode == 0


def health(host) -> str:
    return host.run("curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/health").stdout.strip()


def output_of(run: subprocess.CompletedProcess) -> str:
    return " ".join((run.stdout + run.stderr).split())


def changed_app(tmp_path, label: str):
    app = copy_app(tmp_path)
    asgi = app / "src" / "web" / "asgi.py"
    asgi.write_text(asgi.read_text() + f"# {label} {uuid.uuid4()}\n")
    return app


def start_playbook(*args: str, name: str = "deploy.yml", env: dict | None = None) -> subprocess.Popen:
    """A real second ansible-playbook process, in its own process group."""
    inventory = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "inventory")
    return subprocess.Popen(
        ["ansible-playbook", "-i", inventory, str(PROJECT_DIR / "playbooks" / name), *args],
        env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def read_until(process: subprocess.Popen, text: str) -> str:
    """The run's output up to the first line holding TEXT."""
    seen = []
    for line in process.stdout:
        seen.append(line)
        if text in line:
            return "".join(seen)
    raise AssertionError(f"the run ended before '{text}':\n" + "".join(seen)[-3000:])


def lock_status(host) -> str:
    return host.check_output(f"{ADMIN} lock status")


def test_a_second_run_waits_for_the_lock_then_fails_naming_the_first(host, tmp_path):
    # A release that takes 25 s to start keeps the first run (and its lock)
    # busy in its health gate while the second one comes.
    app = changed_app(tmp_path, "first run")
    asgi = app / "src" / "web" / "asgi.py"
    asgi.write_text("import time\ntime.sleep(25)\n" + asgi.read_text())
    first = start_playbook("-e", f"ctv_bookedbiz_db_app_src={app}")
    try:
        read_until(first, "Wait for /health to answer 200")
        assert lock_status(host).startswith("held by 'Deploy CTV BookedBiz DB' run by")
        tree = deployed_files(host)  # the first run's release, unpacked
        second = playbook("-e", "ctv_bookedbiz_db_lock_wait=3", name="deploy.yml", json_output=False)
        assert second.returncode != 0
        out = output_of(second)
        assert "the database is locked by 'Deploy CTV BookedBiz DB' run by" in out, out[-3000:]
        assert "changed=0" in out
        assert deployed_files(host) == tree
    finally:
        rest = first.communicate()[0]
    assert first.returncode == 0, rest[-3000:]
    assert deployed_files(host) == shipped_files(app)
    assert lock_status(host) == "free"


def test_a_run_killed_after_the_unpack_is_finished_by_the_next_one(host, tmp_path):
    app = changed_app(tmp_path, "killed run")
    # A short ControlPersist, so that the killed run's SSH connection (and
    # with it the lock) goes in seconds rather than a minute.
    killed = start_playbook("-e", f"ctv_bookedbiz_db_app_src={app}", env={
        "ANSIBLE_SSH_ARGS": "-C -o ControlMaster=auto -o ControlPersist=3s"})
    read_until(killed, "List what is in the code tree")  # the unpack is done
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    killed_at = float(host.check_output("cut -d' ' -f1 /proc/uptime"))

    run = playbook("-e", f"ctv_bookedbiz_db_app_src={app}", name="deploy.yml")
    assert run.returncode == 0, failure_output(run)
    assert deployed_files(host) == shipped_files(app)
    # The service runs the new release: it was started after the kill.
    started = int(host.check_output(f"systemctl show -p ExecMainStartTimestampMonotonic --value {UNIT}"))
    assert started / 1e6 > killed_at
    assert health(host) == "200"
    assert json.loads(host.check_output(f"{ADMIN} release status"))["pending"] == ""


def test_the_health_gate_asks_the_address_the_service_listens_on(host):
    # The module's last deploy puts the service back on 0.0.0.0.
    address = host.check_output("hostname -I").split()[0]
    run = playbook("-e", f"ctv_bookedbiz_db_host={address}", name="deploy.yml", json_output=False)
    assert run.returncode == 0, output_of(run)[-3000:]
    assert f"http://{address}:8000/health" in output_of(run)
    listening = host.check_output("ss -Htln 'sport = :8000'")
    assert f"{address}:8000" in listening
