"""Shared settings and helpers for the checks of every scenario.

Testinfra reaches the instance over SSH, as an operator would, on one
multiplexed connection (see the verifier options in molecule.yml): far
quicker than a podman exec or Ansible for every command.
"""

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import testinfra
import yaml

PROJECT_DIR = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", Path(__file__).resolve().parents[3]))
APP_SRC = PROJECT_DIR / "app"

# What the operators' record fixes.
USER = "ctvbooked"
DEPLOY_GROUP = "apps-deploy"
DEVELOPERS = ("daseme", "jellee26")
CODE_DIR = "/opt/apps/ctv-bookedbiz-db"
VENV_DIR = "/opt/venvs/ctv-bookedbiz-db"
DATA_DIR = "/var/lib/ctv-bookedbiz-db"
CONFIG_DIR = "/etc/ctv-bookedbiz-db"
ENV_FILE = f"{CONFIG_DIR}/ctv-bookedbiz-db.env"
SECRET_FILE = f"{CONFIG_DIR}/secret_key"
UNIT = "ctv-bookedbiz-db.service"
UNIT_FILE = f"/etc/systemd/system/{UNIT}"
# The host's admin tool (backups, restores, releases, the lock) as the role calls it.
DB = f"{DATA_DIR}/production.db"
ADMIN = "/usr/local/sbin/ctv-bookedbiz-db-admin --config /etc/ctv-bookedbiz-db/admin.json"
# The scenario's app host (its container's name and inventory name).
INSTANCE = f"ctv-bookedbiz-db-{os.environ.get('MOLECULE_SCENARIO_NAME', 'default')}"
# The default scenario's backup host, which the app host replicates to.
BACKUP_HOST = "ctv-bookedbiz-db-backup"
# Loads the env file the way systemd does, for commands run by hand.
LOAD_ENV = f"set -a; . {ENV_FILE}; set +a;"
# The app's command line as the service runs it (run it as USER).
CLI = f"{LOAD_ENV} {VENV_DIR}/bin/ctv-bookedbiz"

# Never part of a deployed tree even when present in a developer's checkout.
NOT_SHIPPED = {".venv", "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache", ".mypy_cache", "instance"}
NOT_SHIPPED_SUFFIXES = (".pyc", ".db", ".db-wal", ".db-shm")

# What the listing leaves out: what an idle host changes by itself. Two
# listings a minute apart on the converged instance, with no run between,
# were identical; these are written at times of the host's own choosing:
IDLE_CHANGES = (
    # The journal: journald appends whenever anything logs (here a tmpfs of
    # its own, which -xdev skips anyway; on a real host it is on /var).
    "/var/log/journal",
    # Timer stamps: systemd rewrites one whenever a persistent timer fires
    # (apt-daily, dpkg-db-backup, e2scrub_all, the app's nightly backup).
    "/var/lib/systemd/timers",
    # Replication: the minute's check writes what /health shows, and
    # Litestream keeps its own record beside the database.
    "/var/cache/ctv-bookedbiz-db/replica-status.json",
    "/var/lib/ctv-bookedbiz-db/.production.db-litestream",
    # PrivateTmp= directories of units that start on their own timers (the
    # replica check, every minute), there while one runs.
    "/var/tmp/systemd-private-*",
)

LISTED = "/etc /usr /var /opt"


def listing(host) -> dict[str, str]:
    """Path -> 'type owner group mode [link target] [sha256]' of everything under LISTED.

    -xdev keeps to the root file system; NUL-separated, so that no file name
    is escaped or split.
    """
    # Quoted: find, not the shell, matches the patterns.
    prune = " -o ".join(f"-path {shlex.quote(path)}" for path in IDLE_CHANGES)
    find = f"find {LISTED} -xdev \\( {prune} \\) -prune -o"
    meta = host.check_output(f"{find} -printf '%p\\0%y %u %g %m %l\\0'").split("\0")[:-1]
    sums = host.check_output(f"{find} -type f -print0 | xargs -0 sha256sum --zero").split("\0")
    entries = dict(zip(meta[0::2], meta[1::2], strict=True))
    for line in filter(None, sums):
        digest, path = line.split("  ", 1)
        entries[path] += f" {digest}"
    return entries


def pytest_configure(config):
    config.addinivalue_line("markers", "before_converge: checks the host as it was before the first converge")
    config.addinivalue_line("markers", "leaves_the_host_changed: runs after the checks of the end state")
    config.addinivalue_line("markers", "destroys_the_host: replaces the instance; runs after every other check")


def converged() -> bool:
    """Whether Molecule has converged the instance (its own record of the scenario)."""
    state = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "state.yml"
    return state.exists() and yaml.safe_load(state.read_text()).get("converged") is True


@pytest.fixture(scope="session")
def before_converge(request, tmp_path_factory) -> tuple[dict[str, str], subprocess.Popen]:
    """The host's listing before any run, and the preview (`--check --diff`)
    started in the background: every check before the first converge must
    change nothing, so the others (the validation sweep) run beside the
    preview, and the last one compares the listing after all of them."""
    option = request.config.option
    host = testinfra.get_host(
        option.hosts.split(",")[0], ssh_config=option.ssh_config, ssh_identity_file=option.ssh_identity_file
    )
    before = listing(host)
    out = tmp_path_factory.mktemp("preview")
    inventory = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory"
    preview = subprocess.Popen(
        ["ansible-playbook", "-i", str(inventory), str(PROJECT_DIR / "playbooks/site.yml"), "--check", "--diff"],
        env=dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json"),
        stdout=(out / "stdout").open("w"),
        stderr=(out / "stderr").open("w"),
        text=True,
    )
    preview.output_dir = out
    return before, preview


