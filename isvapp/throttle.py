"""At most once every N seconds, per process: one way for the log lines, warnings and checks that a
stranger (or a busy server) could otherwise repeat without end."""

import math
import threading
import time


class Throttle:
    """``due()`` is True at most once every ``every_s`` seconds in this process (``math.inf``:
    once for the process's life), whatever the number of threads asking."""

    def __init__(self, every_s):
        self.every_s, self._last, self._lock = float(every_s), -math.inf, threading.Lock()

    def due(self, now=None):
        now = time.monotonic() if now is None else now
        with self._lock:
            if now - self._last < self.every_s:
                return False
            self._last = now
            return True


def once():
    """A Throttle that is due once, for a warning a process need say only once."""
    return Throttle(math.inf)
