"""Local processes: free ports, waiting for a server, stopping a process group, signals."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from phonecheck_dev.local_env import REPO_ROOT


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for local servers and tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host if host not in ("0.0.0.0", "") else "127.0.0.1", port)) == 0  # noqa: S104


def wait_for_http(url: str, timeout: float, proc: subprocess.Popen | None = None, what: str = "") -> None:
    """Poll ``url`` until it answers 200; fail early when ``proc`` exits."""
    import httpx

    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what or url}: process exited with {proc.returncode} before it was ready")
        try:
            last = httpx.get(url, timeout=2)
            if last.status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.3)
    raise TimeoutError(f"{what or url} not ready after {timeout:.0f} s (last: {last!r})")


def stop_process_group(
    proc: subprocess.Popen, first_signal: int = signal.SIGTERM, grace_s: float = 30, leader_only: bool = False
) -> None:
    """Stop a child started with ``start_new_session=True`` and everything it spawned.

    ``first_signal`` goes to the group (or only to the leader with ``leader_only``, for a
    supervisor that stops its own children, like ``airflow standalone``); whatever still runs
    after ``grace_s`` gets SIGTERM, then SIGKILL (the leader may be gone while its children
    still run in its group).
    """
    steps = [(first_signal, not leader_only, grace_s), (signal.SIGTERM, True, 10), (signal.SIGKILL, True, 5)]
    for sig, whole_group, wait_s in steps:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if whole_group:
                os.killpg(proc.pid, sig)
            elif proc.poll() is None:
                proc.send_signal(sig)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if proc.poll() is not None and not group_members(proc.pid):
                return
            time.sleep(0.2)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may contain spaces, split after the last ')'
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def start_sandbox(port: int, log_path: Path, voice_dr_url: str, pns_push_url: str) -> subprocess.Popen:
    """``python -m phonecheck.sandbox`` in its own process group, output to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "phonecheck.sandbox",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--voice-dr-url",
                voice_dr_url,
                "--pns-push-url",
                pns_push_url,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
            start_new_session=True,
        )
    return proc


class _Stop(Exception):
    """Raised by the signal handler to leave the wait loop."""


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    def handler(signum, _frame):
        raise _Stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _stop_on_signals_ignored() -> Iterator[None]:
    """A second Ctrl-C must not interrupt the clean-up."""
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
