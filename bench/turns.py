"""What ``bench.hop_cpu`` and ``bench.drain_cpu`` share to compare two copies of the code (``--against
TREE``): the other copy's tool in a second process, the two taking turns batch by batch over a pair of
pipes (so a neighbour's load on the machine hits both alike), its figures read back as one JSON line,
and each side's own Redis database number, let go however the run ends."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .harness import REDIS_BASE, release_redis_db, reserve_redis_db

FIGURES = "figures "  # the other side's last line: its figures as JSON


class Turns:
    """Batches taken in turn with another process over a pair of pipes (``--against``): a batch
    runs between ``begin`` and ``end``. This side (``first``) starts; without pipes, no turns."""

    def __init__(self, reader: Any = None, writer: Any = None, *, first: bool = True) -> None:
        self.reader, self.writer, self.first = reader, writer, first

    def begin(self) -> None:
        if self.reader is not None and not self.first:
            self._wait()

    def end(self) -> None:
        if self.writer is not None:
            self.writer.write("go\n")
            self.writer.flush()
            if self.first:
                self._wait()

    def _wait(self) -> None:
        if self.reader.readline() != "go\n":
            raise SystemExit("--against: the other process stopped taking turns (see its errors above)")


NO_TURNS = Turns()


def add_options(parser: argparse.ArgumentParser, profile_top: int) -> None:
    """The options both tools take: ``--redis-url``, ``--profile [TOP]``, ``--against TREE`` and the
    other side's hidden ``--taking-turns``."""
    parser.add_argument("--redis-url", help="a Redis URL with a db number to use (and empty) instead of reserving one")
    parser.add_argument("--profile", type=int, nargs="?", const=profile_top, default=0, metavar="TOP",
                        help=f"profile one more round, print its TOP entries ({profile_top})")
    parser.add_argument("--against", metavar="TREE", type=Path,
                        help="another copy of the code to compare with, batch by batch in turns")
    parser.add_argument("--taking-turns", action="store_true", help=argparse.SUPPRESS)  # the other side of --against


def check_against(parser: argparse.ArgumentParser, tree: Path | None, tool: str) -> None:
    """``--against``'s copy must hold this tool (``bench/<tool>.py``)."""
    if tree is not None and not (tree / "bench" / f"{tool}.py").is_file():
        parser.error(f"--against: {tree} has no bench/{tool}.py")


def stop_on_sigterm() -> None:
    """A run stopped by SIGTERM (kill, a CI timeout) unwinds as at its end: its database is dropped
    and its Redis db let go by the ``finally`` blocks on the way out."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))


@contextlib.contextmanager
def redis_db(url: str | None) -> Iterator[str]:
    """``url`` when given (a db number the caller keeps empty), else a db number reserved as
    ``bench/harness.py`` does, released at the end."""
    if url is not None:
        yield url
        return
    reserved = reserve_redis_db()
    try:
        yield f"{REDIS_BASE.rstrip('/')}/{reserved}"
    finally:
        release_redis_db(reserved)


def start_other(module: str, tree: Path, argv: Sequence[str]) -> subprocess.Popen:
    """``python -m module --taking-turns ARGV`` in ``tree``'s copy of the code, on pipes."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # that copy's code, not this one's
    return subprocess.Popen([sys.executable, "-m", module, "--taking-turns", *argv], cwd=tree, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def sides(taking_turns: bool, other: subprocess.Popen | None) -> tuple[Turns, Any]:
    """This side's turns and where its report goes: the side taking turns writes the turns and its
    figures on stdout, so its report goes to stderr."""
    if taking_turns:
        return Turns(sys.stdin, sys.stdout, first=False), sys.stderr
    if other is not None:
        return Turns(other.stdout, other.stdin), sys.stdout
    return NO_TURNS, sys.stdout


def hand_back(figures: dict[str, Any]) -> None:
    """The side taking turns: its figures, as the last line of its stdout."""
    print(FIGURES + json.dumps(figures), flush=True)


def figures_of(other: subprocess.Popen) -> dict[str, Any]:
    """The other side's figures, once it has ended."""
    for line in other.stdout:  # type: ignore[union-attr]
        if line.startswith(FIGURES):
            other.wait()
            return json.loads(line[len(FIGURES):])
    raise SystemExit(f"--against: the other process ended without its figures (exit {other.wait()})")


def stop_other(other: subprocess.Popen) -> None:
    """Let the other side end (its turns' pipe closed, it stops at its next batch and drops its
    database and Redis db as it would at the end); killed only if it does not within 60 s."""
    with contextlib.suppress(OSError):
        other.stdin.close()  # type: ignore[union-attr]
    try:
        other.wait(60)
    except subprocess.TimeoutExpired:
        other.kill()
        other.wait()


def paired(this: Sequence[float], other: Sequence[float]) -> float:
    """The median of the paired batches' ratios, this side's over the other's."""
    return statistics.median(a / b for a, b in zip(this, other, strict=True) if b > 0)
