"""Group commit on SQLite: completions that queue up while one is being written
share the next write transaction and its one commit.

SQLite serialises writers anyway, and what a write transaction costs there
(BEGIN IMMEDIATE, writing the WAL at commit) is paid once per group instead
of once per completion. On MySQL/MariaDB, where transactions run side by
side, `run_write_shared` is plain `database.run_write`.

How a group forms: one caller at a time leads. It lets the event loop run
once (`let_others_queue`), so that the calls already waiting to run queue up
behind it, then runs every queued work (up to MAX_GROUP) in one write
transaction, commits once, and hands the lead to the first caller that queued
meanwhile. The others wait for their outcome outside any transaction.
"""
import logging
import threading
import weakref

from . import database

log = logging.getLogger(__name__)

# A group's transaction holds the event loop: keep it to a few ms.
MAX_GROUP = 32


class _Queued:
    """One caller's work waiting for a shared transaction."""
    __slots__ = ("work", "ready", "finished", "value", "error")

    def __init__(self, work):
        self.work = work
        # Created at call time, after run.py's monkey-patching: green then.
        self.ready = threading.Event()
        self.finished = False
        self.value = self.error = None

    def finish(self, value=None, error=None) -> None:
        self.value, self.error, self.finished = value, error, True
        self.ready.set()

    def outcome(self):
        if self.error is not None:
            raise self.error
        return self.value


class Group:
    """The callers of run_write_shared on one SQLite engine."""

    def __init__(self):
        self.lock = threading.Lock()
        self.queue: list[_Queued] = []
        self.leading = False

    def pass_lead(self) -> None:
        """(Under self.lock.) The first one queued leads next, or nobody."""
        if self.queue:
            self.queue[0].ready.set()
        else:
            self.leading = False

    def abandon(self, queued: _Queued) -> None:
        """A waiter stopped waiting (its green thread was killed, say)."""
        with self.lock:
            if queued in self.queue:
                handed_the_lead = self.queue[0] is queued and queued.ready.is_set()
                self.queue.remove(queued)
                if handed_the_lead:
                    self.pass_lead()


# Engine -> its Group. Per engine, so that apps built in one process (tests)
# never share one.
_groups: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def enable(engine) -> None:
    """Turn group commit on for this engine if it is SQLite (create_app does)."""
    if engine.dialect.name == "sqlite":
        _groups[engine] = Group()


def group_of(engine) -> Group | None:
    return _groups.get(engine)


def let_others_queue() -> None:
    """The leader's one turn of the event loop before it takes its group."""
    database.pause(0)


def run_write_shared(session, work, refusals: tuple = ()):
    """`database.run_write(session, work)`, sharing its transaction with
    concurrent callers on SQLite.

    `work` may raise one of `refusals` only before it has written anything:
    such a refusal goes to its caller and the others' work is committed. Any
    other failure rolls the group back and runs each work in a transaction of
    its own, so a caller only ever gets its own outcome."""
    group = _groups.get(session.get_bind())
    if group is None:  # not SQLite
        return database.run_write(session, work)
    me = _Queued(work)
    with group.lock:
        group.queue.append(me)
        lead = not group.leading
        group.leading = True
    if not lead:
        try:
            me.ready.wait()
        except BaseException:
            group.abandon(me)
            raise
        if me.finished:
            return me.outcome()
        # Handed the lead: ready was set for that, and our work is still queued.
    taken = []
    try:
        let_others_queue()
        with group.lock:
            taken = group.queue[:MAX_GROUP]
            del group.queue[:len(taken)]
        _run(session, taken, refusals)
    finally:
        # Whatever happened (even this green thread being killed), nobody
        # waits for a group that will not run, and someone leads next.
        for queued in taken:
            if not queued.finished:
                queued.finish(error=RuntimeError("shared write transaction did not run"))
        with group.lock:
            if me in group.queue:  # stopped before taking its group
                group.queue.remove(me)
            group.pass_lead()
    return me.outcome()


def _run(session, taken: list[_Queued], refusals: tuple) -> None:
    def work_all(session):
        outcomes = []
        for queued in taken:
            try:
                outcomes.append((queued.work(session), None))
            except refusals as refusal:  # wrote nothing: the others go on
                outcomes.append((None, refusal))
        return outcomes

    try:
        outcomes = database.run_write(session, work_all)
    except Exception as exc:
        if len(taken) == 1 or database.sqlite_busy(exc) or database.is_unavailable(exc):
            # Nobody's fault but the database's: each alone would fail the same.
            for queued in taken:
                queued.finish(error=exc)
            return
        log.info("shared write transaction of %d failed (%s); running each alone",
                 len(taken), exc)
        for queued in taken:
            try:
                queued.finish(value=database.run_write(session, queued.work))
            except Exception as own:
                queued.finish(error=own)
        return
    for queued, (value, error) in zip(taken, outcomes):
        queued.finish(value, error)
