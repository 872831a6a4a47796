"""Who may do what on the server, and what the service's sandbox allows.

The permission matrix is the operators' record (section 7) written once as
a table: developers read and edit code but cannot touch production data;
the runtime user owns the venv and the data; only root changes the
configuration; someone in neither group reads nothing private.
"""

import pytest

from conftest import CODE_DIR, DATA_DIR, ENV_FILE, SECRET_FILE, UNIT, UNIT_FILE, USER, VENV_DIR

SUBJECTS = ("root", USER, "daseme", "outsider")
Y, N = True, False

# (what, how it is tried; {probe} is a file name unique to the subject)
#                                                                 root ctvbooked developer outsider
MATRIX = [
    ("read the code", f"cat {CODE_DIR}/pyproject.toml", (Y, Y, Y, Y)),
    ("change the code", f"touch {CODE_DIR}/{{probe}} && rm {CODE_DIR}/{{probe}}", (Y, Y, Y, N)),
    ("run the venv's python", f"{VENV_DIR}/bin/python -I -c pass", (Y, Y, Y, Y)),
    ("change the venv", f"touch {VENV_DIR}/{{probe}} && rm {VENV_DIR}/{{probe}}", (Y, Y, N, N)),
    ("read the data", f"cat {DATA_DIR}/production.db", (Y, Y, N, N)),
    ("write the database", f"test -w {DATA_DIR}/production.db", (Y, Y, N, N)),
    ("add data files", f"touch {DATA_DIR}/processed/{{probe}} && rm {DATA_DIR}/processed/{{probe}}", (Y, Y, N, N)),
    ("read the env file", f"cat {ENV_FILE}", (Y, Y, N, N)),
    ("change the env file", f"test -w {ENV_FILE}", (Y, N, N, N)),
    ("read the secret", f"cat {SECRET_FILE}", (Y, Y, N, N)),
    ("change the secret", f"test -w {SECRET_FILE}", (Y, N, N, N)),
    ("change the unit", f"test -w {UNIT_FILE}", (Y, N, N, N)),
]

CASES = [
    pytest.param(subject, command, allowed[i], id=f"{subject} may {'' if allowed[i] else 'not '}{what}")
    for what, command, allowed in MATRIX
    for i, subject in enumerate(SUBJECTS)
]


@pytest.mark.parametrize(("subject", "command", "allowed"), CASES)
def test_permission_matrix(host, subject, command, allowed):
    command = command.format(probe=f".probe-{subject}")
    result = host.run(f"sudo -u {subject} -- sh -c '{command}' >/dev/null 2>&1")
    assert (result.rc == 0) is allowed


def test_sandbox_exposure_is_at_most_2(host):
    # The exit code is the gate: above 2.0 ("20" in tenths) it fails.
    result = host.run(f"systemd-analyze security --offline=true --threshold=20 {UNIT_FILE}")
    assert result.rc == 0, result.stdout[-2000:] + result.stderr
    assert "Overall exposure level" in result.stdout


def in_service(host, command: str):
    """Run a command inside the running service's namespaces, as its user."""
    pid = host.check_output(f"systemctl show -p MainPID --value {UNIT}")
    assert pid != "0"
    uid = host.user(USER).uid
    gid = host.group(USER).gid
    return host.run(f"nsenter --target {pid} --mount --user --setuid {uid} --setgid {gid} -- sh -c '{command}'")


def test_service_can_write_its_data_directory(host):
    result = in_service(host, f"touch {DATA_DIR}/.sandbox-probe && rm {DATA_DIR}/.sandbox-probe")
    assert result.rc == 0, result.stderr


@pytest.mark.parametrize("directory", [CODE_DIR, VENV_DIR])
def test_service_cannot_write_its_own_code_or_venv(host, directory):
    # The runtime user owns these; only the sandbox makes them read-only.
    result = in_service(host, f"touch {directory}/.sandbox-probe")
    assert result.rc != 0
    assert "Read-only file system" in result.stderr
    assert not host.file(f"{directory}/.sandbox-probe").exists


@pytest.mark.parametrize("directory", ["/", "/etc/ctv-bookedbiz-db", "/opt", "/usr/local/bin", "/var/lib"])
def test_service_cannot_write_elsewhere(host, directory):
    result = in_service(host, f"touch {directory}/.sandbox-probe")
    assert result.rc != 0
    assert not host.file(f"{directory}/.sandbox-probe").exists


def test_service_sees_no_home_directories(host):
    result = in_service(host, "ls /home /root")
    assert result.stdout.strip() == "" or result.rc != 0


def test_secret_is_not_in_systemctl_show(host):
    secret = host.check_output(f"cat {SECRET_FILE}")
    shown = host.check_output(f"systemctl show {UNIT}")
    assert secret not in shown
