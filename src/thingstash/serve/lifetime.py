"""Tie a child process's life to its parent's, so a SIGKILLed service leaves nothing behind."""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM, parent_pid: int | None = None) -> None:
    """Ask the kernel to send `sig` to this process when the thread that forked it dies.

    Called in the child. If the parent is already gone (or is not `parent_pid`), exit now: the
    signal would never come.
    """
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)
