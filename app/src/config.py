"""Configuration from the environment.

Production is the default: every setting must be given and usable, and a
problem raises :class:`ConfigError` whose message names the variable.
Development mode is explicit (``CTV_BOOKEDBIZ_ENV=development``): missing
paths default to a per-user data directory (never the code tree) and a
missing secret is replaced by a random one, with a warning.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger(__name__)

ENV_VAR = "CTV_BOOKEDBIZ_ENV"
# The one home of this number: the role's check of a supplied secret reads it
# from here.
MIN_SECRET_LENGTH = 32


class ConfigError(Exception):
    """A setting is missing or unusable; the message names the variable."""


def is_development(env: Mapping[str, str]) -> bool:
    value = env.get(ENV_VAR, "production").strip().lower()
    if value not in ("production", "development"):
        raise ConfigError(f"{ENV_VAR} must be 'production' or 'development', not {value!r}")
    return value == "development"


def _dev_data_dir(env: Mapping[str, str]) -> Path:
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ctv-bookedbiz-db"


def database_path(env: Mapping[str, str] | None = None) -> Path:
    """The SQLite file named by DATABASE_PATH; its directory must exist."""
    env = os.environ if env is None else env
    raw = env.get("DATABASE_PATH", "").strip()
    if not raw:
        if not is_development(env):
            raise ConfigError("DATABASE_PATH is not set (path of the SQLite database file)")
        path = _dev_data_dir(env) / "bookedbiz.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        log.warning("development mode: DATABASE_PATH defaults to %s", path)
        return path
    path = Path(raw).expanduser()
    if path.is_dir():
        raise ConfigError(f"DATABASE_PATH {raw} is a directory, not a file")
    if not path.parent.is_dir():
        raise ConfigError(f"DATABASE_PATH {raw}: directory {path.parent} does not exist")
    return path


def data_path(env: Mapping[str, str] | None = None) -> Path:
    """The directory named by DATA_PATH, where imported files are kept."""
    env = os.environ if env is None else env
    raw = env.get("DATA_PATH", "").strip()
    if not raw:
        if not is_development(env):
            raise ConfigError("DATA_PATH is not set (directory for processed import files)")
        path = _dev_data_dir(env) / "imports"
        path.mkdir(parents=True, exist_ok=True)
        log.warning("development mode: DATA_PATH defaults to %s", path)
        return path
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise ConfigError(f"DATA_PATH {raw} is not an existing directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"DATA_PATH {raw} is not writable")
    return path


def _read_secret_file(variable: str, path: Path) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{variable}: cannot read {path}: {exc.strerror or exc}") from None
    if not value:
        raise ConfigError(f"{variable}: {path} is empty")
    return value


def secret_key(env: Mapping[str, str] | None = None) -> str:
    """SECRET_KEY, else the file SECRET_KEY_FILE, else
    $CREDENTIALS_DIRECTORY/secret_key (systemd credentials)."""
    env = os.environ if env is None else env
    variable = "SECRET_KEY"
    value = env.get("SECRET_KEY", "").strip()
    if not value and env.get("SECRET_KEY_FILE", "").strip():
        variable = "SECRET_KEY_FILE"
        value = _read_secret_file(variable, Path(env["SECRET_KEY_FILE"].strip()).expanduser())
    elif not value and env.get("CREDENTIALS_DIRECTORY", "").strip():
        variable = "CREDENTIALS_DIRECTORY"
        value = _read_secret_file(variable, Path(env["CREDENTIALS_DIRECTORY"].strip()) / "secret_key")
    if not value:
        if is_development(env):
            log.warning("development mode: no SECRET_KEY, using a random one (sessions end when the process stops)")
            return secrets.token_hex(32)
        raise ConfigError(
            "SECRET_KEY is not set (nor SECRET_KEY_FILE, nor CREDENTIALS_DIRECTORY containing secret_key)"
        )
    if len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(f"{variable}: the secret key is shorter than {MIN_SECRET_LENGTH} characters")
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def replica_status_file(env: Mapping[str, str] | None = None) -> str | None:
    """The JSON status file named by REPLICA_STATUS_FILE, written by the
    host's replication tool; None when replication is not configured.
    Only /health reads it, and a missing file is not an error."""
    env = os.environ if env is None else env
    raw = env.get("REPLICA_STATUS_FILE", "").strip()
    return str(Path(raw).expanduser()) if raw else None


def release_file(env: Mapping[str, str] | None = None) -> str | None:
    """The JSON file named by RELEASE_FILE: the release in use, written by the
    host's admin tool when a release goes live; None when not deployed that
    way.  A missing file is not an error."""
    env = os.environ if env is None else env
    raw = env.get("RELEASE_FILE", "").strip()
    return str(Path(raw).expanduser()) if raw else None


def web_config(env: Mapping[str, str] | None = None) -> dict:
    """Everything the web application needs, read from the environment."""
    env = os.environ if env is None else env
    return {
        "DATABASE_PATH": str(database_path(env)),
        "SECRET_KEY": secret_key(env),
        "SESSION_COOKIE_SECURE": _flag(env, "SESSION_COOKIE_SECURE", False),
        "REPLICA_STATUS_FILE": replica_status_file(env),
        "RELEASE_FILE": release_file(env),
    }
