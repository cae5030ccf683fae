"""The enclave ends with its host: an orphaned enclave would hold the agent's keys and the
enclave lock with nobody to store what it signs.

Two ways, because either alone has a gap:
- a pipe: the host keeps the write end, the enclave inherits the read end and watches it;
  end of file means every copy of the write end is closed, i.e. the host is gone,
  whatever killed it. This works on every POSIX system and whichever host thread started
  the enclave.
- on Linux, `prctl(PR_SET_PDEATHSIG)`: the kernel signals the enclave when the thread that
  started it exits. The host asks for it only when it starts the enclave from its main
  thread, which lives as long as the host (a restart from a worker thread must not take
  the enclave down with that thread).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import signal
import sys
import threading

log = logging.getLogger("tee_agent.enclave")

# <linux/prctl.h>: #define PR_SET_PDEATHSIG 1
PR_SET_PDEATHSIG = 1


class HostGone(Exception):
    """The host that started this enclave has already exited."""


def die_with_parent(parent_pid: int) -> None:
    """Have the kernel send SIGTERM when the parent thread exits (Linux; elsewhere nothing).

    Raises:
        HostGone: the parent exited before the request was made (this process was already
            handed to another parent).
        OSError: prctl refused.
    """
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_PDEATHSIG): {os.strerror(errno)}")
    # The parent may have died between fork and prctl: then no signal will ever come.
    if os.getppid() != parent_pid:
        raise HostGone(f"the host (pid {parent_pid}) exited before the enclave started")


def watch_host_pipe(fd: int) -> threading.Thread:
    """Once the pipe `fd` reaches end of file, SIGTERM this process (from a daemon thread).

    The signal, not a direct exit: before the server runs (a model loading, say) it ends the
    process at once; once serving, the server's handler stops it as a SIGTERM from the host
    would.
    """

    def watch() -> None:
        try:
            while os.read(fd, 4096):
                pass  # the host never writes; anything written is ignored
        except OSError as exc:
            log.warning("host pipe read failed (%s); treating the host as gone", exc)
        log.warning("the host is gone (its pipe closed); stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="host-watch", daemon=True)
    thread.start()
    return thread
