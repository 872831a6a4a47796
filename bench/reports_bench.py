"""Reports benchmark: each of the four reports at 400,000 spots, cold and
warm, in-process (Flask test client) and through real uvicorn over HTTP with
a logged-in session, next to SQLite alone running the report's aggregation
over the spots table in the same run.

    bench/reports.sh [--runs 7] [--spots 400000] [--label NAME]

Bare SQL: the aggregation over the spots table that computes the report's
figures (fixed in this file).  App SQL: the queries the report runs now,
read from the application (the same as bare SQL before the report totals
existed).

First: the first request for each report in a new application (in-process)
or a newly started server (HTTP), which also loads templates.  Cold: the
first request after the data version changed (an empty month closed and
reopened: every figure computed again, nothing else to load).  Warm: the
same request repeated on unchanged data.  Every request opens
its own SQLite connection (as the application does), so SQLite's page
cache is empty each time; the operating system's file cache is warm.
"""

from __future__ import annotations

import argparse
import http.client
import re
import subprocess
import sys
import time
from pathlib import Path

import _common as c

Y = c.YEAR
REPORTS = {
    "revenue": f"/reports/revenue?year={Y}",
    "ae": f"/reports/ae?year={Y}",
    "languages": f"/reports/languages?year={Y}",
    "months": "/reports/months",
}

# What SQLite alone needs to compute each report's figures from the spots
# table: the aggregation queries the reports ran before any summary or
# cache existed (fixed here so that every run measures the same work).
_SPAN = {"first": f"{Y}-01", "last": f"{Y}-12"}
BARE = {
    "revenue": [
        (
            """SELECT DISTINCT sales_person, revenue_type, market FROM spots
            WHERE broadcast_month BETWEEN :first AND :last
              AND revenue_type <> 'Trade'""",
            _SPAN,
        ),
        (
            """SELECT c.name, t.month, t.amount FROM (
              SELECT customer_id, broadcast_month AS month,
                     SUM(gross_rate) AS amount
              FROM spots WHERE broadcast_month BETWEEN :first AND :last
                AND revenue_type <> 'Trade'
              GROUP BY customer_id, broadcast_month) AS t
            JOIN customers AS c ON c.id = t.customer_id""",
            _SPAN,
        ),
    ],
    "ae": [
        (
            """SELECT COALESCE(sales_person, '(unassigned)') AS ae,
                   broadcast_month AS month, SUM(gross_rate)
            FROM spots WHERE broadcast_month BETWEEN :first AND :last
              AND revenue_type <> 'Trade' GROUP BY month, ae""",
            {"first": f"{Y - 1}-01", "last": f"{Y}-12"},
        ),
        (
            """SELECT sales_person, broadcast_month, amount FROM budgets
            WHERE broadcast_month BETWEEN :first AND :last""",
            _SPAN,
        ),
    ],
    "languages": [
        (
            """SELECT COALESCE(language_code, '(none)') AS language,
                   COALESCE(market, '(none)') AS market, COUNT(*),
                   SUM(gross_rate)
            FROM spots WHERE broadcast_month BETWEEN :first AND :last
              AND revenue_type <> 'Trade' GROUP BY language, market""",
            _SPAN,
        ),
    ],
    "months": [
        (
            """SELECT broadcast_month, COUNT(*),
              SUM(CASE WHEN revenue_type <> 'Trade' THEN gross_rate END),
              SUM(CASE WHEN revenue_type <> 'Trade' THEN station_net END),
              MAX(import_batch_id)
            FROM spots GROUP BY broadcast_month""",
            {},
        ),
    ],
}


def app_queries() -> dict:
    """The SQL each report itself runs now (taken from the application's
    report modules), with the parameters of the benchmark's URLs."""
    from src.web.reports import ae, languages, months, revenue

    prior = {"first": f"{Y - 1}-01", "last": f"{Y}-12"}
    return {
        "revenue": [
            (revenue.OPTIONS_SQL, _SPAN),
            (revenue.REVENUE_SQL, {**_SPAN, "measure": "gross", "ae": None, "revenue_type": None, "market": None}),
        ],
        "ae": [(ae.BOOKED_SQL, prior), (ae.BUDGET_SQL, _SPAN)],
        "languages": [(languages.LANGUAGE_MARKET_SQL, {**_SPAN, "measure": "gross"})],
        "months": [(months.MONTHS_SQL, {}), (months.CLOSURES_SQL, {}), (months.BATCHES_SQL, {})],
    }


def bare_sql(db_path: Path, runs: int, queries_of: dict = BARE) -> dict:
    """Cold: a new connection's first run; warm: repeated on it."""
    from src import db

    out = {}
    for name, queries in queries_of.items():
        cold, warm = [], []
        for _ in range(runs):
            conn = db.connect(db_path)
            for i in range(4):
                started = time.perf_counter()
                for sql, params in queries:
                    conn.execute(sql, params).fetchall()
                (cold if i == 0 else warm).append(time.perf_counter() - started)
            conn.close()
        out[name] = {"cold_s": cold, "warm_s": warm}
    return out


