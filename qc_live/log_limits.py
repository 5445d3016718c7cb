"""Bounded logs: a client that repeats a bad input must not fill the disk.

Engine.IO logs every packet its handler cannot parse as an ERROR with a
traceback; 5,000 malformed packets made 9.4 MB of log in 2 s. `limit_repeats`
lets through the first record of each kind (logger, message template,
exception type) per interval; the next one after the interval says how many
were left out meanwhile.
"""
import logging
import threading
import time

INTERVAL_SECONDS = 10.0


class RepeatLimit(logging.Filter):
    """One record per kind per `interval` seconds, with a count of the rest."""

    MAX_KINDS = 1000  # message templates are few; this only bounds the table

    def __init__(self, interval: float = INTERVAL_SECONDS, clock=time.monotonic):
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._kinds = {}  # kind -> [start of its window, records left out since]
        self._lock = threading.Lock()  # threading mode; free under eventlet/gevent

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, str(record.msg), record.exc_info[0] if record.exc_info else None)
        now = self.clock()
        with self._lock:
            window = self._kinds.get(kind)
            if window is not None and now - window[0] < self.interval:
                window[1] += 1
                return False
            if len(self._kinds) >= self.MAX_KINDS:
                self._kinds.clear()
            self._kinds[kind] = [now, 0]
        if window is not None and window[1]:
            record.msg = (f"{record.msg} [{window[1]} more like this in the "
                          f"{now - window[0]:.0f} s before were not logged]")
        return True


def limit_repeats(*loggers) -> None:
    """Put one RepeatLimit on each logger (a Logger or a name), once."""
    for logger in loggers:
        if isinstance(logger, str):
            logger = logging.getLogger(logger)
        if not any(isinstance(f, RepeatLimit) for f in logger.filters):
            logger.addFilter(RepeatLimit())
