"""``python -m bench.drain_cpu`` (the inbound drain's CPU a message, in process) at toy size."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PG_URL


def test_the_drain_cpu_tool_answers_and_sends_b2s_texts_and_prints_its_figures(pg_url, redis_url):
    """Every text stored gets its results reply and one send (the tool checks both and stops
    otherwise), so a run that prints its figures drained them all (its numbers mean nothing)."""
    env = dict(os.environ, ELIMU_BENCH_PG_URL=PG_URL)
    done = subprocess.run([sys.executable, "-m", "bench.drain_cpu", "--redis-url", redis_url, "--messages", "30",
                           "--rounds", "2", "--results", "300", "--warmup", "5", "--profile", "5"],
                          capture_output=True, text=True, timeout=300, env=env,
                          cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 rounds of 30 texts against 300 results, batches of up to 200" in done.stdout
    assert "CPU per message (us), median over 2 batches: drain " in done.stdout
    assert ", PostgreSQL " in done.stdout
    assert "cProfile of one round (30 texts), drain and send, by own CPU time:" in done.stdout


def test_the_drain_cpu_tool_compares_two_copies_batch_by_batch(pg_url, redis_url):
    """``--against`` runs the other copy's tool in a second process, in turns (here the same copy)."""
    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, ELIMU_BENCH_PG_URL=PG_URL)
    done = subprocess.run([sys.executable, "-m", "bench.drain_cpu", "--redis-url", redis_url, "--messages", "250",
                           "--rounds", "1", "--results", "300", "--warmup", "5", "--against", str(root)],
                          capture_output=True, text=True, timeout=300, env=env, cwd=root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"against {root}: there drain " in done.stdout
    assert "paired batches, here / there (median of 2): drain " in done.stdout


def test_the_drain_cpu_tool_refuses_a_round_of_no_texts(capsys):
    from bench import drain_cpu

    with pytest.raises(SystemExit) as stopped:
        drain_cpu.main(["--messages", "0", "--redis-url", "redis://127.0.0.1:1/1"])
    assert stopped.value.code == 2
    assert "--messages, --rounds and --results must be 1 or more" in capsys.readouterr().err
