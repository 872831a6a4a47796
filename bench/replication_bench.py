"""Off-host replication: how much a dead app host loses (the recovery point)
and how long a new bare host takes to serve the restored database (the
recovery time), on the Molecule default scenario's two containers (the app
host, and the backup host that Litestream streams production.db to over
SFTP). The containers share the controller's clock, so times taken in
either container and on the controller are compared directly.

Per run: new containers (molecule destroy, create, prepare, converge), then

- Recovery point at idle: a writer on the app host (python3 as the runtime
  user, sqlite3 module) commits one row at a time into bench_commits, 2-3 s
  apart (random, so that commits fall at every point of Litestream's 1 s
  sync cycle), and records each commit's time. A watcher on the backup host
  polls the replica's level-0 directory every 25 ms and logs each new LTX
  file: first sight, when it is whole (Litestream's SFTP client writes the
  file in place, then sets its mtime to the time in the file's header: that
  is the sign the upload ended), its size, and the header's time (when
  Litestream made the file on the app host). Each whole file is hard-linked
  aside so that compaction cannot remove it before it is read.
  Which file holds which commit: every row carries 16 random bytes; pages
  are LZ4-compressed one by one in an LTX file, and random bytes stay
  verbatim in LZ4 output, so the first file (in TXID order) whose bytes
  contain a row's token is the file that brought that commit to the backup
  host. Recovery point of a commit = that file's arrival (whole) - commit
  time. The simpler rule "the next file to arrive after the commit whose
  TXID is above every earlier arrival" is checked against it and the
  agreement reported (sound at idle; under load a big file still uploading
  when a commit lands would be taken for the commit's own).
- Recovery point under a 400,000-spot import: the demo file is made on the
  host (`demo-data --spots 400000 --seed 1 --start Jan-25 --export --no-db`),
  the writer commits every 0.4-0.6 s (its commits wait while the import
  holds the write lock: the time a commit was started and the time it was
  committed are both recorded), `ctv-bookedbiz import` runs, and the same
  token method maps every commit to its file. Also the import's own commit:
  import end (as the host's clock saw the CLI exit) to the arrival of the
  largest level-0 file made after the import started (the import is one
  transaction, so one file), and that file's size.
- The replicator during that import: Litestream's CPU time (utime + stime
  of the unit's main process, /proc, every 0.25 s) and resident memory
  (VmRSS sampled, VmHWM = peak since start), plus systemd's CPUUsageNSec,
  MemoryCurrent and MemoryPeak before and after (MemoryPeak is not in
  Debian 12's systemd; on a cgroup v1 machine the accounting may be unset).
- Recovery time: once the replica has caught up (the admin tool's `replica
  status` until replica_txid >= local_txid), the app host's container and
  its volumes are removed, a Debian 13 container takes its name, network
  and ports (as in the dead-host drill), the test-only prepare playbook
  runs (timed, excluded), then `site.yml` and `restore.yml -e
  ctv_bookedbiz_db_restore_backup=replica`, each timed. Recovery time =
  converge + restore. Then the restored row counts (400,000 spots, and
  every bench_commits row the writer committed) and /health's status.

Prints the figures and writes bench/results/<date>-replication-<label>.json
with every sample. Asserts no times.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import yaml

from _common import run, write_results

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = "default"
APP_HOST = "ctv-bookedbiz-db-default"
BACKUP_HOST = "ctv-bookedbiz-db-backup"
REBUILT_IMAGE = "localhost/ctv-bookedbiz-db-debian13:latest"
USER = "ctvbooked"
DB = "/var/lib/ctv-bookedbiz-db/production.db"
LOAD_ENV = "set -a; . /etc/ctv-bookedbiz-db/ctv-bookedbiz-db.env; set +a;"
CLI = "/opt/venvs/ctv-bookedbiz-db/bin/ctv-bookedbiz"
ADMIN = "/usr/local/sbin/ctv-bookedbiz-db-admin --config /etc/ctv-bookedbiz-db/admin.json"
UNIT = "ctv-bookedbiz-db-replicate.service"
L0_DIR = "/srv/ctv-bookedbiz-db-replica/replica/ltx/0"
SPOTS = 400_000
CSV = "/tmp/bench-400k.csv"
POLL_S = 0.025
BIG_FILE = 1_000_000  # bytes: only the import's level-0 file is this large

# The scripts below run inside the containers with the hosts' python3; each
# takes its stop file as its last argument and prints one JSON object a line.

WRITER = """
import json, os, random, sqlite3, sys, time
db, low, high, count, stop = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[-1]
conn = sqlite3.connect(db, isolation_level=None, timeout=600)
conn.execute('CREATE TABLE IF NOT EXISTS bench_commits(n INTEGER PRIMARY KEY, started REAL, token BLOB)')
n = conn.execute('SELECT coalesce(max(n), 0) FROM bench_commits').fetchone()[0]
print(json.dumps({'ready': time.time()}), flush=True)
done = 0
while count == 0 or done < count:
    time.sleep(random.uniform(low, high))
    if os.path.exists(stop):
        break
    n, done, token, started = n + 1, done + 1, os.urandom(16), time.time()
    conn.execute('INSERT INTO bench_commits VALUES (?, ?, ?)', (n, started, token))
    print(json.dumps({'n': n, 'started': started, 'committed': time.time(), 'token': token.hex()}), flush=True)
