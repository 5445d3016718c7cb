"""The dispatch rules: what happens when a reviewer connects, completes, pauses,
when tasks arrive, and when a supervisor assigns, releases, edits or cancels.

`Dispatcher` is bound once to an app's settings (create_app makes one; reach
it with state.dispatcher()). Each method runs one write transaction, or a
few (`lifecycle.run`), moves tasks only through lifecycle's edges, picks
them in queue order (queue.py), and returns an `Outcome`: the value the
caller answers with and the notices to push after the commit. Nothing here
emits or knows sockets or requests.

Exactly once, by the database: claims lock the reviewer's row, then the
task's (SKIP LOCKED on MySQL/MariaDB, so concurrent claims take different
tasks; SQLite serialises writers), and the UNIQUE `tasks.holder_id` refuses a
second task for one reviewer whatever the code does.
"""
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from . import acks, database, forms, lifecycle, presence, queue, routing, sql
from .errors import Conflict, Forbidden, Invalid, NotFound, QCError
from .lifecycle import ASSIGNED, PENDING, TaskSpec, Work, lock_reviewer, task_dict
from .models import KIND_AUDIT, Role, TaskEvent, supervised_task_dict
from .notices import Assigned, Idle, Outcome, Revoked

__all__ = ["Dispatcher", "TaskSpec"]

_SET_AVAILABLE = (sa.update(sql.users).where(sql.users.c.id == sa.bindparam("user_id"))
                  .values(available=sa.bindparam("available")))


