"""``python -m bench.hop_cpu``: the CPU one USSD hop of B1's flow costs in process, repeatably.

B1's three-hop flow (dial; ``1``; a birth certificate number: main menu, identifier prompt,
date-of-birth prompt) is sent through the real WSGI app (``gateway.app.create_app``, the fast path
as gunicorn calls it, no network) by distinct seeded phones, on a PostgreSQL database of its own
(or SQLite with ``--sqlite``) and a Redis database number reserved as ``bench/harness.py`` does.
Each hop's CPU is read with ``time.process_time_ns`` around the app's call; the figure is the median
(and p90) over batches of flows of a batch's CPU per hop, beside the same requests answered by B1's
no-op Flask app (``bench/noop_app.py``), so a run on a slower host can be told from slower code.
Every answer is checked against the screen B1 expects. ``--profile`` adds a round under cProfile
and prints its top entries.

``--against TREE`` compares this code with another copy of it (``git worktree add /tmp/hop-old
<commit>``; that copy must have this tool): the other copy's tool runs in a second process, and the
two take turns batch by batch, so a neighbour's load on the machine hits both alike; the report adds
the median of the paired batch ratios (this code's batch over the other's).

As under gunicorn (``gunicorn.conf.py``), the metrics are prometheus_client's multiprocess ones
(``--metrics local`` keeps the in-process registry, for tests that already imported it).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import datagen
from .figures import FLOW_SCREENS, _flow_inputs, _hop_form
from .harness import SECRET, drop_database, fresh_database
from .turns import (
    NO_TURNS,
    Turns,
    add_options,
    check_against,
    figures_of,
    hand_back,
    paired,
    redis_db,
    sides,
    start_other,
    stop_on_sigterm,
    stop_other,
)

HOPS = 3  # dial, ``1``, the birth certificate number (B1's flow)
KINDS = ("dial", "menu", "identifier")
Wsgi = Callable[[dict[str, Any], Callable[..., Any]], Any]


@dataclass
class Tally:
    """CPU (and wall) nanoseconds of each hop of a round, by batch and by kind of hop."""

    batch_cpu: list[float] = field(default_factory=list)  # a batch's CPU per hop, us
    by_kind: dict[str, list[int]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    wall: list[int] = field(default_factory=list)

    def merge(self, other: Tally) -> None:
        self.batch_cpu += other.batch_cpu
        self.wall += other.wall
        for kind, values in other.by_kind.items():
            self.by_kind[kind] += values


def percentile(values: list[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def environ_for(body: bytes) -> dict[str, Any]:
    """A hop's WSGI environ as gunicorn builds it for AT's POST."""
    return {
        "REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": "/ussd/africastalking", "QUERY_STRING": "",
        "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": str(len(body)),
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "REMOTE_PORT": "40000", "HTTP_HOST": "127.0.0.1:8000",
        "wsgi.version": (1, 0), "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    _start_response.status = status  # type: ignore[attr-defined]


def _call(app: Wsgi, environ: dict[str, Any]) -> bytes:
    result = app(environ, _start_response)
    try:
        return b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()


def run_round(app: Wsgi, phones: range, batch: int, label: str, *, check: bool = True,
              turns: Turns = NO_TURNS, profiler: Any = None) -> Tally:
    """B1's flow once for each phone, ``batch`` flows to a batch; every answer checked when ``check``;
    ``profiler`` (a ``cProfile.Profile``) sees the app's calls only."""
    tally = Tally()
    clock, wall = time.process_time_ns, time.perf_counter_ns
    spent = hops = 0
    for n, k in enumerate(phones, 1):
        if n % batch == 1 or batch == 1:
            turns.begin()
        sid = f"hopcpu-{label}-{k}-{time.monotonic_ns()}"
        for kind, text, expect in zip(KINDS, _flow_inputs(k)[:HOPS], FLOW_SCREENS, strict=False):
            environ = environ_for(_hop_form(sid, k, text))
            if profiler is not None:
                profiler.enable()
            began_wall, began = wall(), clock()
            body = _call(app, environ)
            used = clock() - began
            if profiler is not None:
                profiler.disable()
            tally.wall.append(wall() - began_wall)
            if check and not body.decode().startswith(expect):
                raise RuntimeError(f"phone {k}, hop {text!r}: {body[:80]!r} (expected {expect!r})")
            tally.by_kind[kind].append(used)
            spent += used
            hops += 1
        if n % batch == 0 or n == len(phones):
            tally.batch_cpu.append(spent / hops / 1000)
            spent = hops = 0
            turns.end()
    return tally


