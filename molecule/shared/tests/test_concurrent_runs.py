"""Runs that meet each other: a second ansible-playbook while one holds the
host lock, the first one moving the service to another address (its health
gate must ask there). (A run killed half-way is in test_safe_deploys.py.)

Legacy scenario only (the default scenario has the everyday operations, the
replication and the dead-host drill; the two run side by side, and this
evens out their time). Runs after every other check of the scenario: it
leaves the instance on another release and address.
"""

import os

import pytest

from conftest import (
    ADMIN,
    DATA_DIR,
    changed_app,
    deployed_files,
    output_of,
    playbook,
    read_until,
    shipped_files,
    start_playbook,
)

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("MOLECULE_SCENARIO_NAME", "default") != "legacy",
        reason="concurrent runs and the health gate's address are exercised in the legacy scenario",
    ),
    pytest.mark.leaves_the_host_changed,
]


def lock_status(host) -> str:
    return host.check_output(f"{ADMIN} lock status")


def test_a_second_run_waits_for_the_lock_then_fails_naming_the_first(host, tmp_path):
    """Also the health gate on the address the service listens on: the first
    run moves the service to the host's LAN address, and its gate must ask
    there (not 127.0.0.1, where nothing then answers)."""
    address = host.check_output("hostname -I").split()[0]
    # A release that does not start until the test says so keeps the first
    # run (and its lock) in its health gate while the second one comes.
    go = f"{DATA_DIR}/.lock-test-go"
    app = changed_app(tmp_path, "first run")
    asgi = app / "src" / "web" / "asgi.py"
    asgi.write_text(f"import os, time\nwhile not os.path.exists({go!r}):\n    time.sleep(0.2)\n" + asgi.read_text())
    # A health gate that outlasts the second run even on a busy machine: the
    # first run must still hold the lock, not be going back, when the second comes.
    first = start_playbook(
        "-e",
        f"ctv_bookedbiz_db_app_src={app}",
        "-e",
        "ctv_bookedbiz_db_health_timeout=120",
        "-e",
        f"ctv_bookedbiz_db_host={address}",
    )
    try:
        seen = read_until(first, "Wait for /health to answer 200")
        assert lock_status(host).startswith("held by 'Deploy CTV BookedBiz DB' run by")
        tree = deployed_files(host)  # the first run's release, unpacked
        second = playbook("-e", "ctv_bookedbiz_db_lock_wait=3", name="deploy.yml", json_output=False)
        assert second.returncode != 0
        out = output_of(second)
        assert "the database is locked by 'Deploy CTV BookedBiz DB' run by" in out, out[-3000:]
        assert "changed=0" in out
        assert deployed_files(host) == tree
    finally:
        host.check_output(f"touch {go}")  # (left there: the release waits for it whenever it starts)
        rest = first.communicate()[0]
    assert first.returncode == 0, rest[-3000:]
    assert deployed_files(host) == shipped_files(app)
    assert lock_status(host) == "free"
    # The gate asked the address the service now listens on, and got its answer.
    assert f"http://{address}:8000/health" in seen.splitlines()[-1]
    listening = host.check_output("ss -Htln 'sport = :8000'")
    assert f"{address}:8000" in listening
