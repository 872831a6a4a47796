"""The end state of a converged host, checked the way an operator would.

Each test maps to an item of the end state in the repository's README
(users, code tree, venv, data, env file, unit, legacy service, ports, HTTP).
"""

import json
import os
import tomllib

import pytest

from conftest import (
    ADMIN,
    APP_SRC,
    CODE_DIR,
    CONFIG_DIR,
    DATA_DIR,
    DEPLOY_GROUP,
    DEVELOPERS,
    ENV_FILE,
    LOAD_ENV,
    SECRET_FILE,
    UNIT,
    UNIT_FILE,
    USER,
    VENV_DIR,
    deployed_files,
    log_in,
    run_as,
    shipped_files,
    sql,
)

# 1. Users and groups


def test_runtime_user_is_a_nologin_system_user(host):
    user = host.user(USER)
    assert user.exists
    assert user.group == USER
    assert user.shell in ("/usr/sbin/nologin", "/sbin/nologin")
    assert user.uid < 1000
    assert DEPLOY_GROUP not in user.groups


def test_developers_are_in_the_deploy_group(host):
    assert host.group(DEPLOY_GROUP).exists
    for name in DEVELOPERS:
        user = host.user(name)
        assert user.exists, name
        assert DEPLOY_GROUP in user.groups, name
        assert USER not in user.groups, name


# 2. Code tree


def test_code_tree_is_setgid_and_group_writable(host):
    tree = host.file(CODE_DIR)
    assert tree.is_directory
    assert tree.user == USER
    assert tree.group == DEPLOY_GROUP
    assert tree.mode == 0o2775


def test_code_tree_holds_exactly_the_repository_app(host):
    expected = shipped_files(APP_SRC)
    deployed = deployed_files(host)
    assert set(deployed) - set(expected) == set(), "stray files in the code tree"
    assert set(expected) - set(deployed) == set(), "files missing from the code tree"
    changed = sorted(p for p in expected if expected[p] != deployed[p])
    assert changed == []


def test_everything_in_the_code_tree_belongs_to_the_deploy_group(host):
    wrong = host.check_output(f"find {CODE_DIR} ! -user {USER} -o ! -group {DEPLOY_GROUP} -o -type d ! -perm -2775")
    assert wrong == ""


def test_developers_can_edit_code_but_it_is_not_a_dev_checkout(host):
    # Group write is what the record promises the developers.
    probe = f"{CODE_DIR}/.write-probe"
    result = run_as(host, DEVELOPERS[0], f"touch {probe} && rm {probe}")
    assert result.rc == 0, result.stderr


def test_no_virtualenv_under_opt_apps(host):
    assert host.check_output("find /opt/apps -name .venv -o -name pyvenv.cfg") == ""


# 3. Virtualenv


def test_venv_belongs_to_the_runtime_user(host):
    venv = host.file(VENV_DIR)
    assert venv.is_directory
    assert venv.user == USER
    assert host.check_output(f"find {VENV_DIR} ! -user {USER} | head -5") == ""


def test_venv_uses_the_host_system_python(host):
    cfg = host.file(f"{VENV_DIR}/pyvenv.cfg").content_string
    assert "home = /usr/bin" in cfg
    version = host.check_output(f"{VENV_DIR}/bin/python -c 'import sys; print(sys.version_info[:2])'")
    system = host.check_output("/usr/bin/python3 -c 'import sys; print(sys.version_info[:2])'")
    assert version == system


def test_venv_holds_exactly_the_locked_runtime_packages(host):
    uv = f"cd {CODE_DIR} && UV_CACHE_DIR=/var/cache/ctv-bookedbiz-db/uv uv"
    locked = run_as(
        host,
        USER,
        f"{uv} export --locked --no-dev --no-hashes --no-emit-project --format requirements-txt --offline",
    )
    assert locked.rc == 0, locked.stderr
    installed = run_as(host, USER, f"{uv} pip freeze --python {VENV_DIR}/bin/python")
    assert installed.rc == 0, installed.stderr
    wanted = {line for line in locked.stdout.splitlines() if line and not line.startswith(("#", " "))}
    present = set(installed.stdout.splitlines())
    # The app itself is installed editable from the code tree, nothing else.
    assert present - wanted == {f"-e file://{CODE_DIR}"}
    assert wanted - present == set()
    probe = host.run(
        f'{VENV_DIR}/bin/python -c "import importlib.util as u; '
        "print([m for m in ('pytest', 'deptry', 'playwright') if u.find_spec(m)])\""
    )
    assert probe.stdout.strip() == "[]"
    version = f"{VENV_DIR}/bin/python -c 'import flask_login; print(flask_login.__version__)'"
    assert host.check_output(version) == "0.6.3"
    assert host.file(f"{VENV_DIR}/bin/ctv-bookedbiz").is_file


