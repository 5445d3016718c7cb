"""Offers reaching reviewers: the process that holds a socket answers for it.

An offer is a `task-assigned` asking for the Socket.IO ack. The process that
made it may not hold the reviewer's sockets (several processes share a Redis
message queue, which can lose messages), so:

- each process records the offers that reached its own sockets
  (`Deliveries`): those it sent itself, and copies arriving through the queue
  (`OfferAwareQueue`, whose acks are written here too, not only sent back);
- its sweep follows up every unacknowledged offer of a reviewer with a socket
  here (`Offers.follow_up`): one no copy of which reached that socket after
  QC_OFFER_REDELIVER_SECONDS is sent again, directly; one delivered here and
  left unanswered for QC_ACK_TIMEOUT (a frozen tab) is for the sweep to take
  back (sweep.take_back_unacknowledged). A holder with no socket anywhere is
  under the grace period instead: nobody is paused for an offer nobody could
  receive.

In memory, and that is enough: the sockets it describes die with the process,
and a reviewer's next socket, wherever it connects, is offered the held task
again, which starts a new record there.
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
import sqlalchemy as sa

from . import sql
from .clock import ago, iso
from .extensions import socketio
from .forms import forms_of
from .lifecycle import task_dict
from .presence import REVIEWER_NAMESPACE

log = logging.getLogger(__name__)

# How long an offer that ended (acknowledged, completed, taken back) is
# remembered: a copy of it arriving later than this through the queue would
# be shown again. Copies lag behind when a process pushes a large dispatch.
LATE_COPY_SECONDS = 60


class Offer(NamedTuple):
    """One offer of a task to a reviewer. The same task offered to them again
    later (taken back, then handed out anew) is another offer."""
    task_id: int
    reviewer_id: int
    assigned_at: str  # as in the task dict (clock.iso)

    @classmethod
    def of(cls, task: dict, reviewer_id: int) -> "Offer":
        return cls(task["id"], reviewer_id, task["assigned_at"])


def _content(task: dict) -> bytes:
    """A digest of what a supervisor's edit can change: a copy of an offer
    whose digest differs from the one shown is news to the reviewer."""
    shown = json.dumps([task.get("name"), task.get("payload"), task.get("priority"),
                        task.get("deadline")], sort_keys=True, default=str)
    return hashlib.blake2b(shown.encode(), digest_size=8).digest()


@dataclass
class Delivery:
    """When this process first and last put an offer on its own sockets, on
    which (and what they were shown), and whether one of them acknowledged it."""
    first: float  # time.monotonic()
    last: float
    sids: dict = field(default_factory=dict)  # sid -> _content of the copy shown
    acked: bool = False
    # sid -> when that socket was first shown the offer: the ack timeout runs
    # per socket (a tab opened after another closed has its own time to answer).
    shown_at: dict = field(default_factory=dict)


class Deliveries:
    """The offers this process put on its own sockets. The ack timeout counts
    from here, not from the moment the offer was made: an offer made on another
    process may have been lost on the way, which is no fault of the reviewer's."""

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
            record.shown_at.setdefault(sid, now)
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
                                                         dict(record.sids), record.acked,
                                                         dict(record.shown_at))

    def keep_only(self, offers: set[Offer], read_at: float) -> None:
        """Forget the offers that ended: not among `offers` (those still
        unacknowledged, as read at `read_at`, a time.monotonic()), and not
        delivered within LATE_COPY_SECONDS before that."""
        horizon = read_at - LATE_COPY_SECONDS
        with self._lock:
            self._offers = {o: r for o, r in self._offers.items()
                            if o in offers or r.last >= horizon}


def _unanswered(record: Delivery, sids: list[str], now: float, timeout: float) -> bool:
    """Every socket of the reviewer here was shown the offer, the latest of
    them at least `timeout` seconds ago, and none answered. Counting from the
    first copy instead paused a reviewer whose tab closed before answering and
    who came back after the timeout: the reopened tab was shown the offer, and
    a sweep between that and its ack found it "unanswered" (seen on CI)."""
    shown = [record.shown_at.get(sid) for sid in sids]
    return None not in shown and now - max(shown) >= timeout