class Dispatcher:
    """The dispatch use cases, bound to the settings they need (config.py)."""

    def __init__(self, config):
        self.lease_seconds = config.lease_seconds
        self.grace_seconds = config.grace_seconds
        self.max_sockets_per_user = config.max_sockets_per_user
        # Tasks handed out per transaction of dispatch_pending (tests make it small).
        self.batch = queue.DISPATCH_BATCH

    # --- a reviewer's own moves ----------------------------------------------

    def connect(self, session, sid: str, reviewer_id: int, token_version: int,
                process_id: str) -> Outcome:
        """A /reviewer socket arrives: it is recorded (within the per-user
        cap, presence.admit_socket) and, in the same transaction, the reviewer
        is offered its held task again, a new one, or told it is idle. One
        transaction, so no other claim slips in between the reviewer coming
        online and this one. Outcome.value: the task offered, or None."""
        def work(w: Work):
            reviewer = presence.lock_user(w.session, reviewer_id)  # first: see admit_socket
            presence.admit_socket(w.session, sid, presence.REVIEWER_NAMESPACE, reviewer,
                                  token_version, process_id, self.max_sockets_per_user,
                                  self.lease_seconds, self.grace_seconds)
            held = lifecycle.held_task(w, reviewer_id)
            if held is not None:
                task = task_dict(held)
                return Outcome(task, [Assigned(reviewer_id, task, resent=True)])
            if not queue.can_work(reviewer):
                return Outcome(None, [Idle(reviewer_id, "paused")])
            assigned = self._claim(w, reviewer_id)
            if assigned is None:
                return Outcome(None, [Idle(reviewer_id, "queue-empty")])
            return Outcome(assigned.task, [assigned])
        return lifecycle.run(session, work)

    def complete(self, session, reviewer_id: int, task_id: int, outcome: str | None = None,
                 note: str | None = None, over_rest: bool = False, reasons: list | None = None,
                 checklist: dict | None = None) -> Outcome:
        """The reviewer finished its task; in the same transaction it claims the
        next. Outcome.value: {"task": the completed task, "next_task": the next
        or None}. Refusals: NotFound, Forbidden (never the reviewer's), Conflict
        (no longer the reviewer's, or no longer assigned), Invalid
        `invalid_verdict` (`reasons`, `checklist`, `note` against the queue's
        form: lifecycle.finish).

        `over_rest`: the call came over HTTP (POST /complete_task), whose answer
        carries the next task: the reviewer counts as seen (its grace period
        restarts) and the next task as acknowledged, in the same transaction.

        Completions that arrive together share a transaction on SQLite
        (group_commit): every refusal below comes before the first write.

        A completion sampled for a second review creates its audit task, which
        the completer never gets: after the commit it goes to another free
        qualified reviewer at once (dispatch_pending), not at the next sweep."""
        created = []

        def work(w: Work):
            reviewer = lock_reviewer(w, reviewer_id)
            row = w.conn.execute(sql.LOCK_TASK, {"task_id": task_id}).first()
            if row is None:
                raise NotFound(f"task {task_id} does not exist", code="task_not_found")
            if row.status != ASSIGNED or row.holder_id != reviewer_id:
                if row.assignee_id == reviewer_id or ever_held(w.session, task_id, reviewer_id):
                    raise Conflict(f"task {task_id} is no longer assigned to you "
                                   f"(it is {row.status})", code="task_not_assigned")
                raise Forbidden(f"task {task_id} is not yours", code="not_your_task")
            if row.kind == KIND_AUDIT and outcome is None:
                raise Invalid(f"task {task_id} is a second review: give an outcome",
                              code="outcome_required")
            # finish refuses an invalid verdict before it writes anything
            done = lifecycle.finish(w, row, outcome, note, reasons, checklist)
            created[:] = w.audits_created
            if over_rest:
                presence.seen_over_rest(w.session, reviewer_id, self.lease_seconds)
            assigned = self._claim(w, reviewer_id) if queue.can_work(reviewer) else None
            if assigned is not None:
                if over_rest:
                    acks.record(w, [(assigned.task["id"], reviewer_id)])
                return Outcome({"task": done, "next_task": assigned.task}, [assigned])
            # Free now (with a next task it is not, so idle_since waits until it is).
            lifecycle.free(w, reviewer_id)
            reason = "queue-empty" if queue.can_work(reviewer) else "paused"
            return Outcome({"task": done, "next_task": None}, [Idle(reviewer_id, reason)])
        outcome = lifecycle.run(session, work, shared=True, refusals=(QCError,))
        return outcome.extend(self.dispatch_pending(session)) if created else outcome

    def set_availability(self, session, reviewer_id: int, available: bool, claim: bool,
                         over_rest: bool = False) -> Outcome:
        """Pause or resume a reviewer. Pausing keeps the held task (no new one
        comes after it). Resuming claims a task when `claim` (the reviewer is
        online, or asked itself over REST). Outcome.value: {"available",
        "task": the held or new task, or None}. `over_rest`: the reviewer
        itself, over HTTP (seen, and the task in the answer acknowledged)."""
        def work(w: Work):
            reviewer = lock_reviewer(w, reviewer_id)
            if reviewer is None:
                raise NotFound(f"user {reviewer_id} does not exist", code="user_not_found")
            if reviewer.role != Role.REVIEWER.value:
                raise Invalid(f"user {reviewer_id} is not a reviewer", code="not_a_reviewer")
            if over_rest:
                presence.seen_over_rest(w.session, reviewer_id, self.lease_seconds)
            w.conn.execute(_SET_AVAILABLE, {"user_id": reviewer_id, "available": available})
            held = lifecycle.held_task(w, reviewer_id)
            if held is not None:
                task = task_dict(held)
            elif not available:
                return Outcome({"available": False, "task": None}, [Idle(reviewer_id, "paused")])
            else:
                if not reviewer.available:
                    lifecycle.free(w, reviewer_id)  # back from a pause: the end of the line
                assigned = self._claim(w, reviewer_id) if claim and reviewer.active else None
                if assigned is None:
                    notices = [Idle(reviewer_id, "queue-empty")] if claim else []
                    return Outcome({"available": True, "task": None}, notices)
                task = assigned.task
            if over_rest:
                acks.record(w, [(task["id"], reviewer_id)])
            return Outcome({"available": available, "task": task},
                           [] if held is not None else [assigned])
        return lifecycle.run(session, work)

    def my_task(self, session, reviewer_id: int) -> dict:
        """GET /me/task: {"task": the held task or None, "form": its queue's
        form or None}; the reviewer counts as seen and the task, now in its
        hands, as acknowledged (one transaction)."""
        def work(w: Work):
            presence.seen_over_rest(w.session, reviewer_id, self.lease_seconds)
            held = lifecycle.held_task(w, reviewer_id)
            if held is None:
                return {"task": None, "form": None}
            acks.record(w, [(held.id, reviewer_id)])
            return {"task": task_dict(held), "form": forms.form_of(w.conn, held.queue)}
        return lifecycle.run(session, work)

    def _claim(self, w: Work, reviewer_id: int) -> Assigned | None:
        """Give the (locked, free) reviewer the next pending task, if any."""
        row = queue.next_task(w, reviewer_id)
        return lifecycle.assign(w, [(reviewer_id, row)])[0] if row is not None else None

    # --- tasks arriving, and going out -----------------------------------------

    def create_tasks(self, session, specs: list[TaskSpec], actor_id: int | None) -> Outcome:
        """Add tasks to the queue and hand them to free reviewers. Idempotent
        on external_id (lifecycle.create). Outcome.value: the task dicts, in
        input order."""
        try:
            value = lifecycle.run(session, lambda w: lifecycle.create(w, specs, actor_id))
        except IntegrityError:
            # A concurrent request created one of these external_ids: once
            # more, finding it this time.
            value = lifecycle.run(session, lambda w: lifecycle.create(w, specs, actor_id))
        return Outcome(value).extend(self.dispatch_pending(session))

    def dispatch_pending(self, session) -> Outcome:
        """Hand pending tasks to free online reviewers: each task, in dispatch
        order, to the longest-idle free reviewer qualified for it.

        Set-based, up to `batch` tasks per transaction: the free reviewers
        qualified for something pending are read once and locked, then paired
        with the tasks in dispatch order (queue.match: each task to the
        longest-idle of them who qualifies for it), and the pairs written in
        one executemany; a reviewer left without a task is passed over in
        the next batches. Between transactions the
        event loop runs (database.yield_to_loop), so a large import does not
        stall sockets, acks or the heartbeat. Reviewers or tasks a concurrent
        transaction holds are skipped: it gives them work itself, and the
        periodic sweep catches anything left."""
        size = self.batch
        passed = set()  # reviewers this dispatch could give nothing to

        def hand_out(w: Work):
            # Cheap first: on a busy floor the queue is long and nobody is free.
            if not queue.anything_pending(w):
                return [], False
            candidates = queue.free_reviewers(w.session, self.lease_seconds, size,
                                              exclude=passed, now=w.now)
            free = queue.lock_free(w, candidates) if candidates else []
            pairs, skip, blocked = [], set(), set()
            for _ in range(3):  # concurrent claims took some: look past them, twice at most
                chosen = queue.match(w, free, skip, blocked) if free else []
                rows = {row.id: row for row in
                        queue.lock_pending(w, {t: q for _, t, q in chosen})}
                pairs += [(r, rows[t]) for r, t, _ in chosen if t in rows]
                taken = {r for r, t, _ in chosen if t in rows}
                lost = len(rows) < len(chosen)
                if not lost:
                    break
                # Past every task chosen: those locked are ours already (a
                # lock never skips its own rows), the others a concurrent claim's.
                skip |= {t for _, t, _ in chosen}
                free = [r for r in free if r not in taken]
            notices = lifecycle.assign(w, pairs) if pairs else []
            # Passed over only because an audit of their own work came first:
            # each claims for itself, past those audits (queue.next_task).
            served = {r for r, _ in pairs}
            for reviewer_id in [r for r in free if r in blocked and r not in served]:
                assigned = self._claim(w, reviewer_id)
                if assigned is not None:
                    notices.append(assigned)
                    served.add(reviewer_id)
            # Those left without a task are passed over from now on (the ones
            # after them in the idle line may qualify for what is left); go
            # on while there may be more free reviewers.
            passed.update(set(candidates) - served)
            return notices, len(candidates) == size

        outcome = Outcome()
        while True:
            notices, more = lifecycle.run(session, hand_out)
            outcome.notices.extend(notices)
            if not more:
                return outcome
            database.yield_to_loop()

    # --- a supervisor's hands on the queue -------------------------------------

    def assign_task(self, session, task_id: int, actor_id: int,
                    reviewer_id: int | None = None) -> Outcome:
        """Send a pending task out now, to the longest-idle free reviewer
        qualified for it; it stays pending if nobody is. With `reviewer_id`,
        to that reviewer: Conflict `not_qualified` (the message says why)
        when it does not qualify for the task now, `reviewer_unavailable`
        when it is not free (offline, paused, holding a task).
        Outcome.value: the task."""
        def work(w: Work):
            row = lifecycle.lock(w, task_id, (PENDING,), "task_not_pending")
            if reviewer_id is not None:
                if reviewer_id == row.excluded_reviewer_id:
                    raise Conflict(f"task {task_id} is a second review of reviewer "
                                   f"{reviewer_id}'s own work", code="own_work")
                candidates = [self._named_reviewer(w, row, reviewer_id)]
            else:
                rules = routing.rules(w.session, row.queue)
                excluded = [row.excluded_reviewer_id] if row.excluded_reviewer_id else []
                candidates = queue.free_reviewers(
                    w.session, self.lease_seconds, queue=row.queue,
                    level=routing.level_needed(rules, row.created_at, w.now), exclude=excluded)
            # The task is locked first here, then a reviewer, the other way
            # round from a claim: so reviewers are only tried (SKIP LOCKED),
            # never waited for.
            for candidate in candidates:
                reviewer = lock_reviewer(w, candidate, wait=False)
                if queue.can_work(reviewer) and lifecycle.held_task(w, candidate) is None:
                    [assigned] = lifecycle.assign(w, [(candidate, row)], actor_id=actor_id)
                    return Outcome(assigned.task, [assigned])
            if reviewer_id is not None:
                raise Conflict(f"reviewer {reviewer_id} is busy right now; try again",
                               code="reviewer_unavailable")
            return Outcome(task_dict(row), [])
        return lifecycle.run(session, work)

    def _named_reviewer(self, w: Work, row, reviewer_id: int) -> int:
        """The reviewer a supervisor named for a task, if it qualifies and is free."""
        user = w.conn.execute(sa.select(sql.users.c.role, sql.users.c.active,
                                        sql.users.c.available)
                              .where(sql.users.c.id == reviewer_id)).first()
        if user is None:
            raise NotFound(f"user {reviewer_id} does not exist", code="user_not_found")
        if user.role != Role.REVIEWER.value:
            raise Invalid(f"user {reviewer_id} is not a reviewer", code="not_a_reviewer")
        ok, why = routing.qualification(w.session, reviewer_id, row, w.now)
        if not ok:
            raise Conflict(f"not qualified: {why}", code="not_qualified")
        why = ("is deactivated" if not user.active else "has paused" if not user.available
               else "holds a task" if lifecycle.held_task(w, reviewer_id) is not None
               else None if presence.is_online(w.session, reviewer_id, self.lease_seconds)
               else "is not online")
        if why is not None:
            raise Conflict(f"reviewer {reviewer_id} {why}", code="reviewer_unavailable")
        return reviewer_id

    def release(self, session, task_id: int, actor_id: int | None) -> Outcome:
        """Take an assigned task from its holder, back to its place in the
        queue; the holder is told, and the queue dispatched."""
        def work(w: Work):
            row = lifecycle.lock(w, task_id, (ASSIGNED,), "task_not_assigned")
            task = lifecycle.requeue(w, row, "released", actor_id=actor_id)
            lifecycle.free(w, row.holder_id)
            return Outcome(task, [Revoked(row.holder_id, task_id, "released")])
        return lifecycle.run(session, work).extend(self.dispatch_pending(session))

    def cancel(self, session, task_id: int, actor_id: int | None) -> Outcome:
        """Cancel a pending or assigned task; its holder, if any, is told and freed."""
        def work(w: Work):
            row = lifecycle.lock(w, task_id, lifecycle.LIVE, "task_final")
            task = lifecycle.cancel(w, row, actor_id)
            lifecycle.free(w, row.holder_id)
            notices = [Revoked(row.holder_id, task_id, "cancelled")] if row.holder_id else []
            return Outcome(task, notices)
        return lifecycle.run(session, work).extend(self.dispatch_pending(session))

    def update_task(self, session, task_id: int, changes: dict, actor_id: int | None) -> Outcome:
        """Rename, re-prioritise, change the payload or deadline of a live task,
        or cancel it (``{"status": "cancelled"}``), or move a pending task to
        another queue (it keeps its created_at; Invalid `unknown_queue`,
        Conflict `task_not_pending` when it is held). A holder sees the new
        version at once (task-assigned again, same id). Final tasks: Conflict."""
        if changes.get("status") == lifecycle.CANCELLED:
            return self.cancel(session, task_id, actor_id)

        moved = []

        def work(w: Work):
            row = lifecycle.lock(w, task_id, lifecycle.LIVE, "task_final")
            if changes.get("queue", row.queue) != row.queue:
                if row.status != PENDING:
                    raise Conflict(f"task {task_id} is {row.status}: only a pending task "
                                   "moves to another queue", code="task_not_pending")
                if w.conn.execute(sql.QUEUE_RULES, {"queue": changes["queue"]}).first() is None:
                    raise Invalid(f"queue {changes['queue']!r} does not exist",
                                  code="unknown_queue")
                moved.append(task_id)
            task, changed = lifecycle.edit(w, row, changes, actor_id)
            # The holder sees what it can see again; a new gold answer alone
            # sends nothing (that would tell it the task is gold).
            notices = [Assigned(row.holder_id, task, resent=True)] \
                if changed - {"expected_outcome"} and row.holder_id is not None else []
            return Outcome(task, notices)
        outcome = lifecycle.run(session, work)
        # In another queue, other reviewers may qualify: one of them may be free.
        return outcome.extend(self.dispatch_pending(session)) if moved else outcome

    def resolve(self, session, task_id: int, outcome: str, note: str | None,
                actor_id: int) -> Outcome:
        """A supervisor settles a disputed task (lifecycle.resolve): its final
        verdict, task.finalized. Outcome.value: the task (supervisor's view)."""
        return Outcome(lifecycle.run(
            session, lambda w: lifecycle.resolve(w, task_id, outcome, note, actor_id)))

    # --- reading ----------------------------------------------------------------

    def current_task(self, session, reviewer_id: int) -> dict | None:
        """The task the reviewer holds now, or None (a read: no transaction kept)."""
        row = session.execute(sql.HELD_TASK, {"reviewer_id": reviewer_id}).first()
        session.rollback()
        return task_dict(row) if row is not None else None

    def task_for_reader(self, session, task_id: int, reader) -> dict:
        """A task as `reader` may see it: supervisors any, reviewers those they
        hold or held. NotFound, Forbidden."""
        row = session.execute(sql.READ_TASK, {"task_id": task_id}).first()
        try:
            if row is None:
                raise NotFound(f"task {task_id} does not exist", code="task_not_found")
            if Role(reader.role).rank >= Role.SUPERVISOR.rank:
                return supervised_task_dict(row)
            if row.assignee_id == reader.id:
                return task_dict(row)
            if ever_held(session, task_id, reader.id):
                # Held once, done by someone else: not their verdict to read
                # (it may be audited, blind, by this very reviewer).
                return task_dict(row, **OTHERS_VERDICT)
            raise Forbidden("this task is not yours", code="not_your_task")
        finally:
            session.rollback()


