"""Candidate fixes for the hot spots, applied to a benchmark server only
(bench/qc_server.py, QC_BENCH_WHATIF=name,name). They exist to measure a
suggestion before anyone edits qc_live/; they are prototypes, not the fix:
each keeps qc_live's rules (lock order, dispatch order, one holder per task)
but is only as tested as the benchmarks make it.

sockets_local   notify._offer finds the reviewer's sockets in the Socket.IO
                room of this process instead of reading `connections` from
                the database (single process only: with QC_MESSAGE_QUEUE the
                database read stays, since the room holds local sockets only).
ack_batch       the acks of task-assigned are written in one transaction per
                50 ms (one UPDATE ... WHERE (id, holder_id) IN (...)) instead
                of one transaction per ack.
core_complete   dispatch.complete with prebuilt Core statements: no ORM unit of
                work, 2 queries to pick the next task instead of 3 (FIFO head
                first, then urgent ones at its priority), both events in one
                INSERT.
dispatch_batch  dispatch.dispatch_pending hands out up to 200 tasks per
                transaction, and asks for the free reviewers once per batch
                instead of once per task.
dispatch_bulk   dispatch.dispatch_pending pairs up to 500 free reviewers
                (longest idle first) with the first pending tasks in queue
                order in ONE transaction: 4 statements a batch instead of
                ~10 a task, and yields to the event loop between batches;
                notify.push yields every 200 notices. Falls back to the
                per-task path when a pending task is due within the urgent
                window (its order needs _next_pending).
pool_keep       MySQL/MariaDB pool of 40 connections kept open (pool_size=40,
                max_overflow=0) instead of 10 kept + 30 overflow: overflow
                connections are closed on check-in, so under load every
                checkout past the 10th opened a new MariaDB connection.
                (Applied before create_app: see BEFORE_APP.)
"""
import logging

import sqlalchemy as sa

log = logging.getLogger("qc_bench.whatif")


def sockets_local(app) -> None:
    from qc_live import notify
    from qc_live.extensions import socketio
    from qc_live.presence import REVIEWER_NAMESPACE

    if app.extensions["qc_config"].message_queue:
        log.warning("sockets_local: a message queue is configured; keeping the DB read")
        return

    def sockets_of(_session, user_id):
        room = notify.reviewer_room(user_id)
        return [(sid, REVIEWER_NAMESPACE) for sid, _ in
                socketio.server.manager.get_participants(REVIEWER_NAMESPACE, room)]

    notify.sockets_of = sockets_of


def ack_batch(app) -> None:
    from qc_live import notify
    from qc_live.clock import utcnow
    from qc_live.database import run_write
    from qc_live.extensions import db, socketio
    from qc_live.models import Task

    pending = []
    state = {"scheduled": False}

    def write(session, pairs):
        session.execute(
            sa.update(Task)
            .where(sa.tuple_(Task.id, Task.holder_id).in_(pairs), Task.acked_at.is_(None))
            .values(acked_at=utcnow()).execution_options(synchronize_session=False))

    def flush():
        socketio.sleep(0.05)
        batch = list(dict.fromkeys(pending))
        pending.clear()
        state["scheduled"] = False
        with app.app_context():
            try:
                run_write(db.session, write, batch)
            except Exception:
                log.exception("could not record %d acks", len(batch))
            finally:
                db.session.remove()

    def acknowledged(reviewer_id, task_id, *_payload):
        pending.append((task_id, reviewer_id))
        if not state["scheduled"]:
            state["scheduled"] = True
            socketio.start_background_task(flush)

    notify._acknowledged = acknowledged