"""

WATCHER = """
import json, os, shutil, struct, sys, time
folder, hold, poll, stop = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[-1]
os.makedirs(hold, exist_ok=True)
old = set(os.listdir(folder)) if os.path.isdir(folder) else set()
seen = {}
print(json.dumps({'ready': time.time()}), flush=True)
while not os.path.exists(stop):
    now = time.time()
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
        if name in old or not name.endswith('.ltx'):
            continue
        seen.setdefault(name, now)
        path = os.path.join(folder, name)
        try:
            with open(path, 'rb') as f:
                made_ms = struct.unpack('>q', f.read(40)[32:40])[0]
            stat = os.stat(path)
        except (OSError, struct.error):
            continue
        # Whole once the upload set the mtime to the header's time (SFTP keeps seconds only).
        if stat.st_mtime_ns not in (made_ms * 10**6, made_ms // 1000 * 10**9):
            continue
        try:
            os.link(path, os.path.join(hold, name))
        except OSError:
            shutil.copy(path, os.path.join(hold, name))
        old.add(name)
        print(json.dumps({'name': name, 'seen': seen[name], 'complete': now, 'size': stat.st_size,
                          'made': made_ms / 1000}), flush=True)
    time.sleep(poll)
"""

SAMPLER = """
import json, os, sys, time
pid, every, stop = sys.argv[1], float(sys.argv[2]), sys.argv[-1]
tick = os.sysconf('SC_CLK_TCK')
def memory(key):
    with open(f'/proc/{pid}/status') as f:
        return next(int(line.split()[1]) for line in f if line.startswith(key + ':'))
while True:
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / tick
    print(json.dumps({'t': time.time(), 'cpu_s': cpu, 'rss_kb': memory('VmRSS'), 'hwm_kb': memory('VmHWM')}),
          flush=True)
    if os.path.exists(stop):
        break
    time.sleep(every)
"""

FIND_TOKENS = """
import json, os, sys
hold, wanted = sys.argv[1], dict(arg.split(':') for arg in sys.argv[2:-1])
found = {}
for name in sorted(os.listdir(hold), key=lambda name: int(name[17:33], 16)):
    with open(os.path.join(hold, name), 'rb') as f:
        data = f.read()
    for n, token in wanted.items():
        if n not in found and bytes.fromhex(token) in data:
            found[n] = name
print(json.dumps(found))
"""

COUNT_ROWS = """
import sqlite3, sys
conn = sqlite3.connect(f'file:{sys.argv[1]}?mode=ro', uri=True)
print(' '.join(str(conn.execute(f'SELECT count(*) FROM {table}').fetchone()[0]) for table in sys.argv[2:-1]))
"""


def podman(*args: str) -> str:
    return run(["podman", *args])[1].stdout.strip()


def on(container: str, command: str, user: str | None = None) -> str:
    """A shell command in a container (as root, or as USER); its output."""
    return podman("exec", *(["--user", user] if user else []), container, "sh", "-c", command)


def app_cli(arguments: str) -> str:
    return on(APP_HOST, f"{LOAD_ENV} {CLI} {arguments}", user=USER)


def python_on(container: str, script: str, *args, user: str | None = None) -> str:
    """A one-off script (of those above) in a container; its output."""
    return podman("exec", *(["--user", user] if user else []), container, "python3", "-c", script, *map(str, args), "-")


class Remote:
    """One of the scripts above running in a container in the background; the
    JSON lines it prints are collected as they come. It ends by itself or
    when its stop file appears."""

    def __init__(self, container: str, script: str, *args, user: str | None = None):
        self.container = container
        self.stop_file = f"/tmp/bench-stop-{uuid.uuid4().hex[:12]}"
        self.lines: list[dict] = []
        command = [
            "podman",
            "exec",
            *(["--user", user] if user else []),
            container,
            "python3",
            "-u",
            "-c",
            script,
            *map(str, args),
            self.stop_file,
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(json.loads(line))

    def wait_for(self, predicate, seconds: float, what: str) -> dict:
        """The first line for which predicate is true, waiting for it."""
        deadline = time.monotonic() + seconds
        while True:
            for line in list(self.lines):
                if predicate(line):
                    return line
            if self.process.poll() is not None:
                self.reader.join()
                raise SystemExit(f"{what}: the script ended ({self.process.stderr.read()[-2000:]})")
            if time.monotonic() > deadline:
                raise SystemExit(f"waited {seconds} s for {what}")
            time.sleep(0.05)

    def finish(self, seconds: float = 60) -> list[dict]:
        """Its lines, after it has ended (told to, unless it already has)."""
        if self.process.poll() is None:
            podman("exec", self.container, "touch", self.stop_file)
        self.process.wait(timeout=seconds)
        self.reader.join()
        if self.process.returncode:
            raise SystemExit(f"a script in {self.container} failed: {self.process.stderr.read()[-2000:]}")
        return [line for line in self.lines if "ready" not in line]


def replica_state() -> dict:
    return json.loads(on(APP_HOST, f"{ADMIN} replica status"))


def wait_for_catch_up(seconds: float = 300) -> dict:
    """Poll the status command until the replica has what the host has."""
    time.sleep(2)  # Litestream ships once a second; let it see the last commit.
    deadline = time.monotonic() + seconds
    while True:
        state = replica_state()
        if state["local_txid"] and state["replica_txid"] and state["replica_txid"] >= state["local_txid"]:
            return state
        if time.monotonic() > deadline:
            raise SystemExit(f"the replica did not catch up in {seconds} s: {state}")
        time.sleep(1)


def unit_accounting() -> dict:
    """systemd's own figures for the replication unit."""
    out = on(APP_HOST, f"systemctl show -p CPUUsageNSec -p MemoryCurrent -p MemoryPeak -p MainPID {UNIT}")
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def row_counts(*tables: str) -> list[int]:
    return [int(n) for n in python_on(APP_HOST, COUNT_ROWS, DB, *tables, user=USER).split()]


def txid(file: dict) -> int:
    return int(file["name"][17:33], 16)


def spread(values: list[float]) -> dict:
    """Median, smallest and largest of some seconds (None when there are none)."""
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None}
    return {"n": len(values), "median": statistics.median(values), "min": min(values), "max": max(values)}