@contextlib.contextmanager
def _metrics_folder(mode: str) -> Iterator[None]:
    """Prometheus multiprocess metrics in a folder of their own, as gunicorn.conf.py sets them up."""
    if mode != "multiproc":
        yield
        return
    if "prometheus_client.values" in sys.modules and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        raise SystemExit("--metrics multiproc: prometheus_client is already loaded without it")
    with tempfile.TemporaryDirectory(prefix="elimu-hopcpu-metrics-") as folder:
        previous = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        try:
            yield
        finally:
            if previous is None:
                os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            else:
                os.environ["PROMETHEUS_MULTIPROC_DIR"] = previous


def build_apps(database_url: str, redis_url: str, instance: Path) -> tuple[Wsgi, Wsgi]:
    """The service's WSGI app as ``wsgi.py`` builds it for gunicorn, and B1's no-op app."""
    from gateway.app import create_app
    from gateway.config import Settings

    from .noop_app import app as noop

    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "ELIMU_ENV": "production",
           "ELIMU_SECRET_KEY": SECRET, "ELIMU_INSTANCE_PATH": str(instance), "ELIMU_LOG_FORMAT": "json",
           "ELIMU_SMS_RATE": "100000"}
    return create_app(Settings.from_env(env)), noop


def seed(database_url: str, phones: int) -> None:
    """The schema at the migrations' head and ``phones`` linked phones, as B1 seeds them."""
    from .figures import prepare

    database = prepare(database_url)
    with database.transaction() as session:
        school = datagen.institution(session, "BSCH", "Bench Secondary School")
        datagen.learners_with_guardians(session, phones, school)
    if database.engine.dialect.name == "postgresql":
        datagen.analyze(database)
    database.dispose()


def measure(database_url: str, redis_url: str, args: argparse.Namespace, out: Any = sys.stdout,
            turns: Turns = NO_TURNS) -> dict[str, Any]:
    """Seed, warm up, run the rounds (and the profile); print and return the figures."""
    import redis

    seed(database_url, args.flows)
    store = redis.Redis.from_url(redis_url)
    with tempfile.TemporaryDirectory(prefix="elimu-hopcpu-") as instance:
        app, noop = build_apps(database_url, redis_url, Path(instance))
        phones = range(args.flows)
        store.flushdb()
        run_round(app, range(min(args.flows, args.warmup)), args.batch, "warm")
        run_round(noop, range(min(args.flows, args.warmup)), args.batch, "warm", check=False)
        hop, base = Tally(), Tally()
        per_round: list[tuple[float, float]] = []
        for number in range(args.rounds):
            store.flushdb()  # no resume points or hop counts left from the round before
            this = run_round(app, phones, args.batch, f"r{number}", turns=turns)
            idle = run_round(noop, phones, args.batch, f"n{number}", check=False, turns=turns)
            hop.merge(this)
            base.merge(idle)
            per_round.append((statistics.median(this.batch_cpu), statistics.median(idle.batch_cpu)))
        if args.profile and turns is NO_TURNS:
            store.flushdb()
            _profile(app, phones, args, out)
        store.flushdb()
    figures = {
        "batches": hop.batch_cpu,
        "noop_batches": base.batch_cpu,
        "hop_cpu_us_median": statistics.median(hop.batch_cpu),
        "hop_cpu_us_p90": percentile(hop.batch_cpu, 90),
        "noop_cpu_us_median": statistics.median(base.batch_cpu),
        "by_kind_us_median": {kind: statistics.median(v) / 1000 for kind, v in hop.by_kind.items()},
        "hop_wall_us_median": statistics.median(hop.wall) / 1000,
        "rounds": per_round,
    }
    print(f"code: {Path(sys.modules['gateway'].__file__ or '').parent.parent}; {args.rounds} rounds of "
          f"{args.flows} flows ({HOPS * args.flows} hops), batches of {args.batch} flows; "
          f"{'SQLite' if database_url.startswith('sqlite') else 'PostgreSQL'}, metrics {args.metrics}", file=out)
    print(f"hop CPU per hop (us): median {figures['hop_cpu_us_median']:.1f}, p90 {figures['hop_cpu_us_p90']:.1f} "
          f"(over {len(hop.batch_cpu)} batches); no-op app {figures['noop_cpu_us_median']:.1f}; "
          f"ratio {figures['hop_cpu_us_median'] / figures['noop_cpu_us_median']:.2f}", file=out)
    print("by hop (median us): " + ", ".join(f"{k} {v:.1f}" for k, v in figures["by_kind_us_median"].items())
          + f"; wall median {figures['hop_wall_us_median']:.1f}", file=out)
    print("rounds (hop / no-op median us): " + ", ".join(f"{h:.1f}/{n:.1f}" for h, n in per_round), file=out)
    return figures


