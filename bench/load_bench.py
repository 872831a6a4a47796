"""Load benchmark: one uvicorn process serving the 400,000-spot database,
20 concurrent logged-in clients (wrk on loopback) requesting a mix of
reports for a bounded time; requests/s, latency percentiles, non-2xx
answers and the server's peak memory.

    bench/load.sh [--duration 60] [--connections 20] [--threads 2]
                  [--runs 1] [--spots 400000] [--label NAME]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading

from reports_bench import Server

import _common as c


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        sys.exit("wrk is not installed (bench/load.sh installs it with apt-get when it can)")
    return found


def one_run(env: dict, args) -> dict:
    server = Server(env)
    try:
        cookie = server.login()
        status, _, _ = server.request("GET", "/reports/", headers={"Cookie": cookie})
        if status != 200:
            sys.exit(f"the session does not work: {status}")
        idle_rss, _ = server.rss_kb()
        peak = [idle_rss]
        stop = threading.Event()

        def sample():
            while not stop.wait(0.05):
                try:
                    peak[0] = max(peak[0], server.rss_kb()[0])
                except (OSError, KeyError):
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        run_env = dict(os.environ, COOKIE=cookie, USER_AGENT="ctv-bench", YEAR=str(c.YEAR))
        done = subprocess.run(
            [
                wrk_path(),
                f"-t{args.threads}",
                f"-c{args.connections}",
                f"-d{args.duration}s",
                "--timeout",
                "10s",
                "--latency",
                "-s",
                str(c.BENCH / "load.lua"),
                f"http://127.0.0.1:{server.port}",
            ],
            env=run_env,
            text=True,
            capture_output=True,
        )
        stop.set()
        sampler.join()
        rss, hwm = server.rss_kb()
        # one more request: the server still answers after the load
        status, _, _ = server.request("GET", "/health")
    finally:
        server.stop()
    if done.returncode != 0:
        sys.exit(f"wrk failed:\n{done.stdout}{done.stderr}")
    print(done.stdout)
    line = next(text for text in done.stdout.splitlines() if text.startswith("RESULT "))
    figures = json.loads(line[len("RESULT ") :])
    seconds = figures["duration_us"] / 1e6
    return {
        "requests_per_s": figures["requests"] / seconds,
        "requests": figures["requests"],
        "errors": figures["non_2xx"] + figures["socket_errors"] + figures["timeouts"],
        "non_2xx": figures["non_2xx"],
        "socket_errors": figures["socket_errors"],
        "timeouts": figures["timeouts"],
        "p50_ms": figures["p50_us"] / 1000,
        "p90_ms": figures["p90_us"] / 1000,
        "p95_ms": figures["p95_us"] / 1000,
        "p99_ms": figures["p99_us"] / 1000,
        "max_ms": figures["max_us"] / 1000,
        "idle_rss_mb": idle_rss / 1024,
        "peak_rss_mb_sampled": peak[0] / 1024,
        "vm_hwm_mb": hwm / 1024,
        "rss_after_mb": rss / 1024,
        "health_after": status,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--spots", type=int, default=c.SPOTS)
    parser.add_argument("--label", help="results file tag (default: commit)")
    args = parser.parse_args()
    wrk_path()
    _, env = c.report_database(args.spots)
    runs = []
    for i in range(args.runs):
        print(f"run {i + 1}/{args.runs}: {args.connections} clients for {args.duration}s ...", flush=True)
        runs.append(one_run(env, args))
    summary = {key: c.median([r[key] for r in runs]) for key in runs[0] if key != "health_after"}
    summary["errors"] = sum(r["errors"] for r in runs)
    print(
        f"requests/s {summary['requests_per_s']:.1f}  "
        f"p50 {summary['p50_ms']:.1f} ms  p95 {summary['p95_ms']:.1f} ms  "
        f"p99 {summary['p99_ms']:.1f} ms  errors {summary['errors']}  "
        f"peak RSS {summary['vm_hwm_mb']:.1f} MB"
    )
    c.write_results(
        "load",
        args.label,
        {
            "spots": args.spots,
            "duration_s": args.duration,
            "connections": args.connections,
            "threads": args.threads,
            "median": summary,
            "runs": runs,
        },
    )


if __name__ == "__main__":
    main()
