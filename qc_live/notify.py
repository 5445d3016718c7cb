"""Turning what dispatch decided into Socket.IO messages — always after the commit.

Every reviewer's sockets (tabs, devices, other server processes) share the
room ``reviewer:<id>``; emitting to the room reaches all of them, through the
message queue when several processes run.
"""
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from functools import partial
from typing import NamedTuple

import socketio as socketio_base

from . import dispatch, metrics
from .board import broadcaster
from .database import is_unavailable, run_write, yield_to_loop
from .dispatch import Assigned, Idle, Outcome, Revoked
from .extensions import db, socketio
from .presence import REVIEWER_NAMESPACE, sockets_of

log = logging.getLogger(__name__)
_app = None

# A push of a large dispatch (an import handed to thousands of reviewers) lets
# the event loop run after this many notices, so other sockets are not starved.
PUSH_SLICE = 200


def init_app(app) -> None:
    global _app
    _app = app


def reviewer_room(reviewer_id: int) -> str:
    return f"reviewer:{reviewer_id}"


def push(outcome: Outcome | list, sid: str | None = None) -> None:
    """Emit the notices of an outcome, in order, to all the reviewer's sockets.

    With `sid` (a socket that just connected), what only restates the
    reviewer's state (`idle`, a resent task) goes to that socket alone: the
    other tabs already show it. Every PUSH_SLICE notices it yields to the
    event loop, so call it after the commit, never inside a transaction.
    """
    broadcaster.changed()
    notices = outcome.notices if isinstance(outcome, Outcome) else outcome
    for count, notice in enumerate(notices):
        if count and count % PUSH_SLICE == 0:
            yield_to_loop()
        restates = isinstance(notice, Idle) or getattr(notice, "resent", False)
        room = sid if sid and restates else reviewer_room(notice.reviewer_id)
        if isinstance(notice, Assigned):
            _offer(notice, sid if sid and restates else None)
        elif isinstance(notice, Idle):
            socketio.emit("idle", {"reason": notice.reason}, to=room,
                          namespace=REVIEWER_NAMESPACE)
        elif isinstance(notice, Revoked):
            socketio.emit("task-revoked", {"task_id": notice.task_id, "reason": notice.reason},
                          to=room, namespace=REVIEWER_NAMESPACE)
        metrics.pushed(notice)


class Offer(NamedTuple):
    """One offer of a task to a reviewer. The same task offered to them again
    later (taken back, then handed out anew) is another offer."""
    task_id: int
    reviewer_id: int
    assigned_at: str  # as in the task dict (clock.iso)


def _offer(notice: Assigned, only_sid: str | None) -> None:
    """`task-assigned` to each socket of the reviewer (or to one), each asking
    for the Socket.IO ack; the first ack marks the task acknowledged."""
    offer = Offer(notice.task["id"], notice.reviewer_id, notice.task["assigned_at"])
    on_ack = partial(_acknowledged, offer)
    # With a message queue, the process holding each socket records the
    # delivery when the copy reaches it (OfferAwareQueue); alone, this one does.
    alone = not isinstance(socketio.server.manager, OfferAwareQueue)
    for target in [only_sid] if only_sid else _reviewer_sockets(notice.reviewer_id):
        if alone:
            deliveries.first_copy(offer, target, notice.task)
        socketio.emit("task-assigned", {"task": notice.task}, to=target,
                      namespace=REVIEWER_NAMESPACE, callback=on_ack)


def redeliver(task: dict, reviewer_id: int, sids: list[str]) -> None:
    """Offer the reviewer's held task again to these sockets of this process,
    directly, not through the message queue (see runtime.Runtime.follow_up_offers)."""
    offer = Offer(task["id"], reviewer_id, task["assigned_at"])
    on_ack = partial(_acknowledged, offer)
    for sid in sids:
        if deliveries.first_copy(offer, sid, task):
            socketio.emit("task-assigned", {"task": task}, to=sid,
                          namespace=REVIEWER_NAMESPACE, callback=on_ack, ignore_queue=True)


def _acknowledged(offer: Offer, *_payload) -> None:
    deliveries.acknowledged(offer)
    acks.add(offer.task_id, offer.reviewer_id)