def value_at(samples: list[dict], t: float, key: str) -> float:
    """A sampled quantity at time t, by linear interpolation between samples."""
    before = [s for s in samples if s["t"] <= t] or samples[:1]
    after = [s for s in samples if s["t"] >= t] or samples[-1:]
    a, b = before[-1], after[0]
    if b["t"] == a["t"]:
        return a[key]
    return a[key] + (b[key] - a[key]) * (t - a["t"]) / (b["t"] - a["t"])


def next_file_rule(committed: float, files: list[dict]) -> str | None:
    """The simpler mapping: the first file to arrive after the commit whose TXID
    is above that of every file that had arrived before it."""
    floor = max((txid(f) for f in files if f["complete"] <= committed), default=0)
    later = sorted((f for f in files if f["complete"] > committed and txid(f) > floor), key=lambda f: f["complete"])
    return later[0]["name"] if later else None


def commit_arrivals(commits: list[dict], files: list[dict], hold: str) -> list[dict]:
    """Every commit with the level-0 file that first holds its token, and when
    that file was made (on the app host) and arrived whole (on the backup host)."""
    wanted = [f"{c['n']}:{c['token']}" for c in commits]
    found = json.loads(python_on(BACKUP_HOST, FIND_TOKENS, hold, *wanted))
    by_name = {f["name"]: f for f in files}
    samples = []
    for commit in commits:
        sample = {key: commit[key] for key in ("n", "started", "committed")}
        file = by_name.get(found.get(str(commit["n"])))
        if file:
            sample.update(
                file=file["name"],
                size=file["size"],
                made=file["made"],
                seen=file["seen"],
                arrived=file["complete"],
                rpo_s=file["complete"] - commit["committed"],
                simple_rule_agrees=next_file_rule(commit["committed"], files) == file["name"],
            )
        samples.append(sample)
    return samples


