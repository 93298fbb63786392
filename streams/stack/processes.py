"""Detached server processes: start, identify, wait for, and stop them through pid files.

This module knows nothing about Kafka or Apicurio. It owns the rules that keep `streams stack` safe to run
next to anything else on the machine:

- a pid file only counts while its process is alive *and* carries the stack's marker argument in its
  command line, so a recycled pid never makes us report (or kill) a stranger; otherwise it is stale and
  removed;
- processes are started through ``sh -c '... &'`` in a new session, so they are not our children: they
  outlive the CLI, never turn into zombies of a long-lived Python process, and leave no ``Popen`` behind;
- stopping is SIGTERM, a grace period, then SIGKILL, and always waits until the process is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from streams.errors import StackError

POLL_INTERVAL = 0.25


def _argv(pid: int) -> list[str] | None:
    """The process's arguments, or None if it is gone or a zombie."""
    if Path("/proc/self").exists():
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        # A zombie has an empty command line: it is dead for our purposes.
        return raw.decode(errors="replace").split("\0")[:-1] or None
    # No procfs (macOS): ask ps, which prints nothing for a missing pid. Arguments are only
    # space-separated here, which is enough for markers (paths with spaces aside).
    result = subprocess.run(
        ["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False
    )
    return result.stdout.split() or None


def is_ours(pid: int, marker: str) -> bool:
    """True if ``pid`` is alive and ``marker`` is one of its arguments (whole, not a substring)."""
    argv = _argv(pid)
    return argv is not None and marker in argv


def live_pid(pid_file: Path, marker: str) -> int | None:
    """The pid recorded in ``pid_file`` if that process is still ours; a stale file is removed."""
    try:
        text = pid_file.read_text().strip()
    except FileNotFoundError:
        return None
    try:
        pid = int(text)
    except ValueError:
        pid = -1
    if pid > 0 and is_ours(pid, marker):
        return pid
    pid_file.unlink(missing_ok=True)
    return None


def spawn(cmd: Sequence[str], *, out_file: Path, pid_file: Path, cwd: Path, env: Mapping[str, str]) -> int:
    """Start ``cmd`` detached, stdout/stderr appended to ``out_file``; record and return its pid."""
    out_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    cwd.mkdir(parents=True, exist_ok=True)
    # The shell backgrounds the server and exits at once, so the server is re-parented to init: it is not
    # our child. A backgrounded simple command is forked once and exec'd, so `$!` is the server's own pid.
    script = 'out="$1"; shift; "$@" </dev/null >>"$out" 2>&1 & echo $!'
    result = subprocess.run(
        ["sh", "-c", script, "sh", str(out_file), *cmd],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
        start_new_session=True,
    )
    try:
        pid = int(result.stdout.strip())
    except ValueError:
        raise StackError(f"could not start {cmd[0]}: {result.stderr.strip() or 'no pid'}") from None
    pid_file.write_text(f"{pid}\n")
    return pid


def _reap(pid: int) -> None:
    # Only matters when the process happens to be our child (it normally is not, see spawn()).
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(targets: Sequence[tuple[int, str]], *, grace: float) -> None:
    """SIGTERM every (pid, marker) at once, SIGKILL survivors after ``grace`` seconds; wait until all exit.

    Stopping several Kafka nodes together matters: stopped one by one, the last nodes lose their
    controller quorum and stall in controlled shutdown.
    """
    pending = [pid for pid, marker in targets if is_ours(pid, marker)]
    markers = dict(targets)
    for pid in pending:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    killed = False
    while pending:
        for pid in pending:
            _reap(pid)
        pending = [pid for pid in pending if is_ours(pid, markers[pid])]
        if not pending:
            break
        if time.monotonic() >= deadline:
            if killed:
                raise StackError(f"processes {pending} did not exit after SIGKILL")
            for pid in pending:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            killed = True
            deadline = time.monotonic() + 10.0
        time.sleep(POLL_INTERVAL)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


@dataclass(frozen=True)
class Watched:
    """A process being waited for: if it dies, the wait fails at once and names its logs."""

    name: str
    pid: int
    marker: str
    logs: tuple[Path, ...]


def wait_until(
    ready: Callable[[], bool],
    *,
    what: str,
    watched: Sequence[Watched],
    deadline: float,
    timeout: float,
) -> None:
    """Poll ``ready`` until it is true; fail fast if a watched process dies, or when ``deadline`` passes."""
    while True:
        if ready():
            return
        for proc in watched:
            if not is_ours(proc.pid, proc.marker):
                _reap(proc.pid)
                raise StackError(f"{proc.name} exited during startup; read {_and(proc.logs)}")
        if time.monotonic() >= deadline:
            logs = tuple(log for proc in watched[:1] for log in proc.logs)
            raise StackError(f"{what} not ready after {timeout:g}s; read {_and(logs)}")
        time.sleep(POLL_INTERVAL)


def _and(paths: Sequence[Path]) -> str:
    return " and ".join(str(p) for p in paths) or "the logs under .stack/"


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Serialise `up`/`down` of one stack across processes (two terminals, parallel test sessions)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_quiet(cmd: Sequence[str], *, log: Path, what: str, cwd: Path | None = None) -> None:
    """Run a short-lived tool to completion, its output appended to ``log``; StackError if it fails."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"$ {' '.join(cmd)}\n".encode())
        out.flush()
        code = subprocess.run(
            cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd, check=False
        ).returncode
    if code != 0:
        raise StackError(f"{what} failed (exit {code}); read {log}")
