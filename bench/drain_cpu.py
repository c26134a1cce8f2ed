"""``python -m bench.drain_cpu``: the CPU the inbound drain of B2 costs a message, in process, repeatably.

B2's texts (``KCSE <index> <first name>``, each from a phone of its own, a right name) are stored
as the webhook stores them (``workers.inbound.receive``: the row, its id pushed for the drains) on a
PostgreSQL database of its own (``elimu_drain_cpu_<pid>``, seeded with ``--results`` released
results, dropped at the end) and a Redis database number reserved as ``bench/harness.py`` does. Then
they are drained as a drain job does, a batch of ``workers.inbound.BATCH`` ids at a time: the claim,
the answers and their outbox rows (``workers.inbound.answer``), then the sending of the replies
(``workers.inbound.send_replies``) through the real Africa's Talking backend, SDK included, with
only its HTTP exchange (``workers.backends.africastalking._post``) replaced by a stub answering as
the bench's fake AT does, so sending costs what it costs the worker and nothing of a server.

The figures: this process's CPU (``time.process_time``, every thread: the backend's sending
threads too) per message for the drain and for the sending, median over batches, and the
PostgreSQL server's CPU per message, read from ``/proc`` for the backends of this database only
(the other users of the server are not counted). Every reply is checked to be the candidate's
results. ``--profile`` adds a round under cProfile and prints its top entries.

``--against TREE`` compares this code with another copy of it (``git worktree add /tmp/drain-old
<commit>``; that copy must have this tool): the other copy's tool runs in a second process, on a
database and Redis db of its own, and the two take turns batch by batch (``bench.turns``), so
a neighbour's load on this shared machine hits both alike; the report adds the median of the paired
batch ratios (this code's batch over the other's) and both sides' PostgreSQL CPU a message.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import datagen
from .figures import INBOUND_BASE, prepare
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

DATABASE = "elimu_drain_cpu"
_TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Tally:
    """A round's CPU, in microseconds per message: each batch's drain and send, and PostgreSQL's."""

    drain: list[float] = field(default_factory=list)
    send: list[float] = field(default_factory=list)
    messages: int = 0
    drain_total: float = 0.0  # seconds
    send_total: float = 0.0
    server_total: float = 0.0


def stub_post(url: str, headers: Mapping[str, str], data: Mapping[str, Any], timeout: Any) -> tuple[int, str, str]:
    """What ``bench/fake_at.py`` answers to a send, without the network: 201, one entry per recipient."""
    numbers = [n for n in str(data.get("to", "")).split(",") if n]
    entries = [{"statusCode": 101, "number": number, "status": "Success", "cost": "KES 0.8000",
                "messageId": f"ATXid_drain{next(stub_post.ids)}"} for number in numbers]  # type: ignore[attr-defined]
    body = {"SMSMessageData": {"Message": f"Sent to {len(entries)}/{len(entries)} Total Cost: KES 0.8",
                               "Recipients": entries}}
    stub_post.sent += len(numbers)  # type: ignore[attr-defined]
    return 201, "application/json", json.dumps(body)


stub_post.ids = iter(range(1, 1 << 62))  # type: ignore[attr-defined]
stub_post.sent = 0  # type: ignore[attr-defined]