def recovery_point_figures(samples: list[dict]) -> dict:
    mapped = [s for s in samples if "rpo_s" in s]
    return {
        "rpo_s": spread([s["rpo_s"] for s in mapped]),
        # Commit to Litestream making the file (its sync cycle), then the file's upload.
        "commit_to_made_s": spread([s["made"] - s["committed"] for s in mapped]),
        "made_to_arrived_s": spread([s["arrived"] - s["made"] for s in mapped]),
        "unmapped_commits": len(samples) - len(mapped),
        "simple_rule_agrees": sum(s["simple_rule_agrees"] for s in mapped),
    }


def measure_idle(count: int) -> dict:
    """Single commits 2-3 s apart, nothing else writing."""
    hold = "/root/bench-hold-idle"
    watcher = Remote(BACKUP_HOST, WATCHER, L0_DIR, hold, POLL_S)
    watcher.wait_for(lambda line: "ready" in line, 30, "the watcher")
    writer = Remote(APP_HOST, WRITER, DB, 2.0, 3.0, count, user=USER)
    writer.process.wait(timeout=count * 3 + 60)
    commits = writer.finish()
    wait_for_catch_up()
    time.sleep(0.5)  # one more pass of the watcher
    files = watcher.finish()
    samples = commit_arrivals(commits, files, hold)
    return {"commits": samples, "files": files, **recovery_point_figures(samples)}


def timed_import() -> tuple[float, float, str]:
    """Start and end of `ctv-bookedbiz import` by the host's clock, and its last line."""
    out = on(APP_HOST, f"{LOAD_ENV} date +%s.%N && {CLI} import {CSV} && date +%s.%N", user=USER).splitlines()
    return float(out[0]), float(out[-1]), out[-2] if len(out) > 2 else ""


def replicator_figures(samples: list[dict], started: float, ended: float, shipped: float) -> dict:
    """Litestream's CPU time and memory around the import."""
    cpu = [(s["t"], s["cpu_s"]) for s in samples]
    first_t, first_cpu = cpu[0]
    window = [s for s in samples if started <= s["t"] <= shipped + 5]
    return {
        "idle_cpu_s_per_s": (value_at(samples, started, "cpu_s") - first_cpu) / max(started - first_t, 1e-9),
        "cpu_s_during_import": value_at(samples, ended, "cpu_s") - value_at(samples, started, "cpu_s"),
        "cpu_s_import_start_to_shipped": value_at(samples, shipped, "cpu_s") - value_at(samples, started, "cpu_s"),
        "cpu_s_per_import_s": (value_at(samples, shipped, "cpu_s") - value_at(samples, started, "cpu_s"))
        / (ended - started),
        "rss_mb_before": samples[0]["rss_kb"] / 1024,
        "rss_mb_peak_sampled": max(s["rss_kb"] for s in window) / 1024 if window else None,
        "vmhwm_mb_after": samples[-1]["hwm_kb"] / 1024,
    }