def _content(task: dict) -> bytes:
    """A digest of what a supervisor's edit can change: a copy of an offer
    whose digest differs from the one shown is news to the reviewer."""
    shown = json.dumps([task.get("name"), task.get("payload"), task.get("priority"),
                        task.get("deadline")], sort_keys=True, default=str)
    return hashlib.blake2b(shown.encode(), digest_size=8).digest()


# How long an offer that ended (acknowledged, completed, taken back) is
# remembered: a copy of it arriving later than this through the queue would
# be shown again. Copies lag behind when a process pushes a large dispatch.
LATE_COPY_SECONDS = 60


@dataclass
class Delivery:
    """When this process first and last put an offer on its own sockets, on
    which (and what they were shown), and whether one of them acknowledged it."""
    first: float  # time.monotonic()
    last: float
    sids: dict = field(default_factory=dict)  # sid -> _content of the copy shown
    acked: bool = False


class Deliveries:
    """The offers this process put on its own sockets. The ack timeout counts
    from here, not from the moment the offer was made: an offer made on
    another process may have been lost on the way (the message queue), which
    is no fault of the reviewer's.

    In memory, and that is enough: the sockets it describes die with the
    process, and a reviewer's next socket, wherever it connects, gets the held
    task again, which starts a new record there. The sweep forgets offers
    that ended (`keep_only`)."""

    def __init__(self):
        self._offers: dict[Offer, Delivery] = {}
        self._lock = threading.Lock()  # for the threading mode; never held across a yield

    def first_copy(self, offer: Offer, sid: str, task: dict) -> bool:
        """Record that `sid` is shown this offer. False if it was shown this
        very copy already (then it need not be sent again)."""
        shown, now = _content(task), time.monotonic()
        with self._lock:
            record = self._offers.setdefault(offer, Delivery(now, now))
            if record.sids.get(sid) == shown:
                return False
            record.sids[sid], record.last = shown, now
            return True

    def acknowledged(self, offer: Offer) -> None:
        with self._lock:
            record = self._offers.get(offer)
            if record is not None:
                record.acked = True

    def get(self, offer: Offer) -> Delivery | None:
        """A copy of the record of this offer, if this process delivered it."""
        with self._lock:
            record = self._offers.get(offer)
            return None if record is None else Delivery(record.first, record.last,
                                                         dict(record.sids), record.acked)

    def keep_only(self, offers: set[Offer], read_at: float) -> None:
        """Forget the offers that ended: not among `offers` (those still
        unacknowledged, as read at `read_at`, a time.monotonic()), and not
        delivered within LATE_COPY_SECONDS before that."""
        horizon = read_at - LATE_COPY_SECONDS
        with self._lock:
            self._offers = {o: r for o, r in self._offers.items()
                            if o in offers or r.last >= horizon}


deliveries = Deliveries()


class OfferAwareQueue:
    """Mixed into python-socketio's pub/sub client manager (several processes).

    Each message emitted through the queue is handled by every process, the
    emitting one included (`PubSubManager._handle_emit`). A `task-assigned`
    that reaches one of this process's own sockets that way is recorded as
    delivered here (`deliveries`), and its ack is recorded here too, besides
    the copy python-socketio sends back through the queue to the process that
    made the offer. So an ack never depends on the queue, and the sweep
    re-sends only what never arrived (runtime.Runtime.follow_up_offers). A copy
    the sweep has already re-sent to that socket is dropped: the reviewer is
    shown an offer once.
    """

    def _handle_emit(self, message):
        here = self._offer_to_own_socket(message)
        if here is None:
            return super()._handle_emit(message)
        offer, sid, payload = here
        if not deliveries.first_copy(offer, sid, payload["task"]):
            return
        remote, sender = message.get("callback"), message.get("host_id")

        def on_ack(*args):
            _acknowledged(offer)
            if remote is not None and len(remote) == 3:  # the offering process asked too
                self._return_callback(sender, *remote, *args)
        socketio_base.Manager.emit(self, "task-assigned", payload, namespace=REVIEWER_NAMESPACE,
                                   room=sid, callback=on_ack)

    def _offer_to_own_socket(self, message):
        """(offer, sid, payload) if the message is a `task-assigned` as
        `_offer` sends it, to a socket of this process; else None."""
        data, sid = message.get("data"), message.get("room")
        if message.get("event") != "task-assigned" or message.get("binary") \
                or message.get("namespace") != REVIEWER_NAMESPACE or not isinstance(sid, str) \
                or not isinstance(data, list) or len(data) != 1 or not isinstance(data[0], dict):
            return None
        task = data[0].get("task")
        if not isinstance(task, dict) or not (self.is_connected(sid, REVIEWER_NAMESPACE)
                                              or self.is_pre_connected(sid, REVIEWER_NAMESPACE)):
            return None
        return Offer(task["id"], task["assignee_id"], task["assigned_at"]), sid, data[0]


