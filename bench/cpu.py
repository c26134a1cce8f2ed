"""CPU seconds spent by each part of the stack under test, so every run shows where the CPU goes.

Read from ``/proc`` (user + system time of a process, its live descendants and the children it
has reaped, so a gunicorn worker restarted mid-run is still counted), Redis's own ``INFO cpu``, and
``getrusage`` for the load generator (this process). PostgreSQL is every ``postgres`` process on
the machine: run the benchmark on an otherwise idle server.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Iterable, Mapping
from pathlib import Path

import redis

_TICK = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command name, CPU seconds of it and its reaped children)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:  # gone since the listing
            continue
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        fields = raw[raw.rindex(")") + 2 :].split()
        # fields[1] is the parent pid; [11:15] utime, stime, cutime, cstime (man 5 proc)
        found[int(entry.name)] = (int(fields[1]), name, sum(int(f) for f in fields[11:15]) / _TICK)
    return found


def _tree(processes: Mapping[int, tuple[int, str, float]], roots: Iterable[int]) -> float:
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    total, todo, seen = 0.0, list(roots), set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in processes:
            continue
        seen.add(pid)
        total += processes[pid][2]
        todo.extend(children.get(pid, ()))
    return total


def load_generator_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def snapshot(parts: Mapping[str, Iterable[int]], store: redis.Redis | None = None) -> dict[str, float]:
    """CPU seconds so far of each named group of process trees, of PostgreSQL, of Redis (when
    ``store`` is given) and of the load generator."""
    processes = _processes()
    seconds = {name: _tree(processes, pids) for name, pids in parts.items()}
    seconds["PostgreSQL"] = sum(cpu for _, name, cpu in processes.values() if name == "postgres")
    if store is not None:
        info = store.info("cpu")
        seconds["Redis"] = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    seconds["load generator"] = load_generator_seconds()
    return seconds


def machine_seconds() -> tuple[float, float]:
    """(busy, elapsed) CPU seconds of the whole machine since boot, summed over its cores, from
    ``/proc/stat``: busy is everything but idle and iowait (steal included: time the host took)."""
    with open("/proc/stat") as stat:
        ticks = [int(f) for f in stat.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    return (sum(ticks) - ticks[3] - ticks[4]) / _TICK, sum(ticks) / _TICK


def busy_share(before: tuple[float, float], after: tuple[float, float]) -> float:
    """The share of the machine's CPU time that was busy between two ``machine_seconds`` (at most 1:
    the two counters are read apart, and a fully busy machine came out at 1.000000000004)."""
    elapsed = after[1] - before[1]
    return min((after[0] - before[0]) / elapsed, 1.0) if elapsed > 0 else 0.0


def per_unit(before: Mapping[str, float], after: Mapping[str, float], units: int) -> dict[str, float]:
    """Milliseconds of CPU per unit of work for each part, and their total."""
    spent = {name: 1000 * (after[name] - before[name]) / max(units, 1) for name in before}
    spent["total"] = sum(spent.values())
    return spent
