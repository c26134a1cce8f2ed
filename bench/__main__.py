"""``python -m bench [--smoke] [--only B1,B2]``: run the benchmarks, print the table, write JSON.

See bench/README.md for the method.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from . import datagen
from .figures import FULL, INBOUND_BASE, OTP_BASE, SMOKE, THROTTLED_OTP_BASE, Row, b1, b2, b3, b4, prepare
from .harness import ROOT, Stack, drop_database, fresh_database, release_redis_db, reserve_redis_db

ANNOUNCE_BASE = 3_000_000
FIGURES = ("B1", "B2", "B3", "B4")


def seed(url: str, scale, wanted: set[str]) -> None:
    """The data the wanted figures use (B4 seeds its own databases)."""
    database = prepare(url)
    with database.transaction() as session:
        if "B1" in wanted:
            school = datagen.institution(session, "BSCH", "Bench Secondary School")
            datagen.learners_with_guardians(session, scale.linked_phones, school)
        if "B3" in wanted:
            school = datagen.institution(session, "BSCH", "Bench Secondary School")
            datagen.learners_with_guardians(session, scale.otp_flows, school, start=OTP_BASE)
            datagen.learners_with_guardians(session, scale.otp_flows, school, start=THROTTLED_OTP_BASE)
            announced = datagen.institution(session, "BANN", "Bench Announcement School")
            datagen.learners_with_guardians(session, scale.announcement, announced, start=ANNOUNCE_BASE)
        if "B2" in wanted:
            datagen.results(session, scale.results)
    datagen.analyze(database)
    database.dispose()
    assert ANNOUNCE_BASE + scale.announcement < INBOUND_BASE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="seconds-long run at toy scale (CI)")
    parser.add_argument("--only", default=",".join(FIGURES), help="comma-separated figures")
    args = parser.parse_args(argv)
    scale = SMOKE if args.smoke else FULL
    wanted = {f.strip().upper() for f in args.only.split(",")}
    if unknown := sorted(wanted - set(FIGURES)):
        parser.error(f"--only: no figure {', '.join(unknown)} (the figures are {', '.join(FIGURES)})")
    rows: list[Row] = []
    redis_db = reserve_redis_db()
    began = time.time()
    try:
        url = fresh_database("elimu_bench")
        print(f"seeding for {', '.join(sorted(wanted - {'B4'})) or 'nothing'}", file=sys.stderr)
        seeded = time.time()
        seed(url, scale, wanted)
        print(f"seeded in {time.time() - seeded:.0f} s", file=sys.stderr)
        stack = Stack(database_url=url, redis_db=redis_db, **_stack_overrides())
        figures = {"B1": lambda: b1(stack, scale), "B2": lambda: b2(stack, scale), "B3": lambda: b3(stack, scale),
                   "B4": lambda: b4(lambda u: Stack(database_url=u, redis_db=redis_db, **_stack_overrides()), scale)}
        for name, figure in figures.items():
            if name in wanted:
                print(f"running {name}", file=sys.stderr, end=" ", flush=True)
                started = time.time()
                rows += figure()
                print(f"({time.time() - started:.0f} s)", file=sys.stderr)
    finally:
        drop_database("elimu_bench")
        release_redis_db(redis_db)
    report(rows, scale, args.smoke, time.time() - began)
    # exit 1 only below a floor: a target missed with its floor met is reported, not a failure
    below_floor = [r for r in rows if r.verdict == "MISSED"]
    return 1 if below_floor and not args.smoke else 0


def _stack_overrides() -> dict[str, int]:
    """ELIMU_BENCH_{WEB_WORKERS,WEB_THREADS,SMS_WORKERS,URGENT_WORKERS}: try other process counts."""
    names = {"web_workers": "ELIMU_BENCH_WEB_WORKERS", "web_threads": "ELIMU_BENCH_WEB_THREADS",
             "sms_workers": "ELIMU_BENCH_SMS_WORKERS", "urgent_workers": "ELIMU_BENCH_URGENT_WORKERS"}
    return {field: int(os.environ[var]) for field, var in names.items() if os.environ.get(var)}


def report(rows: list[Row], scale, smoke: bool, seconds: float) -> None:
    width = max(len(r.figure) for r in rows) if rows else 10
    print(f"\n{'figure':<{width}}  {'value':>12}  {'unit':<8} {'target':<10} {'floor':<10} result")
    for r in rows:
        print(f"{r.figure:<{width}}  {r.value:>12,.2f}  {r.unit:<8} {r.target:<10} {r.floor:<10} {r.verdict}")
    judged = [r for r in rows if r.ok is not None]
    if smoke:
        print("\nsmoke run: toy scale, so the values and verdicts above mean nothing (it checks the bench runs)")
    else:
        print(f"\ntargets met: {sum(1 for r in judged if r.ok)} of {len(judged)}; "
              f"below the floor: {', '.join(r.figure for r in judged if r.verdict == 'MISSED') or 'none'}")
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out_dir / f"{'smoke' if smoke else 'bench'}-{stamp}.json"
    path.write_text(json.dumps({
        "when": stamp, "smoke": smoke, "seconds": round(seconds, 1), "scale": scale.__dict__,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "rows": [r.as_dict() for r in rows],
    }, indent=2))
    print(f"\nwritten: {Path(path).relative_to(ROOT)} ({seconds:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
