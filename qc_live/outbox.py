"""The webhook outbox: events written with the transitions they tell of, and
the claims and settlements of the couriers that deliver them (webhooks.py).

    (transition) --record--> pending --claim--> (leased) --settle--> delivered
                                ^                  |                 failed (retries over)
                                +--- back-off -----+
    delivered|failed|pending --redeliver--> pending, at once

`record` runs inside the transition's own write transaction (lifecycle.Work
calls it before the commit), so an event exists exactly when its transition
does: a crash loses neither, a rollback keeps neither. Nothing is written
when no active subscription wants the event.

A claim leases due rows to one process (`claimed_by`, `claimed_until`) in a
short transaction of its own (SKIP LOCKED on MySQL/MariaDB; SQLite
serialises writers), so two processes never hold one row at once; the HTTP
request happens after that commit, never inside a transaction. A process
that dies mid-delivery leaves its lease to run out, and the row is claimed
again: delivery is at least once.
"""
import json
import random
import uuid
from datetime import timedelta

import sqlalchemy as sa

from .clock import iso, utcnow
from .models import Webhook, WebhookDelivery

webhooks, deliveries = Webhook.__table__, WebhookDelivery.__table__

COMPLETED, EXPIRED, CANCELLED, FINALIZED = ("task.completed", "task.expired",
                                            "task.cancelled", "task.finalized")
EVENT_TYPES = (COMPLETED, EXPIRED, CANCELLED, FINALIZED)
# What a transition announces. task.finalized is announced on its own, by
# lifecycle.finalize, once the verdict is final (at completion unless audited).
ANNOUNCES = {COMPLETED: (COMPLETED,), EXPIRED: (EXPIRED,), CANCELLED: (CANCELLED,),
             FINALIZED: (FINALIZED,)}
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
STATUSES = (PENDING, DELIVERED, FAILED)
# The back-off never waits longer than this between two attempts.
MAX_BACKOFF_SECONDS = 3600.0
MAX_ERROR = 500

_ACTIVE = sa.select(webhooks.c.id, webhooks.c.events).where(webhooks.c.active.is_(True))
_ANY_DUE = (sa.select(deliveries.c.id)
            .where(deliveries.c.status == PENDING,
                   deliveries.c.next_attempt_at <= sa.bindparam("now"),
                   sa.or_(deliveries.c.claimed_until.is_(None),
                          deliveries.c.claimed_until <= sa.bindparam("now")))
            .limit(1))


def body_of(event_id: str, kind: str, at, task: dict) -> str:
    """The JSON body of a delivery, as sent and signed (contract: Results out)."""
    return json.dumps({"event_id": event_id, "type": kind, "at": iso(at), "task": task},
                      separators=(",", ":"), ensure_ascii=False)


def record(conn, now, announced: list[tuple[str, dict]], give_up_seconds: float) -> int:
    """Write the outbox rows of `announced` ((event type, task) pairs) for
    every active subscription that wants them, in the caller's transaction.
    Returns how many rows were written."""
    subscriptions = conn.execute(_ACTIVE).all()
    if not subscriptions:
        return 0
    retry_until = now + timedelta(seconds=give_up_seconds)
    rows = []
    for announced_type, task in announced:
        for kind in ANNOUNCES[announced_type]:
            for webhook_id, events in subscriptions:
                if kind not in (events or ()):
                    continue
                event_id = str(uuid.uuid4())
                rows.append({"event_id": event_id, "webhook_id": webhook_id, "type": kind,
                             "task_id": task["id"], "body": body_of(event_id, kind, now, task),
                             "status": PENDING, "attempts": 0, "next_attempt_at": now,
                             "retry_until": retry_until, "created_at": now})
    if rows:
        conn.execute(sa.insert(deliveries), rows)
    return len(rows)


# --- the couriers' side -----------------------------------------------------------

def anything_due(session) -> bool:
    """A cheap read before a claim: on SQLite a claim takes the writer lock,
    which an idle poll must not do every second."""
    found = session.execute(_ANY_DUE, {"now": utcnow()}).first() is not None
    session.rollback()
    return found


