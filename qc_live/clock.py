"""One clock for every timestamp the server writes or compares: the database's.

Timestamps are naive UTC datetimes in the database. Leases, grace periods,
ack timeouts and deadlines are all compared against `utcnow()`, which is this
host's clock corrected by its measured offset to the database server's clock
(`Clock.sync`, run at start and on every heartbeat). So several processes on
several hosts agree even when the hosts' clocks do not. With SQLite the
database is on this host and the offset stays zero.
"""
import time
from datetime import datetime, timedelta, timezone

from flask import current_app, has_app_context

ZERO = timedelta(0)


def _local() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Clock:
    """One app's clock: this host's, corrected by its measured offset to the
    database server's (kept in app.extensions["qc_clock"], synced by the
    runtime at start and on every heartbeat)."""

    # A backward step no larger than this is absorbed (see now()); a larger one
    # is a real correction of the clock and is taken as it comes.
    MAX_HOLD = timedelta(seconds=1)

    def __init__(self):
        self._offset = ZERO
        self.last = datetime.min

    @property
    def offset(self) -> timedelta:
        return self._offset

    @offset.setter
    def offset(self, value: timedelta) -> None:
        """A deliberate step (an operator's, a test's): taken as is."""
        self._offset, self.last = value, datetime.min

    def now(self) -> datetime:
        """This host's time plus the offset, never earlier than an earlier
        answer: each sync measures the offset a little differently, and a
        step back would put a later completion or a newer task before an
        older one (FIFO, -completed_at). A backward step is absorbed by
        holding the time until the host's clock catches up."""
        moment = _local() + self._offset
        if moment < self.last and self.last - moment < self.MAX_HOLD:
            return self.last
        self.last = moment
        return moment

    def sync(self, read_database_utc) -> timedelta:
        """Measure the offset to the database clock. `read_database_utc()`
        returns the database's UTC time (None: same clock, nothing to do); the
        round trip's midpoint is taken as its moment. A round trip slower than
        a second is not trusted (the offset stays)."""
        before, started = _local(), time.monotonic()
        remote = read_database_utc()
        took = time.monotonic() - started
        if remote is not None and took < 1.0:
            self._offset = remote - (before + timedelta(seconds=took / 2))
        return self._offset


def utcnow() -> datetime:
    """Now, in UTC, on the current app's clock (this host's outside an app)."""
    clock = current_app.extensions.get("qc_clock") if has_app_context() else None
    return clock.now() if clock is not None else _local()


def ago(seconds: float) -> datetime:
    return utcnow() - timedelta(seconds=seconds)


def iso(moment: datetime | None) -> str | None:
    """ISO-8601 in UTC with a Z, to the millisecond; None stays None."""
    if moment is None:
        return None
    return moment.isoformat(timespec="milliseconds") + "Z"


def parse_iso(text: str) -> datetime:
    """Parse ISO-8601; a value without an offset is taken as UTC.

    Raises ValueError for anything else.
    """
    if not isinstance(text, str):
        raise ValueError("not a string")
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value