def measure_import() -> dict:
    """A 400,000-spot import while the writer commits every 0.4-0.6 s."""
    app_cli(f"demo-data --spots {SPOTS} --seed 1 --start Jan-25 --export {CSV} --no-db")
    hold = "/root/bench-hold-import"
    watcher = Remote(BACKUP_HOST, WATCHER, L0_DIR, hold, POLL_S)
    watcher.wait_for(lambda line: "ready" in line, 30, "the watcher")
    accounting_before = unit_accounting()
    sampler = Remote(APP_HOST, SAMPLER, accounting_before["MainPID"], 0.25)
    writer = Remote(APP_HOST, WRITER, DB, 0.4, 0.6, 0, user=USER)
    writer.wait_for(lambda line: "ready" in line, 30, "the writer")
    time.sleep(3)
    started, ended, import_said = timed_import()
    big = watcher.wait_for(
        lambda f: f.get("size", 0) >= BIG_FILE and f["made"] >= started, 600, "the import's file on the backup host"
    )
    time.sleep(3)
    commits = writer.finish()
    caught_up = wait_for_catch_up()
    accounting_after = unit_accounting()
    time.sleep(0.5)
    usage = sampler.finish()
    files = watcher.finish()
    import_file = max((f for f in files if f["made"] >= started), key=lambda f: f["size"])
    if import_file["name"] != big["name"]:
        print(f"note: the largest file {import_file['name']} is not the first big one {big['name']}")
    samples = commit_arrivals(commits, files, hold)
    during = [s for s in samples if started <= s["started"] <= ended]
    return {
        "import_s": ended - started,
        "import_started": started,
        "import_ended": ended,
        "import_said": import_said,
        "import_file": import_file,
        "import_end_to_replica_s": import_file["complete"] - ended,
        "import_end_to_file_made_s": import_file["made"] - ended,
        **recovery_point_figures(samples),
        "rpo_commits_started_during_import_s": spread([s["rpo_s"] for s in during if "rpo_s" in s]),
        "lock_wait_s": spread([s["committed"] - s["started"] for s in samples]),
        "started_to_arrived_s": spread([s["arrived"] - s["started"] for s in samples if "arrived" in s]),
        "replicator": replicator_figures(usage, started, ended, import_file["complete"]),
        "systemd_before": accounting_before,
        "systemd_after": accounting_after,
        "caught_up": caught_up,
        "commits": samples,
        "files": files,
        "usage_samples": usage,
    }


def platform(name: str) -> dict:
    scenario = yaml.safe_load((ROOT / "molecule" / SCENARIO / "molecule.yml").read_text())
    (found,) = (p for p in scenario["platforms"] if p["name"] == name)
    return found


def expand(text: str) -> str:
    """${VAR:-default} as Molecule reads molecule.yml."""
    return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: os.environ.get(m[1], m[2]), text)


def new_host(name: str, image: str) -> None:
    """A brand-new container in the dead one's place: same name, network and
    ports (as molecule.yml gives them), another Debian release (as the
    dead-host drill makes it)."""
    spec = platform(name)
    args = ["run", "-d", "--name", name, "--hostname", name, "--network", spec["network"], "--systemd=always"]
    args += [f"--cap-add={cap}" for cap in spec.get("capabilities", [])]
    args += [f"--ulimit={limit}" for limit in spec.get("ulimits", [])]
    args += [f"--publish={expand(port)}" for port in spec.get("published_ports", [])]
    podman(*args, image, spec["command"])


def ansible_env(base_env: dict) -> dict:
    """What ansible-playbook needs to reach the scenario's hosts as molecule does."""
    ephemeral = Path(base_env["MOLECULE_EPHEMERAL_DIRECTORY"])
    return dict(
        base_env,
        ANSIBLE_CONFIG=str(ephemeral / "ansible.cfg"),
        ANSIBLE_ROLES_PATH=str(ROOT / "roles"),
        ANSIBLE_PIPELINING="True",
    )


