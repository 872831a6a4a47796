"""Shared settings for the end-state checks of every scenario.

Testinfra talks to the instance through podman (molecule passes
--connection=podman and --hosts=<instance>), which is quicker than going
through Ansible for every command.
"""

import os
from pathlib import Path

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
# Loads the env file the way systemd does, for commands run by hand.
LOAD_ENV = f"set -a; . {ENV_FILE}; set +a;"

# Never part of a deployed tree even when present in a developer's checkout.
NOT_SHIPPED = {".venv", "__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", "instance"}
NOT_SHIPPED_SUFFIXES = (".pyc", ".db", ".db-wal", ".db-shm")


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


def run_as(host, user: str, command: str):
    """Run a shell command as another user, as an operator does with sudo."""
    return host.run(f"sudo -u {user} -- sh -c {quote(command)}")


def quote(text: str) -> str:
    import shlex

    return shlex.quote(text)

