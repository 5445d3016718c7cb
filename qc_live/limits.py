"""Bounds against floods: per-socket event rates and login attempts.

Kept in the memory of each process: a flood reaches one process through one
socket, so that process is where it has to be stopped. Login failures are
counted per process too; with N processes an attacker gets at most N times
the budget, which still bounds guessing, and a password reset clears the
counts of the process that made it (documented in docs/reliability.md).
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
    """At most `limit` failures per key within `window` seconds.

    Only the last `limit` failures of a key are kept, and keys whose failures
    have all expired are dropped now and then, so a flood of new keys (an
    address per request) costs memory for one window at most."""

    def __init__(self, limit: int, window: float):
        self.limit, self.window = limit, window
        self._failures = {}
        self._next_prune = 0.0
        self._lock = threading.Lock()

    def blocked_for(self, key) -> float:
        """Seconds until the key may try again (0: it may now)."""
        now = time.monotonic()
        with self._lock:
            times = self._failures.get(key)
            if times is None or len(times) < self.limit:
                return 0.0
            return max(0.0, self.window - (now - times[0]))

    def fail(self, key) -> None:
        now = time.monotonic()
        with self._lock:
            times = self._failures.get(key)
            if times is None:
                times = self._failures[key] = deque(maxlen=self.limit)
            times.append(now)
            if now >= self._next_prune:
                self._next_prune = now + self.window / 10
                for stale in [k for k, t in self._failures.items() if now - t[-1] > self.window]:
                    del self._failures[stale]

    def clear(self, key) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def clear_where(self, matches) -> None:
        """Forget every key for which `matches(key)` is true."""
        with self._lock:
            for key in [k for k in self._failures if matches(k)]:
                del self._failures[key]


# Failed logins in 5 minutes: 10 per username and client address, 50 per
# address. There is deliberately no limit per username alone: anyone could
# then lock any account (the admin's too) by failing from addresses of their
# own, while its owner, elsewhere, types the right password.
LOGIN_WINDOW = 300


class Limits:
    """One app's bounds (app.extensions["qc_limits"]): events per socket (10 a
    second sustained, bursts of 30) and failed logins."""

    def __init__(self):
        self.socket_events = TokenBucket(rate=10, burst=30)
        self.login_by_user_address = FailureWindow(limit=10, window=LOGIN_WINDOW)
        self.login_by_address = FailureWindow(limit=50, window=LOGIN_WINDOW)

    def login_blocked_for(self, user_key: str, address: str) -> float:
        """Seconds until a login of this username from this address may be tried."""
        return max(self.login_by_user_address.blocked_for((user_key, address)),
                   self.login_by_address.blocked_for(address))

    def login_failed(self, user_key: str, address: str) -> None:
        self.login_by_user_address.fail((user_key, address))
        self.login_by_address.fail(address)

    def login_succeeded(self, user_key: str, address: str) -> None:
        """The user proved itself from this address; the address's own count
        stays (one's own account must not reset a guesser's budget)."""
        self.login_by_user_address.clear((user_key, address))

    def forget_login_failures(self, user_key: str) -> None:
        """A new password: the failures against the old one no longer matter."""
        self.login_by_user_address.clear_where(lambda key: key[0] == user_key)