# What a reviewer reading a task another reviewer did sees of that verdict.
OTHERS_VERDICT = {"assignee_id": None, "outcome": None, "note": None, "reasons": None,
                  "checklist": None}
# History events only supervisors read: what the audit of a task found.
AUDIT_EVENTS = ("audit_requested", "agreed", "disputed", "resolved")


def history_for_reader(events: list[dict], reader) -> list[dict]:
    """A task's history as `reader` may see it (task_for_reader let it read
    the task): supervisors all of it; reviewers without the audit's events,
    without the verdict (detail) of a completion that is not theirs, and
    without edits of the gold answer (expected_outcome)."""
    if Role(reader.role).rank >= Role.SUPERVISOR.rank:
        return events
    shown = []
    for e in events:
        if e["kind"] in AUDIT_EVENTS:
            continue
        if e["kind"] == "completed" and e["reviewer_id"] != reader.id:
            e = {**e, "detail": None}
        elif e["kind"] == "updated" and "expected_outcome" in (e["detail"] or {}).get(
                "fields", ()):
            # Nor that it is a gold task: an edit of its answer alone is not shown.
            fields = [f for f in e["detail"]["fields"] if f != "expected_outcome"]
            if not fields:
                continue
            e = {**e, "detail": {**e["detail"], "fields": fields}}
        shown.append(e)
    return shown


def ever_held(session, task_id: int, reviewer_id: int) -> bool:
    """The task was once assigned to the reviewer (its history says so)."""
    return session.scalar(sa.select(sa.exists().where(
        TaskEvent.task_id == task_id, TaskEvent.reviewer_id == reviewer_id,
        TaskEvent.kind == "assigned"))) or False
