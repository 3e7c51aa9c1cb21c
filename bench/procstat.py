"""CPU time of the processes under test, read from /proc (Linux).

The harness samples a process group's total user + system time before and after a measured run
and divides by the requests completed: the server's CPU per request, whatever wrk and the other
processes on the machine did meanwhile. Processes that exit during the run are not counted (the
servers measured keep their workers and database sessions for the whole run).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid_dir: Path) -> list[str] | None:
    """The fields after the command name of /proc/PID/stat (the name may hold spaces and parentheses)."""
    try:
        text = (pid_dir / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def _pid_dirs() -> list[Path]:
    return [entry for entry in PROC.iterdir() if entry.name.isdigit()]


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of every live process in process group ``pgid``."""
    ticks = 0
    for pid_dir in _pid_dirs():
        fields = _stat_fields(pid_dir)
        # After the name: state, ppid, pgrp, ... utime is the 12th, stime the 13th.
        if fields is not None and len(fields) > 12 and fields[2] == str(pgid):
            ticks += int(fields[11]) + int(fields[12])
    return ticks / TICKS_PER_SECOND


def tree_cpu_seconds(root_pid: int) -> float:
    """User + system CPU seconds of ``root_pid`` and all its live descendants.

    For PostgreSQL: every backend calls setsid(), so the postmaster's process group holds only itself.
    """
    parent_of: dict[int, int] = {}
    ticks_of: dict[int, int] = {}
    for pid_dir in _pid_dirs():
        fields = _stat_fields(pid_dir)
        if fields is not None and len(fields) > 12:
            pid = int(pid_dir.name)
            parent_of[pid] = int(fields[1])
            ticks_of[pid] = int(fields[11]) + int(fields[12])
    ticks = 0
    for pid, own in ticks_of.items():
        ancestor = pid
        while ancestor not in (root_pid, 0, 1) and ancestor in parent_of:
            ancestor = parent_of[ancestor]
        if ancestor == root_pid:
            ticks += own
    return ticks / TICKS_PER_SECOND


def postmaster_pid(port: int) -> int | None:
    """The postmaster of the local PostgreSQL server listening on ``port``.

    Found by the postmaster's command line (``postgres ... -p PORT``), so other clusters running on
    the machine (e.g. a test suite's) are not counted. None when there is no such local process.
    """
    wanted = ["-p", str(port)]
    for pid_dir in _pid_dirs():
        with contextlib.suppress(OSError):
            argv = (pid_dir / "cmdline").read_bytes().split(b"\0")
            words = [part.decode(errors="replace") for part in argv if part]
            if (
                words
                and words[0].endswith("postgres")
                and any(words[i : i + 2] == wanted for i in range(len(words) - 1))
            ):
                fields = _stat_fields(pid_dir)
                if fields is not None and fields[2] == pid_dir.name:
                    return int(pid_dir.name)
    return None
