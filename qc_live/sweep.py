"""Everything that happens because time passed, run by each process every
QC_SWEEP_SECONDS (runtime.py calls `Sweep.run`):

1. processes whose lease ran out are forgotten, with their sockets: their
   reviewers are offline since the dead process's last heartbeat;
2. tasks past their deadline expire;
3. offers are followed up (delivery.py): re-sent where they never arrived,
   taken back where a reviewer's screen left them unanswered;
4. a reviewer offline for the whole grace period loses its task, back to its
   place in the queue: this is where a task is requeued after a disconnect;
5. whatever is pending and has a free qualified reviewer is handed out (a
   task a concurrent claim skipped, one that just became eligible: a task
   of a queue with `relax_after_s` that has now waited that long may go to
   reviewers of any level, and this step is what gives it to them).

Each step is its own transaction with row locks, safe to run in many
processes at once: what another transaction holds is skipped, and looked at
again next time.
"""
import logging

import sqlalchemy as sa

from . import lifecycle, presence, sql
from .clock import ago, utcnow
from .database import run_write
from .lifecycle import ASSIGNED, Work
from .models import Connection, Role, ServerProcess, Task, User
from .notices import Idle, Outcome, Revoked
from .presence import REVIEWER_NAMESPACE, live_socket_exists

log = logging.getLogger(__name__)


class Sweep:
    """One process's sweep, bound to its dispatcher, notifier and runtime."""

    def __init__(self, config, dispatcher, notifier, runtime):
        self.config = config
        self.dispatcher = dispatcher
        self.notifier = notifier
        self.runtime = runtime

    def run(self, session) -> None:
        cfg, push = self.config, self.notifier.push
        # Judge others' leases only while our own renews on time: if the
        # database is too slow for us, it is too slow for them as well.
        if self.runtime.lease_is_fresh():
            reaped = run_write(session, reap_dead_processes, cfg.lease_seconds,
                               self.runtime.process_id)
            if reaped:
                log.info("forgot dead server process(es) %s", ", ".join(reaped))
        expired = expire_overdue(self.dispatcher, session)
        if expired.value:
            log.info("expired task(s) past their deadline: %s", expired.value)
            push(expired)
        unanswered = self.notifier.offers.follow_up(session, self.runtime.local_sockets)
        if unanswered:
            taken = take_back_unacknowledged(self.dispatcher, session, unanswered)
            if taken.value:
                log.info("took back unacknowledged task(s) %s", taken.value)
                push(taken)
        requeued = requeue_abandoned(self.dispatcher, session)
        if requeued.value:
            log.info("requeued abandoned task(s) %s", requeued.value)
            push(requeued)
        push(self.dispatcher.dispatch_pending(session))


def reap_dead_processes(session, lease_seconds: float, me: str | None = None) -> list[str]:
    """Forget processes whose lease ran out, and their sockets; their ids.

    A reviewer left with no live socket is offline since the dead process's
    last heartbeat: its grace period counts from there. A holder with no
    socket row at all and no offline mark (its task came from a REST call
    before any socket) starts its grace period now."""
    cutoff = ago(lease_seconds)
    dead = session.execute(sa.select(ServerProcess.id, ServerProcess.heartbeat_at)
                           .where(ServerProcess.heartbeat_at <= cutoff,
                                  ServerProcess.id != (me or ""))
                           .with_for_update(skip_locked=True)).all()
    for process_id, last_seen in dead:
        user_ids = session.scalars(sa.select(Connection.user_id).distinct()
                                   .where(Connection.process_id == process_id,
                                          Connection.namespace == REVIEWER_NAMESPACE)).all()
        session.execute(sa.delete(Connection).where(Connection.process_id == process_id))
        session.execute(sa.delete(ServerProcess).where(ServerProcess.id == process_id))
        for user_id in user_ids:
            if not presence.is_online(session, user_id, lease_seconds):
                session.execute(sa.update(User).where(User.id == user_id,
                                                      User.offline_since.is_(None))
                                .values(offline_since=last_seen))
    any_socket = sa.exists().where(Connection.user_id == User.id,
                                   Connection.namespace == REVIEWER_NAMESPACE)
    holds = sa.exists().where(Task.holder_id == User.id)
    session.execute(sa.update(User)
                    .where(User.offline_since.is_(None), User.role == Role.REVIEWER.value,
                           holds, ~any_socket)
                    .values(offline_since=utcnow()))
    return [process_id for process_id, _ in dead]