def test_uv_is_the_pinned_release_trusting_the_system_store(host):
    assert host.check_output("uv --version").split()[:2] == ["uv", "0.13.9"]
    config = host.file("/etc/uv/uv.toml").content_string
    assert "system-certs = true" in config
    assert 'python-downloads = "never"' in config
    # No installer script: uv comes from a pip-managed venv.
    assert host.file("/opt/uv/bin/uv").exists
    assert host.file("/usr/local/bin/uv").linked_to == "/opt/uv/bin/uv"


# 4. Data


def test_data_directory_belongs_to_the_runtime_user(host):
    for path in (DATA_DIR, f"{DATA_DIR}/processed"):
        d = host.file(path)
        assert d.is_directory, path
        assert d.user == USER, path
    assert host.check_output(f"find {DATA_DIR} ! -user {USER} -o ! -group {USER}") == ""
    assert host.check_output(f"find {DATA_DIR} -perm /o=w") == ""
    db = host.file(f"{DATA_DIR}/production.db")
    assert db.is_file
    assert db.user == USER
    assert db.mode & 0o002 == 0


def test_database_schema_is_migrated_by_the_app(host):
    out = run_as(host, USER, f"{LOAD_ENV} {VENV_DIR}/bin/ctv-bookedbiz db upgrade")
    assert out.rc == 0, out.stderr
    assert out.stdout.startswith("schema up to date at version ")


def test_developers_cannot_write_production_data(host):
    dev = DEVELOPERS[0]
    for command in (
        f"touch {DATA_DIR}/intruder",
        f"touch {DATA_DIR}/processed/intruder",
        f"echo x >> {DATA_DIR}/production.db",
        f"rm -f {DATA_DIR}/production.db",
        f"mv {DATA_DIR}/production.db {DATA_DIR}/moved.db",
    ):
        result = run_as(host, dev, command)
        assert result.rc != 0, command
    assert host.file(f"{DATA_DIR}/production.db").is_file
    assert not host.file(f"{DATA_DIR}/intruder").exists


# 5. Env file and secret


def test_env_file_points_at_the_data(host):
    env = host.file(ENV_FILE)
    assert env.is_file
    lines = env.content_string.splitlines()
    assert f"DATABASE_PATH={DATA_DIR}/production.db" in lines
    assert f"DATA_PATH={DATA_DIR}/processed" in lines
    assert env.mode & 0o007 == 0, "env file is world-readable"
    assert run_as(host, USER, f"cat {ENV_FILE} >/dev/null").rc == 0


def test_secret_is_kept_from_developers_and_others(host):
    secret = host.file(SECRET_FILE)
    assert secret.is_file
    assert secret.mode & 0o007 == 0
    assert host.file(CONFIG_DIR).mode & 0o007 == 0
    assert len(host.check_output(f"cat {SECRET_FILE}")) >= 32
    assert run_as(host, USER, f"cat {SECRET_FILE} >/dev/null").rc == 0
    for dev in DEVELOPERS:
        assert run_as(host, dev, f"cat {SECRET_FILE}").rc != 0, dev
        assert run_as(host, dev, f"cat {ENV_FILE}").rc != 0, dev


# 6. The unit


def test_unit_runs_uvicorn_from_the_venv_as_the_runtime_user(host):
    props = dict(
        line.split("=", 1)
        for line in host.check_output(
            f"systemctl show {UNIT} -p User -p Group -p WorkingDirectory -p EnvironmentFiles -p Restart"
        ).splitlines()
    )
    assert props["User"] == USER
    assert props["Group"] == USER
    assert props["WorkingDirectory"] == CODE_DIR
    assert props["EnvironmentFiles"].startswith(ENV_FILE)
    assert props["Restart"] in ("on-failure", "always")
    unit = host.file(UNIT_FILE).content_string
    assert f"ExecStart={VENV_DIR}/bin/uvicorn src.web.asgi:app --host 0.0.0.0 --port 8000" in unit.splitlines()
    assert "uv run" not in unit