def queue_manager(url: str, channel: str):
    """The client manager for QC_MESSAGE_QUEUE: the one Flask-SocketIO would
    pick for this URL, aware of offers (OfferAwareQueue)."""
    if url.startswith(("redis://", "rediss://")):
        base = socketio_base.RedisManager
    elif url.startswith("kafka://"):
        base = socketio_base.KafkaManager
    elif url.startswith("zmq"):
        base = socketio_base.ZmqManager
    else:
        base = socketio_base.KombuManager
    manager = type(f"OfferAware{base.__name__}", (OfferAwareQueue, base), {})
    return manager(url, channel=channel)


def _reviewer_sockets(reviewer_id: int) -> list[str]:
    """The sids of the reviewer's /reviewer sockets, wherever they are connected.

    Each socket is asked for its own ack, so the offer needs sids, not the
    room. One process knows them all from its room (sockets join it on
    connect and leave it on disconnect); with a message queue some may be on
    other processes, and only the database knows those."""
    if not _app.extensions["qc_config"].message_queue:
        return [sid for sid, _ in socketio.server.manager.get_participants(
            REVIEWER_NAMESPACE, reviewer_room(reviewer_id))]
    try:
        return [s for s, ns in sockets_of(db.session, reviewer_id) if ns == REVIEWER_NAMESPACE]
    finally:
        db.session.rollback()  # end the read: nothing may stay open across emits


class AckRecorder:
    """Writes the acks of `task-assigned` to the database in batches.

    An ack only has to land before QC_ACK_TIMEOUT (30 s) runs out, so instead
    of a write transaction per ack, the acks that arrive within `delay`
    seconds share one. A crash loses at most that much: those offers are taken
    back by the sweep after the timeout, as if the ack never came."""

    def __init__(self, delay: float = 0.05):
        self.delay = delay
        self._waiting = []
        self._scheduled = False
        # Only the threading mode needs it; never held across a yield.
        self._lock = threading.Lock()

    def add(self, task_id: int, reviewer_id: int, *_payload) -> None:
        with self._lock:
            self._waiting.append((task_id, reviewer_id))
            start, self._scheduled = not self._scheduled, True
        if start:
            socketio.start_background_task(self._flush_later)

    def _flush_later(self) -> None:
        socketio.sleep(self.delay)
        with self._lock:
            batch, self._waiting, self._scheduled = self._waiting, [], False
        with _app.app_context():
            try:
                failed = self._write(batch)
                if failed and len(batch) > 1 and not is_unavailable(failed):
                    # One ack that cannot be written must not cost the others theirs.
                    for ack in batch:
                        self._write([ack])
            finally:
                db.session.remove()

    @staticmethod
    def _write(batch) -> Exception | None:
        try:
            run_write(db.session, dispatch.acknowledge_many, batch)
            return None
        except Exception as exc:
            # Not fatal: at worst these offers time out and are handed on.
            log.exception("could not record %d acks", len(batch))
            return exc


acks = AckRecorder()


def push_later(outcome: Outcome | list, sid: str | None = None) -> None:
    """Push once the current handler has returned, so a socket's ack (or the
    CONNECT packet) goes out before the messages that follow from it."""
    if outcome.notices if isinstance(outcome, Outcome) else outcome:
        socketio.start_background_task(_push_safely, outcome, sid)


def _push_safely(outcome, sid) -> None:
    with _app.app_context():
        try:
            push(outcome, sid)
        except Exception:
            log.exception("push failed")
        finally:
            db.session.remove()


def disconnect(sockets: list[tuple[str, str]]) -> None:
    """Disconnect these (sid, namespace) sockets, on whichever process holds them."""
    for sid, namespace in sockets:
        socketio.server.disconnect(sid, namespace=namespace)