def ansible(env: dict, playbook: str, *args: str) -> float:
    inventory = Path(env["MOLECULE_EPHEMERAL_DIRECTORY"]) / "inventory"
    return run(["ansible-playbook", "-i", str(inventory), playbook, *args], env=env)[0]


def measure_recovery(base_env: dict) -> dict:
    """Kill the app host with its disk, rebuild it on Debian 13, restore from the replica."""
    caught_up = wait_for_catch_up()
    expected = dict(zip(("spots", "bench_commits"), row_counts("spots", "bench_commits"), strict=True))
    volumes = podman("inspect", "-f", "{{range .Mounts}}{{.Name}} {{end}}", APP_HOST).split()
    podman("rm", "--force", "--volumes", "--time", "0", APP_HOST)
    dead = time.time()
    left = [v for v in volumes if subprocess.run(["podman", "volume", "exists", v], check=False).returncode == 0]
    started = time.monotonic()
    new_host(APP_HOST, REBUILT_IMAGE)
    container_s = time.monotonic() - started
    env = ansible_env(base_env)
    prepare_s = ansible(env, "molecule/shared/prepare.yml", "--limit", f"{APP_HOST},localhost")
    converge_s = ansible(env, "playbooks/site.yml")
    restore_s = ansible(env, "playbooks/restore.yml", "-e", "ctv_bookedbiz_db_restore_backup=replica")
    health = on(APP_HOST, "curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8000/health")
    serving = time.time()
    restored = dict(zip(("spots", "bench_commits"), row_counts("spots", "bench_commits"), strict=True))
    return {
        "rto_s": converge_s + restore_s,
        "converge_s": converge_s,
        "restore_s": restore_s,
        "container_s": container_s,
        "prepare_s_excluded": prepare_s,
        "dead_to_serving_s": serving - dead,
        "health_status": health,
        "debian": on(APP_HOST, "cat /etc/debian_version"),
        "rows_before": expected,
        "rows_restored": restored,
        "rows_match": restored == expected,
        "volumes_left_behind": left,
        "replica_at_kill": caught_up,
    }


def bring_up(env: dict) -> dict:
    """New app and backup hosts, converged as by `molecule converge`."""
    times = {}
    for step in ("destroy", "create", "prepare", "converge"):
        times[step + "_s"] = run(["molecule", step, "-s", SCENARIO], env=env)[0]
    return times


def one_run(base_env: dict, idle_samples: int) -> dict:
    setup = bring_up(base_env)
    print(f"  hosts up in {sum(setup.values()):.0f} s; recovery point at idle ...", flush=True)
    idle = measure_idle(idle_samples)
    print(f"  idle: median {idle['rpo_s']['median']:.2f} s; the {SPOTS:,}-spot import under load ...", flush=True)
    load = measure_import()
    print(
        f"  import {load['import_s']:.1f} s, on the replica {load['import_end_to_replica_s']:.1f} s after; "
        "recovery time ...",
        flush=True,
    )
    recovery = measure_recovery(base_env)
    return {"setup": setup, "idle": idle, "import": load, "recovery": recovery}


def medians(runs: list[dict]) -> dict:
    """Medians over every sample of every run (recovery point) or over runs."""

    def over_runs(get):
        return statistics.median(get(r) for r in runs)

    def samples(phase):
        return [s["rpo_s"] for r in runs for s in r[phase]["commits"] if "rpo_s" in s]

    return {
        "idle_rpo_s": statistics.median(samples("idle")),
        "load_rpo_s": statistics.median(samples("import")),
        "import_s": over_runs(lambda r: r["import"]["import_s"]),
        "import_end_to_replica_s": over_runs(lambda r: r["import"]["import_end_to_replica_s"]),
        "import_file_mb": over_runs(lambda r: r["import"]["import_file"]["size"] / 1e6),
        "replicator_cpu_s_per_import_s": over_runs(lambda r: r["import"]["replicator"]["cpu_s_per_import_s"]),
        "replicator_rss_mb_peak": over_runs(lambda r: r["import"]["replicator"]["rss_mb_peak_sampled"]),
        "rto_s": over_runs(lambda r: r["recovery"]["rto_s"]),
        "converge_s": over_runs(lambda r: r["recovery"]["converge_s"]),
        "restore_s": over_runs(lambda r: r["recovery"]["restore_s"]),
    }