def requeue_abandoned(dispatcher, session) -> Outcome:
    """Tasks whose holder has had no live socket for the grace period go back
    to their place in the queue (`task-revoked`, reason 'abandoned': normally
    nobody hears it, a socket wrongly taken for gone does); the queue is then
    dispatched. Outcome.value: the task ids."""
    grace, lease = dispatcher.grace_seconds, dispatcher.lease_seconds

    def work(w: Work):
        cutoff = ago(grace)
        candidates = w.conn.execute(
            sa.select(sql.tasks.c.id).join(User, User.id == sql.tasks.c.holder_id)
            .where(sql.tasks.c.status == ASSIGNED, User.offline_since.is_not(None),
                   User.offline_since <= cutoff,
                   ~live_socket_exists(User.id, lease))).scalars().all()
        requeued = []
        for task_id in candidates:
            row = lifecycle.lock(w, task_id, (ASSIGNED,), "task_not_assigned", sweeping=True)
            if row is None:
                continue
            holder = lifecycle.lock_reviewer(w, row.holder_id)  # ours already: a re-read
            if holder.offline_since is None or holder.offline_since > cutoff:
                continue  # back meanwhile
            lifecycle.requeue(w, row, "requeued")
            requeued.append((row.holder_id, task_id))
        return requeued

    requeued = lifecycle.run(session, work)
    outcome = Outcome([t for _, t in requeued],
                      [Revoked(holder, t, "abandoned") for holder, t in requeued])
    return outcome.extend(dispatcher.dispatch_pending(session)) if requeued else outcome


def expire_overdue(dispatcher, session, batch: int = 500) -> Outcome:
    """Tasks past their deadline, pending or assigned, expire; holders are told
    (`task-revoked`, reason 'expired') and get their next task.
    Outcome.value: the expired task ids."""
    def work(w: Work):
        due = w.conn.execute(
            sa.select(sql.tasks.c.id)
            .where(sql.tasks.c.status.in_(lifecycle.LIVE), sql.tasks.c.deadline.is_not(None),
                   sql.tasks.c.deadline <= w.now)
            .order_by(sql.tasks.c.deadline).limit(batch)).scalars().all()
        expired, notices = [], []
        for task_id in due:
            row = lifecycle.lock(w, task_id, lifecycle.LIVE, "task_final", sweeping=True)
            if row is None:
                continue  # busy right now; the next sweep gets it
            lifecycle.expire(w, row)
            lifecycle.free(w, row.holder_id)
            expired.append(task_id)
            if row.holder_id is not None:
                notices.append(Revoked(row.holder_id, task_id, "expired"))
        return Outcome(expired, notices)

    outcome = lifecycle.run(session, work)
    if outcome.notices:
        outcome.extend(dispatcher.dispatch_pending(session))
    return outcome


def take_back_unacknowledged(dispatcher, session, offers) -> Outcome:
    """Offers their reviewer left unanswered (a frozen tab) go back to their
    place in the queue and on to the next free reviewer; the silent reviewer
    is paused, like a missed call, and told why.

    `offers` are (task id, holder id, assigned_at): which ones were left
    unanswered is for the process that put each on the reviewer's socket to
    say (delivery.Offers.follow_up). One no longer that reviewer's, acknowledged
    meanwhile, or made anew since is left alone. Outcome.value: the task ids."""
    def work(w: Work):
        taken, notices = [], []
        for task_id, holder_id, assigned_at in offers:
            row = lifecycle.lock(w, task_id, (ASSIGNED,), "task_not_assigned", sweeping=True)
            if row is None or row.holder_id != holder_id or row.acked_at is not None \
                    or row.assigned_at != assigned_at:
                continue
            lifecycle.requeue(w, row, "unacknowledged")
            lifecycle.pause(w, holder_id)
            taken.append(task_id)
            notices += [Revoked(holder_id, task_id, "unacknowledged"), Idle(holder_id, "paused")]
        return Outcome(taken, notices)

    outcome = lifecycle.run(session, work)
    if outcome.value:
        outcome.extend(dispatcher.dispatch_pending(session))
    return outcome
