"""`--check --diff`, as the README promises it: a preview that finishes, changes
nothing and says what the run would do.

- Before the first converge (the scenarios verify once before it, see
  conftest.py): on the bare Debian host of the default scenario and on the
  hand-built host of the legacy one. Every file under /etc, /usr, /var and
  /opt (owner, group, mode, digest) is listed before and after the preview.
- On the converged host, with an app change (`--tags deploy`): the only
  change it foresees is the code tree's, and it names the file that differs.
"""

import json
import os
import subprocess

import pytest

from conftest import CODE_DIR, ENV_FILE, changed_app, changed_tasks, finished, listing, playbook, results

SCENARIO = os.environ.get("MOLECULE_SCENARIO_NAME", "default")
CODE_TREE_PREVIEW = "Say which files of the code tree would change"


def preview(*args: str) -> tuple[subprocess.CompletedProcess, dict, list[tuple[str, dict]]]:
    run = playbook("--check", "--diff", *args)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    stats, tasks = results(run)
    assert stats["failures"] == 0
    return run, stats, tasks


def only(tasks, name: str) -> dict:
    """The result of the one task called NAME (role prefix left out)."""
    (found,) = [result for task, result in tasks if task.split(" : ", 1)[-1] == name]
    return found


@pytest.mark.before_converge(last=True)
def test_a_preview_of_the_host_before_the_first_converge_changes_nothing_and_says_what_it_would_do(
    host, before_converge
):
    """Last before the converge: the listing after the preview and every other
    check beside it (the validation sweep, in the default scenario)."""
    before, running = before_converge
    run = finished(running)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    stats, tasks = results(run)
    assert stats["failures"] == 0
    after = listing(host)

    changed = sorted(path for path in before.keys() & after.keys() if before[path] != after[path])
    assert not changed, [(path, before[path], after[path]) for path in changed[:20]]
    assert not sorted(after.keys() - before.keys())[:20]
    assert not sorted(before.keys() - after.keys())[:20]

    # It says what it would do: the accounts, the env file (its text, as a
    # diff), the service's unit, and the code tree file by file.
    assert stats["changed"] > 0
    would = changed_tasks(tasks)
    assert "Create system user ctvbooked" in would, would
    env_file = only(tasks, "Write the env file")
    assert env_file["changed"] and "DATABASE_PATH=" in json.dumps(env_file.get("diff")), env_file
    assert "Install the systemd unit ctv-bookedbiz-db.service" in would, would
    code_tree = only(tasks, CODE_TREE_PREVIEW)["msg"]
    if SCENARIO == "legacy":
        # The hand-built tree: the old files would go, the app's would be rewritten.
        assert f"{CODE_DIR}/runserver.sh" in code_tree["removed"], code_tree
        assert f"{CODE_DIR}/old_reports" in code_tree["removed"], code_tree
        assert "Stop flaskapp.service" in would, would
    else:
        assert f"{CODE_DIR}/src/web/asgi.py" in code_tree["new"], code_tree
        assert code_tree["removed"] == [], code_tree


@pytest.mark.skipif(SCENARIO != "default", reason="once is enough: a converged host is a converged host")
def test_a_preview_of_an_app_change_on_the_converged_host_names_the_file_and_nothing_else(host, tmp_path):
    """The preview an operator runs before shipping an app change (`--tags
    deploy`, the app's part of site.yml; the whole of it is previewed before
    the first converge above, and re-run for real by the idempotence step)."""
    app = changed_app(tmp_path, "previewed, never shipped")
    _, _, tasks = preview("-e", f"ctv_bookedbiz_db_app_src={app}", "--tags", "deploy")
    code_tree = only(tasks, CODE_TREE_PREVIEW)
    assert code_tree["changed"]
    assert code_tree["msg"] == {"new": [], "changed": [f"{CODE_DIR}/src/web/asgi.py"], "removed": []}
    # Nothing else of the deploy would change: the venv, the database and
    # the release record are as the converge left them.
    deploy_steps = {
        CODE_TREE_PREVIEW,
        "Restart ctv-bookedbiz-db",
    }
    assert set(changed_tasks(tasks)) <= deploy_steps, changed_tasks(tasks)
    assert "previewed, never shipped" not in host.file(f"{CODE_DIR}/src/web/asgi.py").content_string
    assert "previewed" not in host.file(ENV_FILE).content_string