def test_unit_is_enabled_and_running(host):
    service = host.service(UNIT)
    assert service.is_enabled
    assert service.is_running
    assert host.check_output(f"systemctl is-active {UNIT}") == "active"


# 7. The retired service


def test_flaskapp_is_masked_and_cannot_start(host):
    assert host.run("systemctl is-enabled flaskapp.service").stdout.strip() == "masked"
    start = host.run("systemctl start flaskapp.service")
    assert start.rc != 0
    assert "masked" in start.stderr
    assert host.run("systemctl is-active flaskapp.service").stdout.strip() == "inactive"


# 8. Ports


def test_only_the_service_uvicorn_listens_on_port_8000(host):
    listeners = host.check_output("ss -Hlptn 'sport = :8000'").splitlines()
    assert len(listeners) == 1, listeners
    assert "0.0.0.0:8000" in listeners[0]
    main_pid = host.check_output(f"systemctl show -p MainPID --value {UNIT}")
    assert f"pid={main_pid}," in listeners[0]
    assert host.check_output(f"cat /proc/{main_pid}/cmdline | tr '\\0' ' '").startswith(f"{VENV_DIR}/bin/python")
    assert host.check_output(f"ps -o user= -p {main_pid}") == USER


def test_nothing_listens_on_port_5100(host):
    assert host.check_output("ss -Hltn 'sport = :5100'") == ""


# 9. HTTP and a clean import


def test_root_redirects_to_the_reports(host):
    status, location = host.check_output(
        "curl -s -o /dev/null -w '%{http_code} %{redirect_url}' http://127.0.0.1:8000/"
    ).split()
    assert status == "302"
    assert location.endswith("/reports/")


def test_health_answers_with_the_database_state(host):
    out = host.check_output("curl -s -w '\\n%{http_code}' http://127.0.0.1:8000/health")
    body, status = out.rsplit("\n", 1)
    assert status == "200"
    health = json.loads(body)
    assert health["status"] == "ok"
    assert health["database"] == "ok"
    assert isinstance(health["schema_version"], int) and health["schema_version"] > 0
    # The version of the app deployed, and the release the deploy recorded.
    assert health["version"] == tomllib.loads((APP_SRC / "pyproject.toml").read_text())["project"]["version"]
    current = json.loads(host.check_output(f"{ADMIN} release status"))["current"]
    assert health["release"]["id"] == current
    footer = host.check_output("curl -s http://127.0.0.1:8000/auth/login").split('<footer class="site">')[1]
    assert f"CTV BookedBiz {health['version']}" in footer and current[:12] in footer


def test_reports_need_a_login(host):
    status, location = host.check_output(
        "curl -s -o /dev/null -w '%{http_code} %{redirect_url}' http://127.0.0.1:8000/reports/"
    ).split()
    assert status == "302"
    assert "/auth/login" in location


@pytest.mark.skipif(
    os.environ.get("MOLECULE_SCENARIO_NAME") == "legacy",
    reason="a failed login writes to the database, which the legacy host must keep byte for byte",
)
def test_a_client_cannot_choose_the_address_the_login_throttle_counts(host):
    """No proxy is trusted by default (FORWARDED_ALLOW_IPS empty in the env file, the unit's
    command line the record's): an X-Forwarded-For from a client on the host itself, which
    uvicorn's own default would believe, does not move the failure to another address."""
    assert "FORWARDED_ALLOW_IPS=" in host.file(ENV_FILE).content_string.splitlines()
    name = "throttle-probe"
    assert log_in(host, name, "wrong", headers=("X-Forwarded-For: 203.0.113.7",)) == "401"
    counted = sql(host, f"SELECT DISTINCT address FROM login_attempts WHERE username = '{name}'")
    sql(host, f"DELETE FROM login_attempts WHERE username = '{name}'")
    assert counted == "127.0.0.1"


def test_app_imports_cleanly_as_the_runtime_user(host):
    result = run_as(host, USER, f"{LOAD_ENV} cd {CODE_DIR} && {VENV_DIR}/bin/python -B -c 'import src.web.asgi'")
    assert result.rc == 0, result.stderr
