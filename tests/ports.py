"""Ports for a test's own servers that nothing else can take from under them.

A port found free (bound to 0, then closed) is only a guess: another xdist worker or test run may
bind it before the server does, and a readiness probe that merely connects would then talk to that
other server. So either the test holds the port from the start (``listening_socket``, handed to a
server that takes an inherited socket, such as gunicorn's ``fd://``), or the server is started until
its own process is the one listening on its port (``start_listening``; Linux ``/proc``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

ATTEMPTS = 5
LISTEN_S = 30.0
LISTEN = "0A"  # a TCP socket's state in /proc/net/tcp


def listening_socket() -> socket.socket:
    """A socket on 127.0.0.1, listening on a port the kernel chose: the port is the test's until it
    closes every copy (a child given it through ``pass_fds`` keeps it when the test closes its own)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def free_port() -> int:
    """A port free now: a guess for ``start_listening`` to check."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on TCP ``port`` (its own, not a child's)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(f"socket:[{fields[9]}]")
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:  # the process is gone
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except FileNotFoundError:  # closed since (the listing's own, say)
            continue
    return False


def start_listening(start: Callable[[int], subprocess.Popen], log: Path | None = None) -> tuple[subprocess.Popen, int]:
    """``start(port)`` on free ports until the process it starts listens on its port itself:
    (process, port). One that exits first (its port was taken, say) is started on another port;
    ``log``, where the process writes, ends the message when none listens."""
    tried = []
    for _ in range(ATTEMPTS):
        port = free_port()
        proc = start(port)
        deadline = time.monotonic() + LISTEN_S
        while proc.poll() is None and time.monotonic() < deadline:
            if listens(proc.pid, port):
                return proc, port
            time.sleep(0.05)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
            raise AssertionError(f"the server did not listen on port {port} within {LISTEN_S:.0f} s{_tail(log)}")
        tried.append(port)
    raise AssertionError(f"the server exited before it listened, on each of the ports {tried}{_tail(log)}")


def _tail(log: Path | None) -> str:
    return f":\n{log.read_text(errors='replace')[-2000:]}" if log is not None and log.exists() else ""