def _login_test_client(app):
    client = app.test_client()
    page = client.get("/auth/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)[1]
    response = client.post("/auth/login", data={"username": c.USER, "password": c.PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.status_code
    return client


def invalidate(db_path: Path) -> None:
    """Make every report compute afresh without changing any figure: close
    and reopen a month that holds nothing (each bumps the data version)."""
    from src import db

    conn = db.connect(db_path)
    try:
        db.close_month(conn, "2099-01", "bench")
        db.reopen_month(conn, "2099-01")
    finally:
        conn.close()


def measure(get, db_path: Path, runs: int) -> dict:
    """first: the first request of each report in a new process; cold: the
    first after the data changed; warm: the same request repeated."""
    out = {name: {"first_s": [], "cold_s": [], "warm_s": []} for name in REPORTS}
    for name, url in REPORTS.items():
        out[name]["first_s"].append(get(url))
    for _ in range(runs):
        invalidate(db_path)
        for name, url in REPORTS.items():
            out[name]["cold_s"].append(get(url))
            out[name]["warm_s"] += [get(url) for _ in range(3)]
    return out


def in_process(db_path: Path, runs: int) -> dict:
    from src.web import create_app

    client = _login_test_client(create_app({"DATABASE_PATH": str(db_path), "SECRET_KEY": c.SECRET}))

    def get(url):
        started = time.perf_counter()
        response = client.get(url)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, (url, response.status)
        return elapsed

    return measure(get, db_path, runs)


class Server:
    """uvicorn as production runs it: one process on loopback."""

    def __init__(self, env: dict):
        self.port = c.free_port()
        uvicorn = str(Path(sys.executable).with_name("uvicorn"))
        self.proc = subprocess.Popen(
            [
                uvicorn,
                "src.web.asgi:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            cwd=c.APP,
            env=env,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.request("GET", "/health")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.stop()
                sys.exit("uvicorn did not start")
            time.sleep(0.1)

    def request(self, method, path, body=None, headers=None, conn=None):
        own = conn is None
        conn = conn or http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers={"User-Agent": "ctv-bench", **(headers or {})})
            response = conn.getresponse()
            data = response.read()
            return response.status, response, data
        finally:
            if own:
                conn.close()

    def login(self) -> str:
        """The session cookie (name=value) of a logged-in viewer."""
        status, response, data = self.request("GET", "/auth/login")
        cookie = response.getheader("Set-Cookie").split(";")[0]
        token = re.search(rb'name="csrf_token"[^>]*value="([^"]+)"', data)[1].decode()
        from urllib.parse import urlencode

        status, response, _ = self.request(
            "POST",
            "/auth/login",
            body=urlencode({"username": c.USER, "password": c.PASSWORD, "csrf_token": token}),
            headers={"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"},
        )
        if status != 302:
            sys.exit(f"login failed: {status}")
        return response.getheader("Set-Cookie").split(";")[0]

    def rss_kb(self) -> tuple[int, int]:
        """(VmRSS, VmHWM) of the server process in KiB."""
        values = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
        return values["VmRSS"], values["VmHWM"]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def over_http(db_path: Path, env: dict, runs: int) -> dict:
    server = Server(env)
    try:
        cookie = server.login()
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)

        def get(url):
            started = time.perf_counter()
            status, _, _ = server.request("GET", url, headers={"Cookie": cookie}, conn=conn)
            elapsed = time.perf_counter() - started
            assert status == 200, (url, status)
            return elapsed

        out = measure(get, db_path, runs)
        conn.close()
    finally:
        server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--spots", type=int, default=c.SPOTS)
    parser.add_argument("--label", help="results file tag (default: commit)")
    args = parser.parse_args()

    db_path, env = c.report_database(args.spots)
    print(f"measuring ({args.runs} runs) ...", flush=True)
    bare = bare_sql(db_path, args.runs)
    own = bare_sql(db_path, args.runs, app_queries())
    local = in_process(db_path, args.runs)
    http_ = over_http(db_path, env, args.runs)
    bare_again = bare_sql(db_path, args.runs)  # conditions may drift
    for name in bare:
        for key in ("cold_s", "warm_s"):
            bare[name][key] += bare_again[name][key]

    table = {}
    print()
    print(
        f"{'report':10} {'bare SQL':>9} {'app SQL':>8} {'cold':>8} "
        f"{'warm':>8} "
        f"{'HTTP cold':>10} {'HTTP warm':>10} {'cold/bare':>10} "
        f"{'bare/warm':>10}   (medians, ms)"
    )
    for name in REPORTS:
        row = {
            "bare_sql_ms": c.median(bare[name]["cold_s"]) * 1000,
            "bare_sql_warm_conn_ms": c.median(bare[name]["warm_s"]) * 1000,
            "app_sql_ms": c.median(own[name]["cold_s"]) * 1000,
            "first_ms": c.median(local[name]["first_s"]) * 1000,
            "cold_ms": c.median(local[name]["cold_s"]) * 1000,
            "warm_ms": c.median(local[name]["warm_s"]) * 1000,
            "http_first_ms": c.median(http_[name]["first_s"]) * 1000,
            "http_cold_ms": c.median(http_[name]["cold_s"]) * 1000,
            "http_warm_ms": c.median(http_[name]["warm_s"]) * 1000,
        }
        row["cold_over_bare"] = row["cold_ms"] / row["bare_sql_ms"]
        row["bare_over_warm"] = row["bare_sql_ms"] / row["warm_ms"]
        table[name] = row
        print(
            f"{name:10} {row['bare_sql_ms']:9.1f} {row['app_sql_ms']:8.1f} "
            f"{row['cold_ms']:8.1f} "
            f"{row['warm_ms']:8.1f} {row['http_cold_ms']:10.1f} "
            f"{row['http_warm_ms']:10.1f} {row['cold_over_bare']:10.2f} "
            f"{row['bare_over_warm']:10.1f}"
        )
    c.write_results(
        "reports",
        args.label,
        {
            "spots": args.spots,
            "runs": args.runs,
            "urls": REPORTS,
            "median": table,
            "samples_s": {"bare_sql": bare, "app_sql": own, "in_process": local, "http": http_},
        },
    )


if __name__ == "__main__":
    main()
