import shutil
import subprocess
import sys
from pathlib import Path

APP_DIR = Path(__file__).resolve().parents[1]


def test_every_third_party_import_is_declared():
    """deptry: no undeclared, unused or dev-only imports in runtime code."""
    deptry = shutil.which("deptry", path=str(Path(sys.executable).parent))
    assert deptry, "deptry is in the dev dependency group"
    result = subprocess.run([deptry, "."], cwd=APP_DIR, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
