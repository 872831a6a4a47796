"""Each role's README is generated from its argument specs and lists every variable."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ROLES = sorted(path for path in (ROOT / "roles").iterdir() if path.is_dir())


@pytest.mark.parametrize("role", ROLES, ids=[role.name for role in ROLES])
def test_the_specs_and_the_defaults_name_the_same_variables(role):
    specs = yaml.safe_load((role / "meta/argument_specs.yml").read_text())["argument_specs"]
    defaults = yaml.safe_load((role / "defaults/main.yml").read_text()) or {}
    assert list(specs["main"]["options"]) == list(defaults)


@pytest.mark.parametrize("role", ROLES, ids=[role.name for role in ROLES])
def test_the_readme_lists_every_variable(role):
    readme = (role / "README.md").read_text()
    for name in yaml.safe_load((role / "defaults/main.yml").read_text()) or {}:
        assert f"| `{name}` |" in readme, name


def test_every_readme_is_what_the_generator_writes():
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts/role-docs"), "--check"], capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
