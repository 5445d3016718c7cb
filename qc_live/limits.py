"""Bounds against floods: per-socket event rates and login attempts.

Kept in the memory of each process: a flood reaches one process through one
socket, so that process is where it has to be stopped. Login failures are
counted per process too; with N processes an attacker gets at most N times
the budget, which still bounds guessing (documented in docs/reliability.md).
"""
import threading
import time
from collections import defaultdict, deque


class TokenBucket:
    """`rate` events a second on average, bursts up to `burst`."""

    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self._tokens = defaultdict(lambda: burst)
        self._stamp = {}
        self._lock = threading.Lock()

    def allow(self, key) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._stamp.get(key, now)
            tokens = min(self.burst, self._tokens[key] + (now - last) * self.rate)
            self._stamp[key] = now
            if tokens < 1:
                self._tokens[key] = tokens
                return False
            self._tokens[key] = tokens - 1
            return True

    def forget(self, key) -> None:
        with self._lock:
            self._tokens.pop(key, None)
            self._stamp.pop(key, None)


class FailureWindow:
    """At most `limit` failures per key within `window` seconds."""

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self._failures = defaultdict(deque)
        self._lock = threading.Lock()

    def _trim(self, key, now):
        times = self._failures[key]
        while times and now - times[0] > self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def blocked_for(self, key) -> float:
        """Seconds until the key may try again (0: it may now)."""
        now = time.monotonic()
        with self._lock:
            times = self._trim(key, now)
            if len(times) < self.limit:
                return 0.0
            return max(0.0, self.window - (now - times[0]))

    def fail(self, key) -> None:
        with self._lock:
            self._failures[key].append(time.monotonic())

    def clear(self, key) -> None:
        with self._lock:
            self._failures.pop(key, None)


# Socket events per socket: 10/s sustained, bursts of 30.
socket_events = TokenBucket(rate=10, burst=30)
# Failed logins: 10 per username and 50 per address in 5 minutes.
login_by_user = FailureWindow(limit=10, window=300)
login_by_address = FailureWindow(limit=50, window=300)
