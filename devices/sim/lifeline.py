"""Children of the simulation that die with the process that started them.

A gateway (or a test) killed with SIGKILL runs no cleanup: without help, its private
dbus-daemon and its simulator process are re-parented to init and live on, each holding a bus
socket and a few MB, one more set per killed run. Linux has the tool for this: a process can
ask for a signal when its parent dies (``prctl(PR_SET_PDEATHSIG)``); the setting survives
``execve`` of an ordinary (not set-uid) program and is cleared by ``fork``, so it must be set
in the child itself.

Two ways to set it in a child, both closing the race where the parent dies before the request
is made (the check of ``getppid()`` right after it):

* ``die_with_parent(parent)``: a Python child calls it first thing;
* ``argv_dying_with_parent(argv)``: for a program we do not write (dbus-daemon), the command
  line runs a tiny ``python -I -S -c`` that makes the request and then ``execv``s the program
  in its place, so nothing of it stays. ``preexec_fn`` would do the same without the extra
  exec, but it is not safe in a process with threads (the gateway has its database thread),
  and ``setpriv --pdeathsig`` (util-linux) has no parent check.

The signal is sent when the *thread* that forked the child ends, not the process: start these
children from the event loop's thread (the main thread), never from a worker thread.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
DEATH_SIGNAL = signal.SIGKILL  # nothing to save: a child of a killed parent only has to go

# Run as ``python -I -S -c _EXEC_DYING_WITH_PARENT PARENT_PID PROGRAM ARGS...``: -I -S keep it
# to the standard library (no site packages, no environment), a few milliseconds.
_EXEC_DYING_WITH_PARENT = (
    "import ctypes, os, sys\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    f"if libc.prctl({PR_SET_PDEATHSIG}, {int(DEATH_SIGNAL)}, 0, 0, 0) != 0:\n"
    "    sys.exit('prctl(PR_SET_PDEATHSIG): ' + os.strerror(ctypes.get_errno()))\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(0)  # the parent is already gone: do not start an orphan\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


class LifelineError(RuntimeError):
    """The parent-death signal could not be set."""


def supported() -> bool:
    """Whether this system has the parent-death signal (Linux only)."""
    return sys.platform.startswith("linux")


def argv_dying_with_parent(argv: Sequence[str]) -> list[str]:
    """``argv`` (its first item an absolute path) run so that it dies with this process.

    On a system without the parent-death signal, ``argv`` unchanged.
    """
    if not supported():
        return list(argv)
    if not os.path.isabs(argv[0]):
        raise ValueError(f"the program must be an absolute path, not {argv[0]!r}")
    return [sys.executable, "-I", "-S", "-c", _EXEC_DYING_WITH_PARENT, str(os.getpid()), *argv]


def die_with_parent(parent: int) -> None:
    """Make this process die when ``parent`` (the pid that started it) dies.

    Exits at once if ``parent`` is already gone (this process was re-parented before it got
    here). Does nothing on a system without the parent-death signal.
    """
    if not supported():
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(DEATH_SIGNAL), 0, 0, 0) != 0:
        raise LifelineError("prctl(PR_SET_PDEATHSIG): " + os.strerror(ctypes.get_errno()))
    if os.getppid() != parent:
        os._exit(0)
