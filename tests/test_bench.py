"""The benchmark's verdicts (target, floor) and its CPU accounting (``bench/cpu.py``)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import cpu
from bench.figures import Row

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.mark.parametrize(
    ("value", "target", "floor", "ok", "verdict"),
    [
        (522.0, ">= 1000", ">= 250", False, "floor only"),
        (0.37, ">= 0.6", ">= 0.4", False, "MISSED"),
        (31.0, "< 50", "< 100", True, "met"),
        (180.0, "< 50", "< 100", False, "MISSED"),
        (0.0, "0", "0", True, "met"),
        (3.0, "0", "0", False, "MISSED"),
        (19_428.0, ">= 10000", ">= 5,000", True, "met"),
        (150.0, "200", "-", False, "MISSED"),  # no floor: a missed target is a miss
    ],
)
def test_a_row_is_judged_against_its_target_then_its_floor(value, target, floor, ok, verdict):
    row = Row("figure", value, target, floor, "unit", ok)
    assert row.verdict == verdict
    assert row.as_dict()["verdict"] == verdict


def test_an_informational_row_has_no_verdict():
    row = Row("B1 p50", 8.1, "-", "-", "ms", None)
    assert (row.verdict, row.floor_met) == ("-", None)

# A child whose own child burns ~0.3 s of CPU and exits (reaped: its time moves to the parent's
# cutime), then the child burns ~0.3 s itself and waits to be told to exit.
_TREE = """
import subprocess, sys, time
burn = "import time\\nend = time.process_time() + 0.3\\nwhile time.process_time() < end: pass"
subprocess.run([sys.executable, "-c", burn], check=True)
end = time.process_time() + 0.3
while time.process_time() < end:
    pass
print("done", flush=True)
sys.stdin.read()
"""


@linux_only
def test_a_process_tree_counts_its_live_and_its_reaped_children():
    before = cpu.snapshot({"tree": []})
    child = subprocess.Popen([sys.executable, "-c", _TREE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "done\n"
        spent = cpu.per_unit(before, cpu.snapshot({"tree": [child.pid]}), 1)
    finally:
        child.communicate("")
    # the tree was not running at "before": all of it is the child's (0.3 s) and its child's (0.3 s)
    assert 550 <= spent["tree"] <= 2000
    assert spent["total"] == pytest.approx(sum(v for k, v in spent.items() if k != "total"))


@linux_only
def test_the_load_generator_is_this_process():
    before = cpu.snapshot({})
    end = time.process_time() + 0.1
    while time.process_time() < end:
        pass
    spent = cpu.per_unit(before, cpu.snapshot({}), 2)
    assert spent["load generator"] >= 45  # ms per unit: 100 ms over 2 units
    assert "PostgreSQL" in spent and "Redis" not in spent  # Redis only when a client is given


def test_the_fake_at_answers_like_at_and_counts_each_recipient_once_flushed():
    from aiohttp.test_utils import TestClient, TestServer
    from fakeredis import FakeAsyncRedis

    from bench import fake_at

    async def scenario() -> None:
        store = FakeAsyncRedis()
        tally_app = fake_at.make_app(store, flush_every=3600)  # flushed by hand below, not on the timer
        async with TestClient(TestServer(tally_app)) as client:
            tally = tally_app["tally"]
            form = {"username": "u", "to": "+254711000001,+254711000002", "message": "Hi"}
            first = await client.post("/version1/messaging", data=form)
            assert first.status == 201 and first.headers["Content-Type"] == "application/json"
            body = await first.json()
            recipients = body["SMSMessageData"]["Recipients"]
            assert [r["number"] for r in recipients] == ["+254711000001", "+254711000002"]
            assert len({r["messageId"] for r in recipients}) == 2
            assert await store.get(fake_at.TOTAL) is None  # counted in memory until flushed
            await tally.flush()
            first_seen = float(await store.hget(fake_at.FIRST_SEEN, "+254711000001"))
            await client.post("/version1/messaging", data={**form, "to": "+254711000001"})
            await tally.flush()
            missing = await client.post("/version1/messaging", data={"username": "u", "message": "Hi"})
            assert missing.status == 400
        assert {k.decode(): int(v) for k, v in (await store.hgetall(fake_at.COUNTS)).items()} == {
            "+254711000001": 2, "+254711000002": 1}
        assert int(await store.get(fake_at.TOTAL)) == 3
        assert float(await store.hget(fake_at.FIRST_SEEN, "+254711000001")) == first_seen  # the first kept
        assert float(await store.get(fake_at.LAST)) >= first_seen

    asyncio.run(scenario())


@linux_only
def test_the_machine_busy_share_counts_this_process_burning():
    before = cpu.machine_seconds()
    end = time.process_time() + 0.2
    while time.process_time() < end:
        pass
    after = cpu.machine_seconds()
    assert after[0] - before[0] >= 0.15  # at least this process's 0.2 s (ticks are 10 ms)
    assert 0.0 < cpu.busy_share(before, after) <= 1.0
    assert cpu.busy_share(before, before) == 0.0


def test_an_unknown_figure_is_refused_before_anything_runs(capsys, monkeypatch):
    from bench import __main__ as bench_main

    monkeypatch.setattr(bench_main, "reserve_redis_db", lambda: pytest.fail("the bench started"))
    with pytest.raises(SystemExit) as stopped:
        bench_main.main(["--only", "B1,B5"])
    assert stopped.value.code == 2
    assert "--only: no figure B5 (the figures are B1, B2, B3, B4)" in capsys.readouterr().err


def test_the_hop_cpu_tool_drives_b1s_flow_through_the_app_and_prints_its_figures(redis_url):
    """``python -m bench.hop_cpu`` at toy size: every answer is checked against B1's screens, so a
    run that prints its figures went through the three screens for each flow (its numbers mean nothing)."""
    done = subprocess.run([sys.executable, "-m", "bench.hop_cpu", "--sqlite", "--redis-url", redis_url, "--flows", "4",
                           "--rounds", "2", "--batch", "2", "--warmup", "1", "--profile", "5"],
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 rounds of 4 flows (12 hops), batches of 2 flows; SQLite, metrics multiproc" in done.stdout
    assert "hop CPU per hop (us): median " in done.stdout and "(over 4 batches)" in done.stdout
    assert "by hop (median us): dial " in done.stdout
    assert "cProfile of one round (12 hops), the app's calls only, by own CPU time:" in done.stdout


def test_the_hop_cpu_tool_compares_two_copies_batch_by_batch(redis_url):
    """``--against`` runs the other copy's tool in a second process, in turns (here the same copy)."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "bench.hop_cpu", "--sqlite", "--redis-url", redis_url, "--flows", "4",
                           "--rounds", "1", "--batch", "2", "--warmup", "1", "--against", str(root)],
                          capture_output=True, text=True, timeout=300, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"against {root}: hop CPU per hop median " in done.stdout
    assert "paired batches, here / there (median of 2): hop " in done.stdout


def test_the_hop_cpu_tool_refuses_a_round_of_no_flows(capsys):
    from bench import hop_cpu

    with pytest.raises(SystemExit) as stopped:
        hop_cpu.main(["--flows", "0", "--redis-url", "redis://127.0.0.1:1/1"])
    assert stopped.value.code == 2
    assert "--flows, --rounds and --batch must be 1 or more" in capsys.readouterr().err