def core_complete(app) -> None:
    from qc_live import dispatch
    from qc_live.clock import iso, utcnow
    from qc_live.database import run_write
    from qc_live.errors import Conflict, Forbidden, NotFound
    from qc_live.models import Task, TaskEvent, User

    T, E, U = Task.__table__, TaskEvent.__table__, User.__table__
    PENDING, ASSIGNED, COMPLETED = "pending", "assigned", "completed"
    lock_user = (sa.select(U.c.active, U.c.available, U.c.role)
                 .where(U.c.id == sa.bindparam("b_rid")).with_for_update())
    lock_task = sa.select(T).where(T.c.id == sa.bindparam("b_tid")).with_for_update()
    finish = (sa.update(T).where(T.c.id == sa.bindparam("b_tid"))
              .values(status=COMPLETED, holder_id=None, completed_at=sa.bindparam("b_now"),
                      outcome=sa.bindparam("b_outcome"), note=sa.bindparam("b_note"),
                      updated_at=sa.bindparam("b_now")))
    idle_since = (sa.update(U).where(U.c.id == sa.bindparam("b_rid"))
                  .values(idle_since=sa.bindparam("b_now")))
    fifo = (sa.select(T).where(T.c.status == PENDING,
                               sa.or_(T.c.deadline.is_(None), T.c.deadline > sa.bindparam("b_now")))
            .order_by(T.c.priority.desc(), T.c.created_at, T.c.id)
            .limit(1).with_for_update(skip_locked=True))
    urgent = (sa.select(T).where(T.c.status == PENDING, T.c.priority == sa.bindparam("b_prio"),
                                 T.c.deadline > sa.bindparam("b_now"),
                                 T.c.deadline <= sa.bindparam("b_soon"))
              .order_by(T.c.deadline, T.c.id).limit(1).with_for_update(skip_locked=True))
    assign = (sa.update(T).where(T.c.id == sa.bindparam("b_tid"))
              .values(status=ASSIGNED, assignee_id=sa.bindparam("b_rid"),
                      holder_id=sa.bindparam("b_rid"), assigned_at=sa.bindparam("b_now"),
                      acked_at=None, updated_at=sa.bindparam("b_now")))
    events = sa.insert(E)

    def as_dict(row, **changes) -> dict:
        m = {**row._mapping, **changes}
        return {"id": m["id"], "external_id": m["external_id"], "name": m["name"],
                "payload": m["payload"] if m["payload"] is not None else {},
                "priority": m["priority"], "status": m["status"],
                "assignee_id": m["assignee_id"], "created_at": iso(m["created_at"]),
                "assigned_at": iso(m["assigned_at"]), "completed_at": iso(m["completed_at"]),
                "deadline": iso(m["deadline"]), "outcome": m["outcome"], "note": m["note"]}

    def complete(session, reviewer_id, task_id, outcome=None, note=None):
        def work(session):
            reviewer = session.execute(lock_user, {"b_rid": reviewer_id}).first()
            task = session.execute(lock_task, {"b_tid": task_id}).first()
            if task is None:
                raise NotFound(f"task {task_id} does not exist", code="task_not_found")
            if task.status != ASSIGNED or task.holder_id != reviewer_id:
                if task.assignee_id == reviewer_id or dispatch._ever_held(session, task_id,
                                                                          reviewer_id):
                    raise Conflict(f"task {task_id} is no longer assigned to you "
                                   f"(it is {task.status})", code="task_not_assigned")
                raise Forbidden(f"task {task_id} is not yours", code="not_your_task")
            now = utcnow()
            session.execute(finish, {"b_tid": task_id, "b_now": now, "b_outcome": outcome,
                                     "b_note": note})
            session.execute(idle_since, {"b_rid": reviewer_id, "b_now": now})
            done = as_dict(task, status=COMPLETED, completed_at=now, outcome=outcome,
                           note=note)
            rows = [{"task_id": task_id, "kind": "completed", "reviewer_id": reviewer_id,
                     "actor_id": None, "at": now,
                     "detail": {"outcome": outcome} if outcome else None}]
            can_work = (reviewer is not None and reviewer.active and reviewer.available
                        and reviewer.role == "reviewer")
            result = None
            if can_work:
                head = session.execute(fifo, {"b_now": now}).first()
                if head is not None:
                    hurry = session.execute(urgent, {
                        "b_prio": head.priority, "b_now": now,
                        "b_soon": now + dispatch.URGENT_WINDOW}).first()
                    pick = hurry or head
                    session.execute(assign, {"b_tid": pick.id, "b_rid": reviewer_id,
                                             "b_now": now})
                    rows.append({"task_id": pick.id, "kind": "assigned",
                                 "reviewer_id": reviewer_id, "actor_id": None, "at": now,
                                 "detail": None})
                    result = as_dict(pick, status=ASSIGNED, assignee_id=reviewer_id,
                                     assigned_at=now)
            session.execute(events, rows)
            value = {"task": done, "next_task": result}
            if result is not None:
                return dispatch.Outcome(value, [dispatch.Assigned(reviewer_id, result)])
            reason = "queue-empty" if can_work else "paused"
            return dispatch.Outcome(value, [dispatch.Idle(reviewer_id, reason)])
        return run_write(session, work)

    dispatch.complete = complete


def dispatch_batch(app, batch: int = 200) -> None:
    from qc_live import dispatch
    from qc_live.database import run_write
    from qc_live.models import Task

    def dispatch_pending(session, lease_seconds):
        def many(session):
            if session.scalar(sa.select(Task.id).where(Task.status == dispatch.PENDING)
                              .limit(1)) is None:
                return []
            got = []
            for reviewer_id in dispatch._free_reviewer_ids(session, lease_seconds, batch):
                reviewer = dispatch._lock_reviewer(session, reviewer_id, skip_locked=True)
                if not dispatch._can_work(reviewer) \
                        or dispatch._held_task(session, reviewer_id) is not None:
                    continue
                assigned = dispatch._claim_for(session, reviewer)
                if assigned is None:
                    break
                got.append(assigned)
            return got

        outcome = dispatch.Outcome()
        for _ in range(100000):  # bounded: each round assigns at least one task
            got = run_write(session, many)
            outcome.notices.extend(got)
            if not got:
                break
        return outcome

    dispatch.dispatch_pending = dispatch_pending