def _profile(app: Wsgi, phones: range, args: argparse.Namespace, out: Any) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile(time.process_time)  # CPU, not the wall time spent waiting for Redis
    run_round(app, phones, args.batch, "profile", profiler=profiler)
    stats = pstats.Stats(profiler, stream=out)
    print(f"\ncProfile of one round ({HOPS * len(phones)} hops), the app's calls only, by own CPU time:", file=out)
    stats.sort_stats("tottime").print_stats(args.profile)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.hop_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=1000, help="flows a round, each a phone of its own (1000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds, each followed by the no-op app's (5)")
    parser.add_argument("--batch", type=int, default=50, help="flows a batch: the median is over batches (50)")
    parser.add_argument("--warmup", type=int, default=200, help="flows sent first and not counted (200)")
    parser.add_argument("--sqlite", action="store_true", help="SQLite in a temporary folder, not PostgreSQL")
    parser.add_argument("--metrics", choices=("multiproc", "local"), default="multiproc")
    add_options(parser, profile_top=30)
    args = parser.parse_args(argv)
    if min(args.flows, args.rounds, args.batch) < 1 or args.warmup < 0:
        parser.error("--flows, --rounds and --batch must be 1 or more, --warmup 0 or more")
    check_against(parser, args.against, "hop_cpu")
    stop_on_sigterm()
    other = start_other("bench.hop_cpu", args.against, _turns_argv(args)) if args.against is not None else None
    try:
        turns, out = sides(args.taking_turns, other)
        with redis_db(args.redis_url) as redis_url, _metrics_folder(args.metrics), \
                tempfile.TemporaryDirectory(prefix="elimu-hopcpu-db-") as folder:
            if args.sqlite:
                figures = measure(f"sqlite:///{folder}/hopcpu.sqlite3", redis_url, args, out, turns)
            else:
                try:
                    figures = measure(fresh_database("elimu_hopcpu"), redis_url, args, out, turns)
                finally:
                    drop_database("elimu_hopcpu")
        if args.taking_turns:
            hand_back(figures)
        elif other is not None:
            _compare(figures, figures_of(other), args.against)
    finally:
        if other is not None:
            stop_other(other)
    return 0


def _turns_argv(args: argparse.Namespace) -> list[str]:
    """The other copy's measurement: the same as this one's."""
    return ["--flows", str(args.flows), "--rounds", str(args.rounds), "--batch", str(args.batch), "--warmup",
            str(args.warmup), "--metrics", args.metrics, *(["--sqlite"] if args.sqlite else [])]


def _compare(this: dict[str, Any], other: dict[str, Any], tree: Path) -> None:
    """The two copies' figures side by side, and the median of their paired batches' ratios."""
    print(f"against {tree}: hop CPU per hop median {other['hop_cpu_us_median']:.1f} us there, "
          f"{this['hop_cpu_us_median']:.1f} here; no-op {other['noop_cpu_us_median']:.1f} there, "
          f"{this['noop_cpu_us_median']:.1f} here")
    print(f"paired batches, here / there (median of {len(this['batches'])}): hop {paired(this['batches'], other['batches']):.3f}, "
          f"no-op {paired(this['noop_batches'], other['noop_batches']):.3f}")


if __name__ == "__main__":
    sys.exit(main())
