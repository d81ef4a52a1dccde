"""The indexer as a child process of the gunicorn master: started, watched and restarted.

A process, not a thread: the master forks workers, and threads do not survive a fork.
The master's loop calls `check` about once a second; an indexer that died is started
again after a pause that doubles with each quick failure.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

log = logging.getLogger("feeds.server.supervisor")

COMMAND = (sys.executable, "-m", "feeds", "index", "--follow")
STOP_SECONDS = 10.0
FIRST_PAUSE_SECONDS = 1.0
MAX_PAUSE_SECONDS = 60.0
STEADY_SECONDS = 60.0  # an indexer that lived this long failed for a new reason


class Indexer:
    def __init__(self, command: tuple[str, ...] = COMMAND) -> None:
        self.command = command
        self.process: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.pause = FIRST_PAUSE_SECONDS
        self.restart_at = 0.0
        self.stopping = False

    def start(self) -> None:
        # The child inherits a blocked SIGHUP and unblocks it once its handler is in place
        # (`feeds.server.follow`): one that arrives during its start-up waits instead of killing it.
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
        try:
            self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        self.started_at = time.monotonic()
        log.info("indexer started (pid %d)", self.process.pid)

    def check(self) -> None:
        """Start the indexer again if it has exited (gunicorn may have reaped it already)."""
        if self.stopping or self.process is None:
            return
        now = time.monotonic()
        if self.restart_at:
            if now >= self.restart_at:
                self.restart_at = 0.0
                self.start()
            return
        if self.process.poll() is None:
            return
        lived = now - self.started_at
        self.pause = (
            FIRST_PAUSE_SECONDS
            if lived > STEADY_SECONDS
            else min(self.pause * 2, MAX_PAUSE_SECONDS)
        )
        self.restart_at = now + self.pause
        log.error(
            "indexer (pid %d) exited after %.0fs; starting it again in %.0fs",
            self.process.pid,
            lived,
            self.pause,
        )

    def reload(self) -> None:
        """SIGHUP: reconcile the directory with the index now."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        self.stopping = True
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