def dispatch_bulk(app, batch: int = 500) -> None:
    from qc_live import api_tasks, dispatch, notify, runtime
    from qc_live.clock import utcnow
    from qc_live.database import run_write
    from qc_live.extensions import socketio
    from qc_live.models import Role, Task, TaskEvent, User

    T, E = Task.__table__, TaskEvent.__table__
    PENDING, ASSIGNED = dispatch.PENDING, dispatch.ASSIGNED
    per_task = dispatch.dispatch_pending
    assign = (sa.update(T).where(T.c.id == sa.bindparam("b_tid"))
              .values(status=ASSIGNED, assignee_id=sa.bindparam("b_rid"),
                      holder_id=sa.bindparam("b_rid"), assigned_at=sa.bindparam("b_now"),
                      acked_at=None, updated_at=sa.bindparam("b_now")))

    def as_dict(row, **changes) -> dict:
        from qc_live.clock import iso
        m = {**row._mapping, **changes}
        return {"id": m["id"], "external_id": m["external_id"], "name": m["name"],
                "payload": m["payload"] if m["payload"] is not None else {},
                "priority": m["priority"], "status": m["status"],
                "assignee_id": m["assignee_id"], "created_at": iso(m["created_at"]),
                "assigned_at": iso(m["assigned_at"]), "completed_at": iso(m["completed_at"]),
                "deadline": iso(m["deadline"]), "outcome": m["outcome"], "note": m["note"]}

    def one_batch(session, lease_seconds):
        now = utcnow()
        if session.scalar(sa.select(Task.id).where(
                Task.status == PENDING, Task.deadline.is_not(None),
                Task.deadline <= now + dispatch.URGENT_WINDOW).limit(1)) is not None:
            return None  # urgent work: the per-task path knows its order
        candidates = dispatch._free_reviewer_ids(session, lease_seconds, batch)
        if not candidates:
            return []
        locked = set(session.scalars(
            sa.select(User.id).where(User.id.in_(candidates), User.role == Role.REVIEWER.value,
                                     User.active.is_(True), User.available.is_(True))
            .with_for_update(skip_locked=True)))
        holding = set(session.scalars(sa.select(Task.holder_id)
                                      .where(Task.holder_id.in_(locked))))
        free = [r for r in candidates if r in locked and r not in holding]
        if not free:
            return []
        tasks = session.execute(
            sa.select(T).where(T.c.status == PENDING,
                               sa.or_(T.c.deadline.is_(None), T.c.deadline > now))
            .order_by(T.c.priority.desc(), T.c.created_at, T.c.id)
            .limit(len(free)).with_for_update(skip_locked=True)).all()
        pairs = list(zip(free, tasks))
        if not pairs:
            return []
        session.execute(assign, [{"b_tid": t.id, "b_rid": r, "b_now": now} for r, t in pairs])
        session.execute(sa.insert(E), [{"task_id": t.id, "kind": "assigned", "reviewer_id": r,
                                        "actor_id": None, "at": now, "detail": None}
                                       for r, t in pairs])
        return [dispatch.Assigned(r, as_dict(t, status=ASSIGNED, assignee_id=r,
                                             assigned_at=now)) for r, t in pairs]

    def dispatch_pending(session, lease_seconds):
        outcome = dispatch.Outcome()
        for _ in range(10000):  # bounded; every full batch assigned `batch` tasks
            got = run_write(session, one_batch, lease_seconds)
            if got is None:
                return outcome.extend(per_task(session, lease_seconds))
            outcome.notices.extend(got)
            if len(got) < batch:
                break
            socketio.sleep(0)  # let sockets, acks and the heartbeat run
        return outcome

    dispatch.dispatch_pending = dispatch_pending
    push = notify.push

    def push_in_slices(outcome, sid=None):
        notices = outcome.notices if isinstance(outcome, dispatch.Outcome) else outcome
        if len(notices) <= 200:
            return push(outcome, sid)
        for start in range(0, len(notices), 200):
            push(notices[start:start + 200], sid)
            socketio.sleep(0)

    notify.push = api_tasks.push = runtime.push = push_in_slices


def pool_keep() -> None:
    from qc_live import database
    engine_options = database.engine_options

    def options(config) -> dict:
        got = engine_options(config)
        if not config.is_sqlite:
            got.update(pool_size=40, max_overflow=0)
        return got

    database.engine_options = options


BEFORE_APP = {"pool_keep": pool_keep}
CANDIDATES = {"sockets_local": sockets_local, "ack_batch": ack_batch,
              "core_complete": core_complete, "dispatch_batch": dispatch_batch,
              "dispatch_bulk": dispatch_bulk}


def before_app(names) -> None:
    for name in names:
        if name in BEFORE_APP:
            BEFORE_APP[name]()


def apply(app, names) -> None:
    for name in names:
        if name in BEFORE_APP:
            log.warning("what-if applied: %s", name)
            continue
        if name not in CANDIDATES:
            raise SystemExit(f"QC_BENCH_WHATIF: unknown candidate {name!r} "
                             f"(known: {', '.join([*CANDIDATES, *BEFORE_APP])})")
        CANDIDATES[name](app)
        log.warning("what-if applied: %s", name)


