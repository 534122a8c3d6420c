"""Shared bench machinery: serve apps with gunicorn, drive them with keep-alive load, report.

Everything runs on loopback and is bounded in time (each load run stops at its deadline) and in
count (`max_requests`). The load generator is plain Python (processes x threads, each thread
one http.client keep-alive connection) so it runs anywhere without wrk.
"""

from __future__ import annotations

import http.client
import json
import multiprocessing as mp
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
VENV_BIN = Path(sys.executable).parent

# One gunicorn configuration for tiergate AND the baseline, so the ratio compares apps only.
# `--config /dev/null`: without it gunicorn reads ./gunicorn.conf.py from the directory it runs
# in, which is tiergate's production file (an access log line per request, worker recycling)
# for tiergate and nothing for the baseline: the two would not be served the same way.
GUNICORN_ARGS = [
    "--config",
    "/dev/null",
    "--workers",
    os.environ.get("BENCH_WORKERS", "4"),
    "--worker-class",
    "gthread",
    "--threads",
    os.environ.get("BENCH_THREADS", "4"),
    "--keep-alive",
    "10",
    "--log-level",
    "warning",
    "--backlog",
    "256",
]


# -- servers --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A gunicorn process serving `app_spec` on a loopback port; stop() ends it (by its pid)."""

    def __init__(self, app_spec: str, env: dict[str, str] | None = None, chdir: Path = ROOT):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [
            str(VENV_BIN / "gunicorn"),
            *GUNICORN_ARGS,
            "--bind",
            f"127.0.0.1:{self.port}",
            "--chdir",
            str(chdir),
            app_spec,
        ]
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            command, env={**os.environ, **(env or {})}, stdout=self.log, stderr=self.log
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.output()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    time.sleep(1.0)  # let every worker finish importing before load starts
                    return
            except OSError:
                time.sleep(0.1)
        output = self.output()
        self.stop()
        raise RuntimeError(f"gunicorn did not listen within {timeout} s:\n{output}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by gunicorn's master and its workers."""
        return _cpu_seconds(lambda pid, ppid: self.process.pid in (pid, ppid))

    def output(self) -> str:
        if self.log.closed:
            return ""
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# -- load -----------------------------------------------------------------------------------


@dataclass
class Request:
    """What every connection sends: a JSON POST; `unique_key` adds a fresh idempotency key."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    unique_key: bool = False


@dataclass
class LoadResult:
    label: str
    seconds: float
    requests: int
    errors: int
    statuses: dict[int, int]
    rps: float
    p50_ms: float
    p99_ms: float
    # CPU microseconds per request, by who spent them: "server" (gunicorn and its workers),
    # "postgres" (every PostgreSQL process on the machine) and "load" (the load generator).
    # On a machine whose cores are all busy their sum is what a request costs.
    cpu_us: dict[str, int] = field(default_factory=dict)


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(include: Any) -> float:
    """CPU seconds of the live processes for which include(pid, ppid) holds (from /proc)."""
    total = 0
    proc = Path("/proc")
    for entry in proc.iterdir() if proc.is_dir() else ():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # ended meanwhile
        if include(int(entry.name), int(fields[1])):
            total += int(fields[11]) + int(fields[12])
    return total / _TICK


def _postgres_cpu_seconds() -> float:
    def is_postgres(pid: int, _ppid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/comm").read_text().strip() in ("postgres", "postmaster")
        except OSError:
            return False

    return _cpu_seconds(is_postgres)


def _children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _connection_loop(
    url: str,
    req: Request,
    deadline: float,
    budget: int,
    tag: str,
    out: list[tuple[float, int]],
    errors: list[int],
) -> None:
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"Content-Type": "application/json", **req.headers}
    body = req.body
    sent = 0
    while sent < budget and time.monotonic() < deadline:
        if req.unique_key:
            body = {**req.body, "idempotency_key": f"{tag}-{sent}-{uuid.uuid4().hex[:8]}"}
        payload = json.dumps(body)
        start = time.perf_counter()
        try:
            conn.request("POST", req.path, payload, headers)
            response = conn.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            errors[0] += 1
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            continue
        out.append((time.perf_counter() - start, response.status))
        sent += 1
    conn.close()


def _process_main(
    url: str, req: Request, threads: int, seconds: float, budget: int, proc: int, queue: Any
) -> None:
    deadline = time.monotonic() + seconds
    samples: list[tuple[float, int]] = []
    errors = [0]
    workers = [
        threading.Thread(
            target=_connection_loop,
            args=(url, req, deadline, budget, f"{os.getpid()}-{proc}-{t}", samples, errors),
        )
        for t in range(threads)
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    queue.put((samples, errors[0]))


def drive(
    label: str,
    url: str,
    req: Request,
    *,
    connections: int = 16,
    seconds: float = 10.0,
    processes: int = 2,
    max_requests: int = 2_000_000,
    server: Server | None = None,
) -> LoadResult:
    """Hold `connections` keep-alive connections busy for `seconds` (or `max_requests`).

    With `server`, the result also says how much CPU each request cost, and where."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    per_proc = [connections // processes + (i < connections % processes) for i in range(processes)]
    budget = max(1, max_requests // connections)
    procs = [
        ctx.Process(target=_process_main, args=(url, req, n, seconds, budget, i, queue))
        for i, n in enumerate(per_proc)
        if n
    ]
    cpu_before = _cpu_snapshot(server)
    start = time.perf_counter()
    for p in procs:
        p.start()
    samples: list[tuple[float, int]] = []
    errors = 0
    for _ in procs:
        got, errs = queue.get(timeout=seconds + 60)
        samples.extend(got)
        errors += errs
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - start
    cpu_after = _cpu_snapshot(server)
    latencies = sorted(s[0] for s in samples)
    return LoadResult(
        label=label,
        seconds=round(elapsed, 2),
        requests=len(samples),
        errors=errors,
        statuses=dict(Counter(s[1] for s in samples)),
        rps=round(len(samples) / elapsed, 1),
        p50_ms=round(_percentile(latencies, 50) * 1000, 2),
        p99_ms=round(_percentile(latencies, 99) * 1000, 2),
        cpu_us={
            who: round((cpu_after[who] - cpu_before[who]) * 1e6 / len(samples))
            for who in cpu_before
        }
        if server is not None and samples
        else {},
    )


def _cpu_snapshot(server: Server | None) -> dict[str, float]:
    if server is None:
        return {}
    # The load processes have ended (and been joined) before the second snapshot.
    return {
        "server": server.cpu_seconds(),
        "postgres": _postgres_cpu_seconds(),
        "load": _children_cpu_seconds(),
    }


def _percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    if len(sorted_values) == 1:
        return sorted_values[0]
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[int(pct) - 1]


# -- reporting ------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def print_table(rows: list[LoadResult]) -> None:
    print(
        f"{'run':<28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'requests':>9} "
        f"{'errors':>6}  {'CPU us/request: server + postgres + load = total':<50} statuses"
    )
    for r in rows:
        cpu = r.cpu_us
        split = (
            f"{cpu['server']} + {cpu['postgres']} + {cpu['load']} = {sum(cpu.values())}"
            if cpu
            else ""
        )
        print(
            f"{r.label:<28} {r.rps:>9.1f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} {r.requests:>9} "
            f"{r.errors:>6}  {split:<50} {r.statuses}"
        )


def write_results(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{name}-{stamp}.json"
    document = {
        "bench": name,
        "at": stamp,
        "machine": machine(),
        "gunicorn": GUNICORN_ARGS,
        **payload,
    }
    path.write_text(json.dumps(document, indent=2, default=_jsonable))
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, LoadResult):
        return asdict(value)
    raise TypeError(type(value))


# -- a tiergate to bench ----------------------------------------------------------------------

PG_ADMIN_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass
class PreparedTiergate:
    """A fresh database with the demo catalog published and a gate+accounts API key."""

    database_url: str
    api_key: str
    _drop: Any = None

    def env(self) -> dict[str, str]:
        return {
            "TIERGATE_DATABASE_URL": self.database_url,
            "TIERGATE_SECRET_KEY": "bench-secret-key-not-for-production",
            "TIERGATE_BASE_URL": "http://127.0.0.1:5000",
            "TIERGATE_BILLING_PROVIDER": "manual",
        }

    def drop(self) -> None:
        if self._drop is not None:
            self._drop()


def prepare_tiergate(db: str, pg_admin_url: str = PG_ADMIN_DEFAULT) -> PreparedTiergate:
    """Create the schema (create_all), publish examples/catalog.yaml, create an API key."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from gating import apikeys
    from tiergate.clock import SystemClock
    from tiergate.db import Database
    from tiers import store
    from tiers.loader import load_catalog_file

    drop = None
    if db == "sqlite":
        url = f"sqlite:///{tempfile.mkdtemp(prefix='tiergate-bench-')}/bench.sqlite3"
    elif db == "postgres":
        name = f"tiergate_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        admin_url = make_url(pg_admin_url).set(drivername="postgresql+psycopg")
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        url = url.replace("postgresql+psycopg://", "postgresql://", 1)

        def drop() -> None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    else:
        raise ValueError(f"db must be sqlite or postgres, not {db!r}")
    database = Database(url)
    database.create_all()
    clock = SystemClock()
    catalog, source = load_catalog_file(ROOT / "examples" / "catalog.yaml")
    with database.session() as session:
        store.publish(
            session, catalog, source=source, author="bench", note="bench", now=clock.now()
        )
        _, key = apikeys.create_key(session, clock, name="bench", scopes=["gate", "accounts"])
    database.engine.dispose()
    return PreparedTiergate(url, key, drop)


def tiergate_request(path: str, api_key: str, body: dict[str, Any], **kw: Any) -> Request:
    return Request(path, body, {"Authorization": f"Bearer {api_key}"}, **kw)


def api(url: str, api_key: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One JSON call to tiergate (setup and verification, not measured)."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request(
            method,
            path,
            None if body is None else json.dumps(body),
            {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"},
        )
        response = conn.getresponse()
        data = json.loads(response.read() or b"null")
    finally:
        conn.close()
    if response.status >= 400 and response.status != 402:
        raise RuntimeError(f"{method} {path} answered {response.status}: {data}")
    return data