def server_seconds(runtime: Any) -> float:
    """CPU seconds so far of the PostgreSQL backends serving this database (``/proc``)."""
    from sqlalchemy import text

    with runtime.db.engine.connect() as connection:
        pids = [row[0] for row in connection.execute(text(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"))]
    total = 0.0
    for pid in pids:
        with contextlib.suppress(OSError):
            raw = Path(f"/proc/{pid}/stat").read_text()
            fields = raw[raw.rindex(")") + 2:].split()
            total += sum(int(f) for f in fields[11:13]) / _TICK
    return total


def build_runtime(database_url: str, redis_url: str, instance: Path) -> Any:
    """A worker's runtime: production settings, the AT backend (its HTTP exchange stubbed)."""
    from gateway.config import Settings
    from gateway.runtime import Runtime
    from workers import context
    from workers.backends import africastalking

    env = {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "ELIMU_ENV": "production",
           "ELIMU_SECRET_KEY": SECRET, "ELIMU_INSTANCE_PATH": str(instance), "ELIMU_LOG_FORMAT": "json",
           "SMS_BACKEND": "africastalking", "AT_USERNAME": "benchuser", "AT_API_KEY": "bench-key",
           "AT_API_BASE_URL": "http://127.0.0.1:9/version1", "ELIMU_SMS_RATE": "100000"}
    africastalking._post = stub_post  # type: ignore[assignment]
    runtime = Runtime.build(Settings.from_env(env))
    context.use_runtime(runtime)
    return runtime


def seed(database_url: str, results: int) -> None:
    """The schema at the migrations' head and ``results`` released KCSE results, as B2 seeds them."""
    database = prepare(database_url)
    with database.transaction() as session:
        datagen.results(session, results)
    datagen.analyze(database)
    database.dispose()


def store(runtime: Any, start: int, count: int, results: int) -> None:
    """``count`` of B2's texts, stored as the webhook stores them (B2's message ``i`` for each)."""
    from workers.inbound import receive

    for i in range(start, start + count):
        k = i % results
        first, _ = datagen.candidate(k)
        receive(runtime, provider_id=f"drain-cpu-{i}", sender=datagen.phone(INBOUND_BASE + i), text=(
            f"KCSE {datagen.index_number(k)} {first}"), short_code="22252", network_code="63902")


def before_a_burst(runtime: Any) -> None:
    """Statistics of the inbound texts as a service has them before a results-day burst: every
    text answered (B2's seeding analyses the empty table). Autovacuum may take them again later."""
    from sqlalchemy import text

    with runtime.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE inbound_messages"))


def drain_round(runtime: Any, expected: int, profiler: Any = None, turns: Turns = NO_TURNS) -> Tally:
    """Drain the stored texts a batch at a time as ``workers.inbound.drain`` does, timing the answer
    and the send of each batch apart; checks that every text got its results reply."""
    from workers.inbound import BATCH, PENDING_KEY, answer, send_replies

    tally = Tally()
    clock = time.process_time
    sent_before = stub_post.sent  # type: ignore[attr-defined]
    server_before = server_seconds(runtime)
    for _ in range(-(-expected // BATCH)):  # as many batches on both sides of --against
        turns.begin()
        raw = runtime.redis.lpop(PENDING_KEY, BATCH) or []
        ids = sorted({int(x) for x in raw})
        if not ids:  # fewer texts than batches: a check below says so
            turns.end()
            continue
        if profiler is not None:
            profiler.enable()
        began = clock()
        claimed = answer(runtime, ids)
        answered = clock()
        send_replies(runtime, claimed)
        done = clock()
        if profiler is not None:
            profiler.disable()
        if len(claimed) != len(ids) or any(not c.body.startswith("KCSE 2025 ") for c in claimed):
            raise RuntimeError(f"a batch of {len(ids)} texts got {len(claimed)} replies, or not their results: "
                               f"{claimed[0].body[:60] if claimed else '-'!r}")
        tally.drain.append(1e6 * (answered - began) / len(ids))
        tally.send.append(1e6 * (done - answered) / len(ids))
        tally.drain_total += answered - began
        tally.send_total += done - answered
        tally.messages += len(ids)
        turns.end()
    tally.server_total = server_seconds(runtime) - server_before
    sent = stub_post.sent - sent_before  # type: ignore[attr-defined]
    if tally.messages != expected or sent != expected:
        raise RuntimeError(f"{expected} texts stored, {tally.messages} drained, {sent} replies sent")
    return tally


def measure(database_url: str, redis_url: str, args: argparse.Namespace, out: Any = sys.stdout,
            turns: Turns = NO_TURNS) -> dict[str, Any]:
    """Seed, warm up, run the rounds (and the profile); print and return the figures."""
    seed(database_url, args.results)
    with tempfile.TemporaryDirectory(prefix="elimu-draincpu-") as instance:
        runtime = build_runtime(database_url, redis_url, Path(instance))
        runtime.redis.flushdb()
        start = 0
        store(runtime, start, args.warmup, args.results)
        drain_round(runtime, args.warmup)
        before_a_burst(runtime)
        start += args.warmup
        rounds: list[Tally] = []
        for _ in range(args.rounds):
            store(runtime, start, args.messages, args.results)
            start += args.messages
            rounds.append(drain_round(runtime, args.messages, turns=turns))
        if args.profile and turns is NO_TURNS:
            import cProfile
            import pstats

            store(runtime, start, args.messages, args.results)
            profiler = cProfile.Profile(time.process_time)
            drain_round(runtime, args.messages, profiler)
            print(f"\ncProfile of one round ({args.messages} texts), drain and send, by own CPU time:", file=out)
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.profile)
        runtime.redis.flushdb()
        runtime.close()
    drain = [v for r in rounds for v in r.drain]
    send = [v for r in rounds for v in r.send]
    messages = sum(r.messages for r in rounds)
    figures = {
        "drain": drain,
        "send": send,
        "drain_us_median": statistics.median(drain),
        "send_us_median": statistics.median(send),
        "drain_us_mean": 1e6 * sum(r.drain_total for r in rounds) / messages,
        "send_us_mean": 1e6 * sum(r.send_total for r in rounds) / messages,
        "server_us_mean": 1e6 * sum(r.server_total for r in rounds) / messages,
        "rounds": [(statistics.median(r.drain), statistics.median(r.send), 1e6 * r.server_total / r.messages)
                   for r in rounds],
    }
    print(f"code: {Path(sys.modules['workers'].__file__ or '').parent.parent}; {args.rounds} rounds of "
          f"{args.messages} texts against {args.results} results, batches of up to 200", file=out)
    print(f"CPU per message (us), median over {len(drain)} batches: drain {figures['drain_us_median']:.1f}, "
          f"send {figures['send_us_median']:.1f}; means drain {figures['drain_us_mean']:.1f}, send "
          f"{figures['send_us_mean']:.1f}, PostgreSQL {figures['server_us_mean']:.1f}", file=out)
    print("rounds (drain / send / PostgreSQL us): "
          + ", ".join(f"{d:.1f}/{s:.1f}/{p:.1f}" for d, s, p in figures["rounds"]), file=out)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drain_cpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=4000, help="texts a round (4000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (3)")
    parser.add_argument("--results", type=int, default=100_000, help="released results seeded (100000)")
    parser.add_argument("--warmup", type=int, default=400, help="texts drained first and not counted (400)")
    add_options(parser, profile_top=40)
    args = parser.parse_args(argv)
    if min(args.messages, args.rounds, args.results) < 1 or args.warmup < 0:
        parser.error("--messages, --rounds and --results must be 1 or more, --warmup 0 or more")
    check_against(parser, args.against, "drain_cpu")
    stop_on_sigterm()
    other = start_other("bench.drain_cpu", args.against, _turns_argv(args)) if args.against is not None else None
    try:
        turns, out = sides(args.taking_turns, other)
        with redis_db(args.redis_url) as redis_url:
            try:
                figures = measure(fresh_database(DATABASE), redis_url, args, out, turns)
            finally:
                drop_database(DATABASE)
        if args.taking_turns:
            hand_back(figures)
        elif other is not None:
            _compare(figures, figures_of(other), args.against)
    finally:
        if other is not None:
            stop_other(other)
    return 0


def _turns_argv(args: argparse.Namespace) -> list[str]:
    """The other copy's measurement: the same as this one's (its own database, its own Redis db)."""
    return ["--messages", str(args.messages), "--rounds", str(args.rounds), "--results", str(args.results),
            "--warmup", str(args.warmup)]


def _compare(this: dict[str, Any], other: dict[str, Any], tree: Path) -> None:
    """The two copies' figures side by side, and the median of their paired batches' ratios."""
    print(f"against {tree}: there drain {other['drain_us_median']:.1f}, send {other['send_us_median']:.1f}, "
          f"PostgreSQL {other['server_us_mean']:.1f} us a message; here drain {this['drain_us_median']:.1f}, "
          f"send {this['send_us_median']:.1f}, PostgreSQL {this['server_us_mean']:.1f}")
    drain, send = paired(this["drain"], other["drain"]), paired(this["send"], other["send"])
    server = this["server_us_mean"] / max(other["server_us_mean"], 1e-9)
    print(f"paired batches, here / there (median of {len(this['drain'])}): drain {drain:.3f}, send {send:.3f}; "
          f"PostgreSQL (totals) {server:.3f}")


if __name__ == "__main__":
    sys.exit(main())
