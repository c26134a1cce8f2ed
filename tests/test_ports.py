"""``tests.ports``: a server of a test's own is known to listen on its port itself."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests import ports

SERVER = ("import socket, sys\n"
          "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
          "sys.stdin.read()")  # listens until its stdin closes


def server(port: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdin=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen) -> None:
    proc.stdin.close()
    proc.wait(10)


def test_a_port_taken_before_the_server_binds_it_is_given_up_for_another(monkeypatch):
    with ports.listening_socket() as taken:  # another's server, on the port found free first
        guesses, real_guess = iter([taken.getsockname()[1]]), ports.free_port
        monkeypatch.setattr(ports, "free_port", lambda: next(guesses, None) or real_guess())
        proc, port = ports.start_listening(server)
        try:
            assert port != taken.getsockname()[1]
            assert ports.listens(proc.pid, port)
        finally:
            stop(proc)


def test_a_port_another_process_listens_on_is_not_ours():
    with ports.listening_socket() as mine:
        port = mine.getsockname()[1]
        other = server(ports.free_port())
        try:
            assert ports.listens(ports.os.getpid(), port)
            assert not ports.listens(other.pid, port)
        finally:
            stop(other)


def test_a_server_that_never_listens_fails_with_its_log(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("Error: cannot listen\n")
    quits = [sys.executable, "-c", "raise SystemExit(1)"]
    with pytest.raises(AssertionError, match="(?s)exited before it listened.*Error: cannot listen"):
        ports.start_listening(lambda port: subprocess.Popen(quits), log)