def report(runs: list[dict], summary: dict) -> None:
    def seconds(values):
        return ", ".join(f"{v:.2f}" for v in values)

    for number, r in enumerate(runs, 1):
        idle, load, rec = r["idle"], r["import"], r["recovery"]
        rep = load["replicator"]
        print(f"run {number}:")
        print(
            f"  recovery point at idle: median {idle['rpo_s']['median']:.2f} s "
            f"(commit to file made {idle['commit_to_made_s']['median']:.2f} s, upload "
            f"{idle['made_to_arrived_s']['median']:.2f} s; simple rule agrees {idle['simple_rule_agrees']} of "
            f"{idle['rpo_s']['n']}); samples: {seconds(s['rpo_s'] for s in idle['commits'] if 'rpo_s' in s)}"
        )
        during = load["rpo_commits_started_during_import_s"]
        print(
            f"  under the import: median {load['rpo_s']['median']:.2f} s, max {load['rpo_s']['max']:.2f} s "
            f"(the {during['n']} commits started during the import: median {during['median']:.2f} s); "
            f"lock wait max {load['lock_wait_s']['max']:.2f} s; samples: "
            f"{seconds(s['rpo_s'] for s in load['commits'] if 'rpo_s' in s)}"
        )
        print(
            f"  import {load['import_s']:.2f} s; its commit on the backup host "
            f"{load['import_end_to_replica_s']:.2f} s after it ended "
            f"({load['import_file']['size'] / 1e6:.1f} MB level-0 file)"
        )
        print(
            f"  replicator: {rep['cpu_s_import_start_to_shipped']:.2f} CPU s from import start to shipped = "
            f"{rep['cpu_s_per_import_s']:.2f} CPU s per import second (idle {rep['idle_cpu_s_per_s']:.3f}); "
            f"RSS {rep['rss_mb_before']:.0f} MB before, peak {rep['rss_mb_peak_sampled']:.0f} MB, "
            f"VmHWM {rep['vmhwm_mb_after']:.0f} MB; systemd before {load['systemd_before']}, "
            f"after {load['systemd_after']}"
        )
        print(
            f"  recovery time {rec['rto_s']:.1f} s = converge {rec['converge_s']:.1f} s + restore "
            f"{rec['restore_s']:.1f} s (container {rec['container_s']:.1f} s and prepare "
            f"{rec['prepare_s_excluded']:.1f} s not counted; dead to serving {rec['dead_to_serving_s']:.1f} s); "
            f"/health {rec['health_status']}, Debian {rec['debian']}, rows {rec['rows_restored']} "
            f"(before {rec['rows_before']})"
        )
    print("medians: " + ", ".join(f"{key} {value:.2f}" for key, value in summary.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--idle-samples", type=int, default=20)
    parser.add_argument("--label", default=None)
    args = parser.parse_args()
    # One scratch directory for molecule's state, so the steps below find it.
    base_env = dict(os.environ, MOLECULE_EPHEMERAL_DIRECTORY=tempfile.mkdtemp(prefix="ctv-replication-bench."))
    runs = []
    try:
        for number in range(1, args.runs + 1):
            print(f"run {number} of {args.runs}:", flush=True)
            runs.append(one_run(base_env, args.idle_samples))
    finally:
        run(["molecule", "destroy", "-s", SCENARIO], env=base_env, check=False)
    summary = medians(runs)
    report(runs, summary)
    write_results(
        "replication", args.label, {"options": vars(args), "poll_s": POLL_S, "medians": summary, "runs": runs}
    )


if __name__ == "__main__":
    main()