class Offers:
    """One app's offers: sending them, recording them, following them up."""

    def __init__(self, config, acks):
        self.config = config
        self.acks = acks  # acks.AckRecorder
        self.deliveries = Deliveries()

    def acknowledged(self, offer: Offer, *_payload) -> None:
        self.deliveries.acknowledged(offer)
        self.acks.add(offer.task_id, offer.reviewer_id)

    def send(self, task: dict, reviewer_id: int, sids: list[str],
             form: dict | None = None) -> None:
        """`task-assigned` ({"task", "form": its queue's form or null}) to
        each of these sockets, wherever they are connected, each asking for
        the ack; the first ack marks the task acknowledged. With a message
        queue, the process holding each socket records the delivery when the
        copy reaches it (OfferAwareQueue); alone, this one does."""
        offer = Offer.of(task, reviewer_id)
        on_ack = partial(self.acknowledged, offer)
        alone = not isinstance(socketio.server.manager, OfferAwareQueue)
        for sid in sids:
            if alone:
                self.deliveries.first_copy(offer, sid, task)
            socketio.emit("task-assigned", {"task": task, "form": form}, to=sid,
                          namespace=REVIEWER_NAMESPACE, callback=on_ack)

    def resend(self, task: dict, reviewer_id: int, sids: list[str],
               form: dict | None = None) -> None:
        """Offer the task again to these sockets of this process, directly,
        not through the message queue."""
        offer = Offer.of(task, reviewer_id)
        on_ack = partial(self.acknowledged, offer)
        for sid in sids:
            if self.deliveries.first_copy(offer, sid, task):
                socketio.emit("task-assigned", {"task": task, "form": form}, to=sid,
                              namespace=REVIEWER_NAMESPACE, callback=on_ack, ignore_queue=True)

    def follow_up(self, session, local_sockets: dict) -> list[tuple]:
        """Follow up every unacknowledged offer to a reviewer with a socket in
        `local_sockets` (this process's: sid -> runtime.LocalSocket): re-send
        what never reached it, re-record acks whose write did not land.
        Returns the offers delivered here and left unanswered for the ack
        timeout, as (task id, holder id, assigned_at), for the sweep to take
        back."""
        cfg = self.config
        read_at = time.monotonic()
        waiting = session.execute(
            sa.select(sql.tasks.c.id, sql.tasks.c.holder_id, sql.tasks.c.assigned_at)
            .where(sql.tasks.c.status == sql.ASSIGNED, sql.tasks.c.acked_at.is_(None))).all()
        session.rollback()
        here = {}
        for sid, sock in list(local_sockets.items()):
            if sock.namespace == REVIEWER_NAMESPACE:
                here.setdefault(sock.user_id, []).append(sid)
        now, resend_made_before = time.monotonic(), ago(cfg.offer_redeliver_seconds)
        current, resend, overdue = set(), {}, []
        for task_id, holder_id, assigned_at in waiting:
            offer = Offer(task_id, holder_id, iso(assigned_at))
            current.add(offer)
            sids = here.get(holder_id)
            if not sids:
                continue
            record = self.deliveries.get(offer)
            if record is not None and record.acked:
                # A socket here acked it, but the write has not landed (or failed).
                self.acks.add(task_id, holder_id)
            elif record is not None and _unanswered(record, sids, now, cfg.ack_timeout_seconds):
                overdue.append((task_id, holder_id, assigned_at))
            elif assigned_at <= resend_made_before:
                missing = [sid for sid in sids if record is None or sid not in record.sids]
                if missing:
                    resend[offer] = missing
        self.deliveries.keep_only(current, read_at)
        if resend:
            log.info("re-sending %d offer(s) no copy of which reached this process's "
                     "sockets in %ss", len(resend), cfg.offer_redeliver_seconds)
            self._resend_all(session, resend)
        return overdue

    def _resend_all(self, session, resend: dict) -> None:
        try:
            rows = session.execute(sa.select(sql.tasks).where(
                sql.tasks.c.id.in_([offer.task_id for offer in resend]))).all()
            found = forms_of(session, [row.queue for row in rows])
        finally:
            session.rollback()  # nothing may stay open across emits
        tasks = {row.id: task_dict(row) for row in rows}
        for offer, sids in resend.items():
            task = tasks.get(offer.task_id)
            # Still this very offer, still unanswered? (read after the first look)
            if task is not None and task["status"] == sql.ASSIGNED \
                    and task["assignee_id"] == offer.reviewer_id \
                    and task["assigned_at"] == offer.assigned_at:
                self.resend(task, offer.reviewer_id, sids, found.get(task["queue"]))


class OfferAwareQueue:
    """Mixed into python-socketio's pub/sub client manager (several processes).

    Each message emitted through the queue is handled by every process, the
    emitting one included (`PubSubManager._handle_emit`, python-socketio
    5.18). A `task-assigned` that reaches one of this process's own sockets
    that way is recorded as delivered here, and its ack is recorded here too,
    besides the copy python-socketio sends back through the queue to the
    process that made the offer. So an ack never depends on the queue, and the
    sweep re-sends only what never arrived. A copy the sweep has already
    re-sent to that socket is dropped: the reviewer is shown an offer once.
    `offers` (this app's Offers) is set by create_app.
    """
    offers: Offers | None = None

    def _handle_emit(self, message):
        here = self._offer_to_own_socket(message) if self.offers is not None else None
        if here is None:
            return super()._handle_emit(message)
        offer, sid, payload = here
        if not self.offers.deliveries.first_copy(offer, sid, payload["task"]):
            return
        remote, sender = message.get("callback"), message.get("host_id")

        def on_ack(*args):
            self.offers.acknowledged(offer)
            if remote is not None and len(remote) == 3:  # the offering process asked too
                self._return_callback(sender, *remote, *args)
        socketio_base.Manager.emit(self, "task-assigned", payload, namespace=REVIEWER_NAMESPACE,
                                   room=sid, callback=on_ack)

    def _offer_to_own_socket(self, message):
        """(offer, sid, payload) if the message is a `task-assigned` as
        `Offers.send` sends it, to a socket of this process; else None."""
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
