import os
import subprocess
import sys
from pathlib import Path

import pytest

from src import config
from src.web import create_app

from .conftest import SECRET

APP_DIR = Path(__file__).resolve().parents[1]


def test_config_from_test_config(app, db_path):
    assert app.testing
    assert app.config["DATABASE_PATH"] == str(db_path)
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"


def test_not_testing_without_flag(db_path):
    app = create_app({"DATABASE_PATH": str(db_path), "SECRET_KEY": SECRET})
    assert not app.testing


def test_create_app_does_not_touch_the_database(tmp_path):
    path = tmp_path / "never-created.db"
    create_app({"DATABASE_PATH": str(path), "SECRET_KEY": SECRET})
    assert not path.exists()


def test_blueprints_registered_once(app):
    assert set(app.blueprints) == {"admin", "auth", "health", "reports"}


@pytest.fixture
def clean_env(monkeypatch):
    for name in (
        "DATABASE_PATH",
        "DATA_PATH",
        "SECRET_KEY",
        "SECRET_KEY_FILE",
        "CREDENTIALS_DIRECTORY",
        "CTV_BOOKEDBIZ_ENV",
        "SESSION_COOKIE_SECURE",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_missing_database_path_named(clean_env):
    clean_env.setenv("SECRET_KEY", SECRET)
    with pytest.raises(config.ConfigError, match="^DATABASE_PATH is not set"):
        create_app()


def test_missing_secret_named(clean_env, tmp_path):
    clean_env.setenv("DATABASE_PATH", str(tmp_path / "x.db"))
    with pytest.raises(config.ConfigError, match="^SECRET_KEY is not set"):
        create_app()


def test_database_directory_missing(tmp_path):
    env = {"DATABASE_PATH": str(tmp_path / "nope" / "x.db")}
    with pytest.raises(config.ConfigError, match="^DATABASE_PATH .* does not exist"):
        config.database_path(env)


def test_database_path_is_directory(tmp_path):
    with pytest.raises(config.ConfigError, match="^DATABASE_PATH .* directory"):
        config.database_path({"DATABASE_PATH": str(tmp_path)})


def test_data_path(tmp_path):
    assert config.data_path({"DATA_PATH": str(tmp_path)}) == tmp_path
    with pytest.raises(config.ConfigError, match="^DATA_PATH is not set"):
        config.data_path({})
    with pytest.raises(config.ConfigError, match="^DATA_PATH .* not an existing"):
        config.data_path({"DATA_PATH": str(tmp_path / "missing")})


def test_secret_key_sources(tmp_path):
    secret_file = tmp_path / "key"
    secret_file.write_text(SECRET + "\n")
    assert config.secret_key({"SECRET_KEY": SECRET}) == SECRET
    assert config.secret_key({"SECRET_KEY_FILE": str(secret_file)}) == SECRET
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "secret_key").write_text(SECRET)
    assert config.secret_key({"CREDENTIALS_DIRECTORY": str(creds)}) == SECRET


def test_secret_key_problems_named(tmp_path):
    with pytest.raises(config.ConfigError, match="^SECRET_KEY_FILE: cannot read"):
        config.secret_key({"SECRET_KEY_FILE": str(tmp_path / "missing")})
    with pytest.raises(config.ConfigError, match="^CREDENTIALS_DIRECTORY: cannot read"):
        config.secret_key({"CREDENTIALS_DIRECTORY": str(tmp_path)})
    with pytest.raises(config.ConfigError, match="^SECRET_KEY: .*shorter"):
        config.secret_key({"SECRET_KEY": "short"})
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(config.ConfigError, match="^SECRET_KEY_FILE: .* empty"):
        config.secret_key({"SECRET_KEY_FILE": str(tmp_path / "empty")})


def test_environment_name_checked():
    with pytest.raises(config.ConfigError, match="^CTV_BOOKEDBIZ_ENV"):
        config.secret_key({"CTV_BOOKEDBIZ_ENV": "staging"})


def test_development_mode_is_explicit(tmp_path, caplog):
    env = {"CTV_BOOKEDBIZ_ENV": "development", "XDG_DATA_HOME": str(tmp_path)}
    key = config.secret_key(env)
    assert len(key) >= 32 and key != config.secret_key(env)
    assert "random" in caplog.text
    path = config.database_path(env)
    assert path.parent == tmp_path / "ctv-bookedbiz-db"
    assert APP_DIR not in path.parents


def test_web_config_from_environment(clean_env, tmp_path):
    clean_env.setenv("DATABASE_PATH", str(tmp_path / "x.db"))
    clean_env.setenv("SECRET_KEY", SECRET)
    clean_env.setenv("SESSION_COOKIE_SECURE", "true")
    app = create_app()
    assert app.config["SECRET_KEY"] == SECRET
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert not app.testing


def test_asgi_exits_with_one_line_naming_the_variable(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_PATH", "SECRET_KEY", "SECRET_KEY_FILE", "CREDENTIALS_DIRECTORY", "CTV_BOOKEDBIZ_ENV")
    }
    env["SECRET_KEY"] = SECRET
    result = subprocess.run(
        [sys.executable, "-c", "import src.web.asgi"], cwd=APP_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "ctv-bookedbiz-db: DATABASE_PATH is not set (path of the SQLite database file)"
    ]
