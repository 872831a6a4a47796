"""Times the production playbook against the Molecule default container.

Per run: a new container (molecule destroy, create, prepare), then, each
with Ansible's task profiler on:
  - fresh:     `molecule converge` (site.yml on a bare host; also the
               playbook's own time, without molecule's start-up);
  - no-change: site.yml again on the converged host;
  - app-change: site.yml with a copy of app/ that has one line added to a
               module (new release: backup, kept release, unpack, restart,
               health gate).
Prints the medians and writes bench/results/<date>-playbook-<label>.json.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import tempfile
from pathlib import Path

from _common import run

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = "default"
PROFILE_LINE = re.compile(r"^(?P<task>.+?) -+ (?P<seconds>[0-9.]+)s$")
# The profiler's time stamps end with the time since the playbook began.
ELAPSED = re.compile(r"\([0-9]+:[0-9]{2}:[0-9.]+\)\s+(?P<h>[0-9]+):(?P<m>[0-9]{2}):(?P<s>[0-9]+[.][0-9]+)")


def playbook(env, *extra):
    inventory = Path(env["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory"
    return run(["ansible-playbook", "-i", str(inventory), "playbooks/site.yml", *extra], env=env)


def profile(done) -> tuple[float, list]:
    """(the playbook's own elapsed seconds, [(task, seconds), ...] slowest first)."""
    elapsed, slowest = 0.0, []
    for line in done.stdout.splitlines() + done.stderr.splitlines():
        line = re.sub(r"\x1b\[[0-9;]*m", "", line).strip(" │")
        if stamp := ELAPSED.search(line):
            elapsed = int(stamp["h"]) * 3600 + int(stamp["m"]) * 60 + float(stamp["s"])
        elif match := PROFILE_LINE.match(line):
            slowest.append((match["task"].strip(), float(match["seconds"])))
    return elapsed, slowest[:10]


def one_run(base_env) -> dict:
    run(["molecule", "destroy", "-s", SCENARIO], env=base_env)
    run(["molecule", "create", "-s", SCENARIO], env=base_env)
    run(["molecule", "prepare", "-s", SCENARIO], env=base_env)
    # The task profiler on, and lines wide enough that molecule does not wrap them.
    profile_env = dict(base_env, ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", COLUMNS="500")
    fresh, done = run(["molecule", "converge", "-s", SCENARIO], env=profile_env)
    fresh_playbook, fresh_slowest = profile(done)
    env = dict(profile_env)
    env["ANSIBLE_CONFIG"] = str(Path(env["MOLECULE_EPHEMERAL_DIRECTORY"]) / "ansible.cfg")
    env["ANSIBLE_ROLES_PATH"] = str(ROOT / "roles")
    env["ANSIBLE_PIPELINING"] = "True"
    no_change, done = playbook(env)
    assert "changed=0" in done.stdout, done.stdout[-2000:]
    _, no_change_slowest = profile(done)
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "app"
        shutil.copytree(ROOT / "app", app, ignore=shutil.ignore_patterns(".venv", "__pycache__", ".pytest_cache"))
        target = app / "src" / "web" / "asgi.py"
        target.write_text(target.read_text() + "# one-line change for the playbook benchmark\n")
        app_change, done = playbook(env, "-e", f"ctv_bookedbiz_db_app_src={app}")
    _, app_change_slowest = profile(done)
    return {
        "fresh": fresh,
        "fresh_playbook": fresh_playbook,
        "no_change": no_change,
        "app_change": app_change,
        "slowest": {"fresh": fresh_slowest, "no_change": no_change_slowest, "app_change": app_change_slowest},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--label", default="local")
    args = parser.parse_args()
    # One scratch directory for molecule's state, so the runs below find it.
    base_env = dict(os.environ, MOLECULE_EPHEMERAL_DIRECTORY=tempfile.mkdtemp(prefix="ctv-playbook-bench."))
    samples = []
    try:
        for number in range(1, args.runs + 1):
            sample = one_run(base_env)
            samples.append(sample)
            print(
                f"run {number}: fresh converge {sample['fresh']:.1f} s, no-change {sample['no_change']:.1f} s, "
                f"one-line app change {sample['app_change']:.1f} s",
                flush=True,
            )
    finally:
        run(["molecule", "destroy", "-s", SCENARIO], env=base_env, check=False)
    keys = ("fresh", "fresh_playbook", "no_change", "app_change")
    medians = {key: statistics.median(s[key] for s in samples) for key in keys}
    print(
        f"median of {len(samples)}: fresh converge {medians['fresh']:.1f} s (target 90; the playbook itself "
        f"{medians['fresh_playbook']:.1f} s), "
        f"no-change re-converge {medians['no_change']:.1f} s (target 15), "
        f"one-line app change {medians['app_change']:.1f} s"
    )
    kinds = (("fresh", "fresh converge"), ("no_change", "no-change re-converge"), ("app_change", "app change"))
    for kind, title in kinds:
        print(f"ten slowest tasks of the last {title}:")
        for task, seconds in samples[-1]["slowest"][kind]:
            print(f"  {seconds:6.2f} s  {task}")
    out = ROOT / "bench" / "results" / f"{datetime.date.today():%Y-%m-%d}-playbook-{args.label}.json"
    out.write_text(json.dumps({"label": args.label, "samples": samples, "medians_s": medians}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
