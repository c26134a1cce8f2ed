"""The four benchmark figures (B1-B4). Each returns rows of (figure, value, target, floor, unit, ok)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from registry.db import Database
from registry.migrate import upgrade

from . import datagen
from .harness import ROOT, Stack, drop_database, fresh_database, running
from .load import closed_loop, open_loop, run


@dataclass
class Row:
    figure: str
    value: float
    target: str
    floor: str
    unit: str
    ok: bool | None  # None: informational

    def as_dict(self) -> dict:
        return self.__dict__.copy()


@dataclass(frozen=True)
class Scale:
    linked_phones: int
    b1_flows: int
    b1_seconds: float
    results: int
    inbound: int
    announcement: int
    otp_flows: int
    small_registry: int
    large_registry: int
    import_rows: int
    concurrency: int


FULL = Scale(linked_phones=20_000, b1_flows=3_000, b1_seconds=20, results=1_000_000, inbound=100_000,
             announcement=100_000, otp_flows=200, small_registry=10_000, large_registry=1_000_000,
             import_rows=1_000_000, concurrency=32)
SMOKE = Scale(linked_phones=300, b1_flows=60, b1_seconds=2, results=2_000, inbound=200, announcement=300,
              otp_flows=10, small_registry=200, large_registry=2_000, import_rows=2_000, concurrency=8)

OTP_BASE = 5_000_000  # phone offsets: OTP flows use phones no other figure uses
INBOUND_BASE = 7_000_000


def prepare(url: str) -> Database:
    database = Database(url)
    upgrade(database.engine)
    return database


# --- B1 ----------------------------------------------------------------------------------------


def _flow_inputs(k: int) -> list[str]:
    """The activation flow of linked phone k: dial, choose 1, birth certificate, date of birth (OTP sent)."""
    return ["", "1", f"1*BC{k}", f"1*BC{k}*{datagen.dob_ddmmyyyy(k)}"]


async def _hop(session: aiohttp.ClientSession, base_url: str, sid: str, k: int, text: str) -> str:
    form = {"sessionId": sid, "serviceCode": "*384*1234#", "phoneNumber": datagen.phone(k),
            "networkCode": "63902", "text": text}
    async with session.post(f"{base_url}/ussd/africastalking", data=form) as resp:
        body = await resp.text()
        if resp.status != 200 or not body.startswith("CON "):
            raise RuntimeError(f"hop {text!r}: {resp.status} {body[:80]!r}")
        return body


def _ussd_op(base_url: str, hops: int, phone_offset: int = 0, modulo: int | None = None):
    """One flow of ``hops`` hops of the activation flow for linked phone i + offset (i wrapped at modulo)."""

    async def op(session: aiohttp.ClientSession, i: int) -> None:
        k = (i % modulo if modulo else i) + phone_offset
        sid = f"bench-{k}-{time.monotonic_ns()}"
        for text in _flow_inputs(k)[:hops]:
            await _hop(session, base_url, sid, k, text)

    return op


def _noop_op(base_url: str, hops: int):
    async def op(session: aiohttp.ClientSession, i: int) -> None:
        for _ in range(hops):
            async with session.post(f"{base_url}/ussd/africastalking", data={"text": ""}) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"noop {resp.status}")

    return op


def b1(stack: Stack, scale: Scale) -> list[Row]:
    with running(stack, workers=False, app="bench.noop_app:app"):
        run(closed_loop(_noop_op(stack.base_url, 3), scale.b1_flows // 5, scale.concurrency))  # warm-up
        noop = run(closed_loop(_noop_op(stack.base_url, 3), scale.b1_flows, scale.concurrency))
    with running(stack, workers=True):
        flow = _ussd_op(stack.base_url, 3, modulo=scale.linked_phones)
        run(closed_loop(flow, scale.b1_flows // 5, scale.concurrency, 0))  # warm-up
        peak = run(closed_loop(flow, scale.b1_flows, scale.concurrency, scale.b1_flows // 5))
        _raise_on_errors("B1 peak", peak)
        rate = 0.8 * peak.throughput
        start = scale.b1_flows + scale.b1_flows // 5
        steady = run(open_loop(flow, rate, scale.b1_seconds, start))
        _raise_on_errors("B1 at 80%", steady)
    ratio = peak.throughput / noop.throughput if noop.throughput else 0.0
    return [
        Row("B1 no-op three-request flows/s (baseline)", noop.throughput, "-", "-", "flows/s", None),
        Row("B1 USSD three-hop flows/s (peak)", peak.throughput, "-", "-", "flows/s", None),
        Row("B1 USSD / no-op throughput", ratio, ">= 0.6", ">= 0.4", "ratio", ratio >= 0.6),
        Row("B1 p50 flow latency at 80% of peak", steady.p50, "-", "-", "ms", None),
        Row("B1 p99 hop latency at 80% of peak", steady.p99 / 3, "< 50", "< 100", "ms", steady.p99 / 3 < 50),
    ]


# --- B2 ----------------------------------------------------------------------------------------


def b2(stack: Stack, scale: Scale) -> list[Row]:
    def inbound_op(base_url: str):
        async def op(session: aiohttp.ClientSession, i: int) -> None:
            first, _ = datagen.candidate(i)
            form = {"from": datagen.phone(INBOUND_BASE + i), "to": "22252", "text": f"KCSE {datagen.index_number(i)} {first}",
                    "date": "2026-01-09 10:00:00", "id": f"bench-in-{i}", "networkCode": "63902"}
            async with session.post(f"{base_url}/sms/africastalking/inbound", data=form) as resp:
                await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"inbound {resp.status}")

        return op

    with running(stack, workers=True):
        store = stack.redis()
        began = time.time()
        accepted = run(closed_loop(inbound_op(stack.base_url), scale.inbound, scale.concurrency))
        _raise_on_errors("B2 inbound", accepted)
        total = _wait_for_total(store, scale.inbound, idle_timeout=60)
        last = float(store.get("fakeat:last") or began)
        counts = [int(v) for v in store.hvals("fakeat:count")]
        # replay every message once: AT retries; nothing may be sent twice
        run(closed_loop(inbound_op(stack.base_url), min(scale.inbound, 1000), scale.concurrency))
        time.sleep(2)
        counts = [int(v) for v in store.hvals("fakeat:count")]
    delivered = len(counts)
    duplicated = sum(c - 1 for c in counts if c > 1)
    lost = scale.inbound - delivered
    e2e = total / (last - began) if last > began else 0.0
    return [
        Row("B2 inbound accepted/s", accepted.throughput, "-", "-", "msg/s", None),
        Row("B2 replies handed to AT/s (end to end)", e2e, ">= 1000", ">= 250", "msg/s", e2e >= 1000),
        Row("B2 lost", lost, "0", "0", "msgs", lost == 0),
        Row("B2 duplicated (incl. 1,000 replayed ids)", duplicated, "0", "0", "msgs", duplicated == 0),
    ]


def _wait_for_total(store, expected: int, idle_timeout: float) -> int:
    last_total, last_change = -1, time.time()
    while True:
        total = int(store.get("fakeat:total") or 0)
        if total >= expected:
            return total
        if total != last_total:
            last_total, last_change = total, time.time()
        elif time.time() - last_change > idle_timeout:
            return total
        time.sleep(0.2)


# --- B3 ----------------------------------------------------------------------------------------


def b3(stack: Stack, scale: Scale) -> list[Row]:
    with running(stack, workers=True):
        store = stack.redis()
        env = stack.env()
        announce = subprocess.Popen(
            [str(Path(sys.executable).parent / "elimu"), "announce", "--institution", "BANN",
             "--message", "Schools reopen on Monday 5 January. Fees balances are due by 31 January."],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        # start the OTP flows once the bulk backlog is really draining
        deadline = time.time() + 300
        while time.time() < deadline and int(store.get("fakeat:total") or 0) < min(1000, scale.announcement // 10):
            time.sleep(0.2)
        hop_times: dict[str, float] = {}

        def otp_op(base_url: str):
            async def op(session: aiohttp.ClientSession, i: int) -> None:
                k = i + OTP_BASE
                sid = f"b3-{k}-{time.monotonic_ns()}"
                *before, otp_hop = _flow_inputs(k)
                for text in before:
                    await _hop(session, base_url, sid, k, text)
                hop_times[datagen.phone(k)] = time.time()
                await _hop(session, base_url, sid, k, otp_hop)

            return op

        flows = run(open_loop(otp_op(stack.base_url), rate=5, seconds=scale.otp_flows / 5))
        _raise_on_errors("B3 OTP flows", flows)
        time.sleep(3)
        first_seen = {k.decode(): float(v) for k, v in store.hgetall("fakeat:first").items()}
        backlog = store.llen("rq:queue:sms-bulk")
        announce.wait(timeout=600)
    latencies = sorted((first_seen[p] - t) * 1000 for p, t in hop_times.items() if p in first_seen)
    missing = len(hop_times) - len(latencies)
    p95 = latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))] if latencies else float("inf")
    return [
        Row("B3 OTP hop -> AT p95 while bulk drains", p95, "< 1000", "< 3000", "ms", p95 < 1000 and missing == 0),
        Row("B3 OTPs not delivered", missing, "0", "0", "msgs", missing == 0),
        Row("B3 bulk backlog when OTPs were measured", backlog, "> 0", "-", "jobs", backlog > 0),
    ]


# --- B4 ----------------------------------------------------------------------------------------


def b4(stack_for, scale: Scale) -> list[Row]:
    latencies = {}
    for label, size in (("small", scale.small_registry), ("large", scale.large_registry)):
        name = f"elimu_bench_b4_{label}"
        url = fresh_database(name)
        database = prepare(url)
        with database.transaction() as session:
            school = datagen.institution(session, "B4SC", "Bench Registry School")
            datagen.learners_with_guardians(session, size, school)
        database.dispose()
        stack = stack_for(url)
        with running(stack, workers=True):
            op = _ussd_op(stack.base_url, 3)
            run(closed_loop(op, 200, 4, size - 400))  # warm-up
            # spread the measured flows over the whole registry so the index is exercised, not a cache line
            outcome = run(closed_loop(_spread(op, size), scale.b1_flows // 2, 4))
            _raise_on_errors(f"B4 {label}", outcome)
            latencies[label] = outcome.p50
        drop_database(name)
    ratio = latencies["large"] / latencies["small"] if latencies["small"] else float("inf")

    name = "elimu_bench_b4_import"
    url = fresh_database(name)
    prepare(url).dispose()
    with tempfile.TemporaryDirectory() as tmp:
        csv_path = datagen.learners_csv(Path(tmp) / "learners.csv", scale.import_rows)
        env = dict(os.environ, DATABASE_URL=url, ELIMU_ENV="production", ELIMU_SECRET_KEY="x" * 32)
        began = time.perf_counter()
        done = subprocess.run([str(Path(sys.executable).parent / "elimu"), "registry", "import-learners",
                               str(csv_path)], env=env, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - began
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    drop_database(name)
    if done.returncode != 0:
        raise RuntimeError(f"import failed ({done.returncode}): {done.stderr[-500:]}")
    rate = scale.import_rows / seconds
    return [
        Row(f"B4 hop p50 with {scale.small_registry:,} learners", latencies["small"] / 3, "-", "-", "ms", None),
        Row(f"B4 hop p50 with {scale.large_registry:,} learners", latencies["large"] / 3, "-", "-", "ms", None),
        Row("B4 large / small hop latency", ratio, "<= 1.2", "<= 1.5", "ratio", ratio <= 1.2),
        Row(f"B4 import of {scale.import_rows:,} CSV rows", rate, ">= 10000", ">= 5000", "rows/s", rate >= 10_000),
        Row("B4 import peak memory (max RSS of any child)", peak_mb, "bounded", "< 1024", "MiB", peak_mb < 1024),
    ]


def _spread(op, size: int):
    step = max(1, size // 997)

    async def spread(session, i: int) -> None:
        await op(session, (i * step) % size)

    return spread


def _raise_on_errors(what: str, outcome) -> None:
    if outcome.errors:
        raise RuntimeError(f"{what}: {outcome.errors} failed operations; first: {outcome.first_error}")
