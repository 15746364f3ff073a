"""``stratacache serve`` as a subprocess, for the tests of the command line: start it, read
its banner, stop it and collect its exit status and stderr."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


def serve(*args: str) -> subprocess.Popen[str]:
    """``python -m stratacache.cli serve ARGS`` with its output piped, run in a scratch
    directory (its default ``save`` schedule writes ./dump.scs at shutdown)."""
    workdir = Path(tempfile.gettempdir()) / f"stratacache-cli-{os.getpid()}"
    workdir.mkdir(exist_ok=True)
    (workdir / "dump.scs").unlink(missing_ok=True)
    return subprocess.Popen(
        [sys.executable, "-m", "stratacache.cli", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        cwd=workdir,
    )


def banner(proc: subprocess.Popen[str]) -> str:
    """The two lines the server prints once it listens."""
    assert proc.stdout is not None
    return proc.stdout.readline() + proc.stdout.readline()


def stop(proc: subprocess.Popen[str]) -> int:
    """SIGTERM, then the exit status (the pipes drained and closed)."""
    return finish(proc, signal.SIGTERM)[0]


def finish(proc: subprocess.Popen[str], sig: int | None = None, timeout: float = 10) -> tuple[int, str]:
    """Send ``sig`` (if any), wait for the exit; (status, stderr). Kills it after ``timeout``
    seconds."""
    if sig is not None and proc.poll() is None:
        proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return proc.returncode, err