def finished(preview: subprocess.Popen) -> subprocess.CompletedProcess:
    """The preview's run once it has ended."""
    preview.wait()
    return subprocess.CompletedProcess(
        preview.args,
        preview.returncode,
        (preview.output_dir / "stdout").read_text(),
        (preview.output_dir / "stderr").read_text(),
    )


def pytest_collection_modifyitems(config, items):
    """The scenarios verify twice: before the first converge (the host as an
    operator first finds it) only the checks marked before_converge run, and
    after it all the others. Checks that leave the instance off the record
    (another app, another address) run after the rest, and those that destroy
    it last; each group in its own order. Neither then needs a run to put the
    host back."""
    after = converged()
    selected = [item for item in items if bool(item.get_closest_marker("before_converge")) != after]
    config.hook.pytest_deselected(items=[item for item in items if item not in selected])
    items[:] = selected

    def rank(item) -> int:
        before = item.get_closest_marker("before_converge")
        if before and before.kwargs.get("last"):
            return 2
        if item.get_closest_marker("destroys_the_host"):
            return 2
        return 1 if item.get_closest_marker("leaves_the_host_changed") else 0

    items.sort(key=rank)


def shipped_files(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file of the app tree that is deployed."""
    import hashlib

    files = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in NOT_SHIPPED]
        for name in filenames:
            if name in NOT_SHIPPED or name.endswith(NOT_SHIPPED_SUFFIXES):
                continue
            path = Path(dirpath, name)
            files[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


def deployed_files(host) -> dict[str, str]:
    """Relative path -> sha256 of every file in the host's code tree."""
    listing = host.check_output(f"cd {CODE_DIR} && find . -type f -print0 | xargs -0 sha256sum")
    lines = (line.split(maxsplit=1) for line in listing.splitlines())
    return {path.removeprefix("./"): digest for digest, path in lines}


def run_as(host, user: str, command: str):
    """Run a shell command as another user, as an operator does with sudo."""
    return host.run(f"sudo -u {user} -- sh -c {quote(command)}")


def quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def wait_for(predicate, seconds: float, what: str):
    """PREDICATE's first true value, asked again every 0.3 s; the check
    fails, naming WHAT, once SECONDS have passed without one."""
    deadline = time.monotonic() + seconds
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.3)
    return value


def alarms(host, since: str) -> str:
    """The alarms the host's journal holds since SINCE (the notify unit's lines, at priority err)."""
    return host.run(f"journalctl --no-pager --since {quote(since)} -t ctv-bookedbiz-db-alarm -p err").stdout


def sql(host, statement: str, db: str = DB) -> str:
    """One SQLite statement's output, run as the runtime user."""
    return run_as(host, USER, f"sqlite3 {db} {quote(statement)}").stdout.strip()


def log_in(host, user: str, password: str, *, jar: str = "/tmp/ctv-test-cookies", headers: tuple = ()) -> str:
    """Log in through the web app as a person would, with a new cookie jar; the login's HTTP status.

    The session stays in the jar, for curl -b afterwards.
    """
    page = host.check_output(f"rm -f {jar}; curl -s -c {jar} http://127.0.0.1:8000/auth/login")
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token, page[:500]
    extra = "".join(f" -H {quote(header)}" for header in headers)
    return host.check_output(
        f"curl -s -o /dev/null -w '%{{http_code}}' -b {jar} -c {jar}{extra} --data-urlencode username={quote(user)} "
        f"--data-urlencode password={quote(password)} --data-urlencode csrf_token={token[1]} "
        "http://127.0.0.1:8000/auth/login"
    )


def playbook(*args: str, name: str = "site.yml", json_output: bool = True) -> subprocess.CompletedProcess:
    """Run one of the repository's playbooks against the scenario's instance."""
    env = dict(os.environ)
    if json_output:
        env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    inventory = Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory"
    return subprocess.run(
        ["ansible-playbook", "-i", str(inventory), str(PROJECT_DIR / "playbooks" / name), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def results(run: subprocess.CompletedProcess) -> tuple[dict, list[tuple[str, dict]]]:
    """(stats of the one app host, [(task name, its result), ...] in run order);
    the backup host, where there is one, is left out."""
    report = json.loads(run.stdout)
    (stats,) = (value for name, value in report["stats"].items() if name != BACKUP_HOST)
    tasks = []
    for play in report["plays"]:
        for task in play["tasks"]:
            for name, result in task["hosts"].items():
                if name != BACKUP_HOST:
                    tasks.append((task["task"]["name"], result))
    return stats, tasks


def changed_tasks(tasks) -> list[str]:
    """Names of the tasks (and handlers) that changed, without their role prefix."""
    return [name.split(" : ", 1)[-1] for name, result in tasks if result.get("changed")]


def copy_app(tmp_path: Path) -> Path:
    """A copy of the repository's app/ to change for a test deploy."""
    dest = tmp_path / "app"
    shutil.copytree(APP_SRC, dest, ignore=shutil.ignore_patterns(*NOT_SHIPPED))
    return dest


def changed_app(tmp_path: Path, label: str) -> Path:
    """A copy of the app with one changed line: a new release."""
    import uuid

    app = copy_app(tmp_path)
    asgi = app / "src" / "web" / "asgi.py"
    asgi.write_text(asgi.read_text() + f"# {label} {uuid.uuid4()}\n")
    return app


def output_of(run: subprocess.CompletedProcess) -> str:
    """A run's whole output on one line, for looking for a sentence in it."""
    return " ".join((run.stdout + run.stderr).split())


def failure_output(run: subprocess.CompletedProcess) -> str:
    return (run.stdout[-4000:] + run.stderr[-2000:]) if run.returncode else ""


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
