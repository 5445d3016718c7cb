"""One clock for every timestamp the server writes or compares.

Timestamps are naive UTC datetimes in the database. All processes of one
deployment compare them against this clock, so leases, grace periods and
deadlines agree as long as the hosts' clocks are NTP-synchronised.
"""
from datetime import datetime, timedelta, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


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
