"""Telling reviewers what happened: notices become Socket.IO messages, always
after the commit.

Every reviewer's sockets (tabs, devices, other server processes) share the
room ``reviewer:<id>``; emitting to the room reaches all of them, through the
message queue when several processes run. Offers (`task-assigned`) go to each
socket by sid instead, each asking for its own ack (delivery.py).
"""
import logging

from . import database, metrics
from .acks import AckRecorder
from .delivery import Offers
from .forms import forms_of
from .extensions import db, socketio
from .notices import Assigned, Idle, Outcome, Revoked
from .presence import REVIEWER_NAMESPACE, sockets_of

log = logging.getLogger(__name__)

# A push of a large dispatch (an import handed to thousands of reviewers) lets
# the event loop run after this many notices, so other sockets are not starved.
PUSH_SLICE = 200


def reviewer_room(reviewer_id: int) -> str:
    return f"reviewer:{reviewer_id}"


class Notifier:
    """One app's outbound side: notices to sockets, offers and their acks."""

    def __init__(self, app, config, board):
        self.app = app
        self.config = config
        self.board = board
        self.acks = AckRecorder(app)
        self.offers = Offers(config, self.acks)

    def push(self, outcome: Outcome | list, sid: str | None = None) -> None:
        """Emit the notices of an outcome, in order, to all the reviewer's sockets.

        With `sid` (a socket that just connected), what only restates the
        reviewer's state (`idle`, a resent task) goes to that socket alone:
        the other tabs show it already. Every PUSH_SLICE notices it yields to
        the event loop, so call it after the commit, never inside a transaction.
        """
        self.board.changed()
        notices = outcome.notices if isinstance(outcome, Outcome) else outcome
        forms = self._forms([n.task["queue"] for n in notices if isinstance(n, Assigned)])
        for count, notice in enumerate(notices):
            if count and count % PUSH_SLICE == 0:
                database.yield_to_loop()
            restates = isinstance(notice, Idle) or getattr(notice, "resent", False)
            only = sid if sid and restates else None
            room = only or reviewer_room(notice.reviewer_id)
            if isinstance(notice, Assigned):
                targets = [only] if only else self._reviewer_sockets(notice.reviewer_id)
                self.offers.send(notice.task, notice.reviewer_id, targets,
                                 forms.get(notice.task["queue"]))
            elif isinstance(notice, Idle):
                socketio.emit("idle", {"reason": notice.reason}, to=room,
                              namespace=REVIEWER_NAMESPACE)
            elif isinstance(notice, Revoked):
                socketio.emit("task-revoked", {"task_id": notice.task_id,
                                               "reason": notice.reason},
                              to=room, namespace=REVIEWER_NAMESPACE)
            metrics.pushed(notice)

    def push_later(self, outcome: Outcome | list, sid: str | None = None) -> None:
        """Push once the current handler has returned, so a socket's ack (or
        the CONNECT packet) goes out before the messages that follow from it."""
        if outcome.notices if isinstance(outcome, Outcome) else outcome:
            socketio.start_background_task(self._push_safely, outcome, sid)

    def dispatch_later(self) -> None:
        """Hand pending tasks to free reviewers once the current handler has
        returned: after a change of skills or of a queue's rules, reviewers
        who qualify now may be free, and nobody else would wake them."""
        socketio.start_background_task(self._dispatch_safely)

    def _dispatch_safely(self) -> None:
        from .state import dispatcher
        with self.app.app_context():
            try:
                self.push(dispatcher().dispatch_pending(db.session))
            except Exception:
                log.exception("dispatch after a routing change failed")
            finally:
                db.session.remove()

    def _push_safely(self, outcome, sid) -> None:
        with self.app.app_context():
            try:
                self.push(outcome, sid)
            except Exception:
                log.exception("push failed")
            finally:
                db.session.remove()

    @staticmethod
    def _forms(queues: list[str]) -> dict:
        """The forms of these queues as they are now (one read, ended before
        any emit): an offer shows the form that will check its verdict."""
        if not queues:
            return {}
        try:
            return forms_of(db.session, queues)
        finally:
            db.session.rollback()

    def _reviewer_sockets(self, reviewer_id: int) -> list[str]:
        """The sids of the reviewer's /reviewer sockets, wherever they are.

        One process knows them all from its room (sockets join it on connect
        and leave it on disconnect); with a message queue some may be on other
        processes, and only the database knows those."""
        if not self.config.message_queue:
            return [sid for sid, _ in socketio.server.manager.get_participants(
                REVIEWER_NAMESPACE, reviewer_room(reviewer_id))]
        try:
            return [s for s, ns in sockets_of(db.session, reviewer_id)
                    if ns == REVIEWER_NAMESPACE]
        finally:
            db.session.rollback()  # end the read: nothing may stay open across emits

    @staticmethod
    def disconnect(sockets: list[tuple[str, str]]) -> None:
        """Disconnect these (sid, namespace) sockets, on whichever process holds them."""
        for sid, namespace in sockets:
            socketio.server.disconnect(sid, namespace=namespace)