def claim(session, process_id: str, lease_seconds: float, limit: int) -> list[dict]:
    """Lease up to `limit` due deliveries to this process (in run_write):
    each counts one attempt from now. Rows another transaction holds are
    skipped. Returns what a courier needs to send each one."""
    now = utcnow()
    ids = session.execute(
        sa.select(deliveries.c.id)
        .where(deliveries.c.status == PENDING, deliveries.c.next_attempt_at <= now,
               sa.or_(deliveries.c.claimed_until.is_(None), deliveries.c.claimed_until <= now))
        .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        .limit(limit).with_for_update(skip_locked=True)).scalars().all()
    if not ids:
        return []
    session.execute(sa.update(deliveries).where(deliveries.c.id.in_(ids))
                    .values(claimed_by=process_id,
                            claimed_until=now + timedelta(seconds=lease_seconds),
                            attempts=deliveries.c.attempts + 1))
    rows = session.execute(
        sa.select(deliveries.c.id, deliveries.c.event_id, deliveries.c.type,
                  deliveries.c.body, deliveries.c.attempts, webhooks.c.url, webhooks.c.secret)
        .join(webhooks, webhooks.c.id == deliveries.c.webhook_id)
        .where(deliveries.c.id.in_(ids)).order_by(deliveries.c.id)).all()
    return [dict(row._mapping) for row in rows]


def backoff(attempts: int, first_seconds: float) -> float:
    """Exponential back-off with full jitter: uniform in [0, first x 2^(n-1)],
    capped, after the n-th failed attempt."""
    ceiling = min(MAX_BACKOFF_SECONDS, first_seconds * 2 ** min(attempts - 1, 40))
    return random.uniform(0, ceiling)


def settle(session, delivery_id: int, process_id: str, error: str | None,
           first_backoff: float) -> str | None:
    """Write what became of this process's attempt (in run_write): delivered
    (`error` None), or pending again after a back-off, or failed once its
    retries are over. A row whose lease another process took meanwhile (or a
    redeliver cleared) is left alone (None)."""
    now = utcnow()
    row = session.execute(sa.select(deliveries.c.attempts, deliveries.c.retry_until)
                          .where(deliveries.c.id == delivery_id,
                                 deliveries.c.claimed_by == process_id)
                          .with_for_update()).first()
    if row is None:
        return None
    values = {"claimed_by": None, "claimed_until": None}
    if error is None:
        values.update(status=DELIVERED, delivered_at=now, last_error=None)
    elif now >= row.retry_until:
        values.update(status=FAILED, last_error=error[:MAX_ERROR])
    else:
        values.update(status=PENDING, last_error=error[:MAX_ERROR],
                      next_attempt_at=now + timedelta(seconds=backoff(row.attempts,
                                                                      first_backoff)))
    session.execute(sa.update(deliveries).where(deliveries.c.id == delivery_id).values(**values))
    return values.get("status")


# --- the API's side ---------------------------------------------------------------

def delivery_dict(row) -> dict:
    return {"event_id": row.event_id, "type": row.type, "task_id": row.task_id,
            "status": row.status, "attempts": row.attempts, "last_error": row.last_error,
            "created_at": iso(row.created_at), "next_attempt_at":
            iso(row.next_attempt_at) if row.status == PENDING else None,
            "delivered_at": iso(row.delivered_at)}


def delivery_log(session, webhook_id: int, status: str | None, limit: int) -> list[dict]:
    """A subscription's deliveries, newest first."""
    statement = sa.select(deliveries).where(deliveries.c.webhook_id == webhook_id)
    if status is not None:
        statement = statement.where(deliveries.c.status == status)
    rows = session.execute(statement.order_by(deliveries.c.id.desc()).limit(limit)).all()
    session.rollback()
    return [delivery_dict(row) for row in rows]


def redeliver(session, webhook_id: int, event_id: str, give_up_seconds: float):
    """Send this event again, at once, with the same event_id and body, and
    retry it for another give-up period (in run_write). A lease in progress
    is dropped: its outcome will not be written. The row, or None."""
    now = utcnow()
    where = (deliveries.c.webhook_id == webhook_id, deliveries.c.event_id == event_id)
    found = session.execute(sa.update(deliveries).where(*where).values(
        status=PENDING, next_attempt_at=now,
        retry_until=now + timedelta(seconds=give_up_seconds), claimed_by=None,
        claimed_until=None)).rowcount
    if not found:
        return None
    return delivery_dict(session.execute(sa.select(deliveries).where(*where)).first())


def stop_subscription(session, webhook_id: int) -> bool:
    """DELETE /webhooks/<id>: no new events for it, and what it still had
    pending fails (its log stays readable). False if there is no such active
    subscription."""
    stopped = session.execute(sa.update(webhooks).where(webhooks.c.id == webhook_id,
                                                        webhooks.c.active.is_(True))
                              .values(active=False)).rowcount
    if stopped:
        session.execute(sa.update(deliveries).where(deliveries.c.webhook_id == webhook_id,
                                                    deliveries.c.status == PENDING)
                        .values(status=FAILED, last_error="the webhook was deleted",
                                claimed_by=None, claimed_until=None))
    return bool(stopped)
