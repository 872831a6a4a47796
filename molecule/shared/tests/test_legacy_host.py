"""What the converge of the legacy host must have kept and removed.

Runs in the legacy scenario only: the container started as the hand-built
host (flaskapp.service on port 8000, .venv in the code tree, developer-owned
files, production data in place).
"""

import os

import pytest

from conftest import CODE_DIR, DATA_DIR

pytestmark = pytest.mark.skipif(
    os.environ.get("MOLECULE_SCENARIO_NAME") != "legacy",
    reason="only the legacy scenario starts from the hand-built host",
)


def test_production_data_is_byte_for_byte_untouched(host):
    check = host.run(f"cd {DATA_DIR} && sha256sum --check /root/legacy-data.sha256")
    assert check.rc == 0, check.stdout + check.stderr


def test_the_legacy_data_is_served(host):
    health = host.check_output("curl -s http://127.0.0.1:8000/health")
    assert '"status": "ok"' in health.replace('":"', '": "')


def test_old_files_and_the_in_place_venv_are_gone(host):
    for path in (".venv", "runserver.sh", "old_reports", "src/web/wsgi.py"):
        assert not host.file(f"{CODE_DIR}/{path}").exists, path
    assert host.check_output(f"find {CODE_DIR} -user daseme") == ""


def test_old_unit_file_is_kept_for_reference_and_masked(host):
    kept = host.file("/usr/local/lib/systemd/system/flaskapp.service")
    assert kept.is_file
    assert "runserver.sh" in kept.content_string
    assert host.file("/etc/systemd/system/flaskapp.service").linked_to == "/dev/null"
    assert host.check_output("pgrep -f '[h]ttp.server 8000' || true") == ""
