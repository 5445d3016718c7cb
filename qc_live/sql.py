"""The hand-written SQL of the dispatch core, named by what it does.

Prebuilt SQLAlchemy Core statements over the tables, compiled once and cached:
the claim, completion and ack paths run on every completion, and Core rows
cost a fraction of ORM objects. Parameters are bind parameters named in each
statement's comment. Who runs them: queue.py (choosing), lifecycle.py (the
edges of the task state machine), acks.py.

Locks are always taken in one order, reviewer row before task row, so two
transactions never wait on each other in a cycle; `SKIP LOCKED` lets
concurrent claims take different tasks on MySQL/MariaDB (SQLite ignores it,
and serialises writers instead).
"""
import sqlalchemy as sa

from .models import Queue, Skill, Task, TaskEvent, TaskStatus, User

tasks, events, users = Task.__table__, TaskEvent.__table__, User.__table__
queues, skills = Queue.__table__, Skill.__table__
_p = sa.bindparam

PENDING = TaskStatus.PENDING.value
ASSIGNED = TaskStatus.ASSIGNED.value
COMPLETED = TaskStatus.COMPLETED.value
CANCELLED = TaskStatus.CANCELLED.value
EXPIRED = TaskStatus.EXPIRED.value
LIVE = (PENDING, ASSIGNED)


def not_overdue(table=tasks):
    """Condition: no deadline, or one after :now (overdue tasks are never handed out)."""
    return sa.or_(table.c.deadline.is_(None), table.c.deadline > _p("now"))


def not_excluded(table=tasks):
    """Condition: not an audit of reviewer :me's own work (audits.py)."""
    return sa.or_(table.c.excluded_reviewer_id.is_(None),
                  table.c.excluded_reviewer_id != _p("me"))


# --- choosing the next task (queue.py) --------------------------------------

# The FIFO head: highest priority, then oldest (ix_tasks_queue). :now
QUEUE_HEAD = (sa.select(tasks).where(tasks.c.status == PENDING, not_overdue())
              .order_by(tasks.c.priority.desc(), tasks.c.created_at, tasks.c.id)
              .limit(1).with_for_update(skip_locked=True))
# The highest pending priority, read without a lock (a subquery of a locking
# read locks nothing on MySQL/MariaDB). :now
_top = tasks.alias("queue_top")
TOP_PRIORITY = (sa.select(_top.c.priority)
                .where(_top.c.status == PENDING, not_overdue(_top))
                .order_by(_top.c.priority.desc()).limit(1).scalar_subquery())
# Within that priority, the task due soonest within the urgent window
# (ix_tasks_due). The whole row, as the FIFO read: with only the id,
# concurrent claims on MariaDB found every pending task locked. :now :soon
URGENT_HEAD = (sa.select(tasks).where(tasks.c.status == PENDING,
                                      tasks.c.priority == TOP_PRIORITY,
                                      tasks.c.deadline > _p("now"),
                                      tasks.c.deadline <= _p("soon"))
               .order_by(tasks.c.deadline, tasks.c.id)
               .limit(1).with_for_update(skip_locked=True))
# One task, locked if it is still pending in the same queue, not overdue and
# not an audit of :me's work (and no other claim holds it): the best of the
# heads a claim read. :task_id :queue :now :me
LOCK_IF_PENDING = (sa.select(tasks).where(tasks.c.id == _p("task_id"), tasks.c.status == PENDING,
                                          tasks.c.queue == _p("queue"), not_overdue(),
                                          not_excluded())
                   .with_for_update(skip_locked=True))
# A reviewer's skills with their queues' rules: what its claim may take. :reviewer_id
SKILLS_OF = (sa.select(skills.c.queue, skills.c.level, queues.c.min_level,
                       queues.c.relax_after_s)
             .join(queues, queues.c.name == skills.c.queue)
             .where(skills.c.user_id == _p("reviewer_id")))
# One queue's rules. :queue
QUEUE_RULES = sa.select(queues).where(queues.c.name == _p("queue"))
# One queue's review form (forms.py). :queue
FORM_OF = sa.select(queues.c.form).where(queues.c.name == _p("queue"))
# Is anything pending at all? (cheap first check of a bulk dispatch) :now
ANY_PENDING = sa.select(tasks.c.id).where(tasks.c.status == PENDING, not_overdue()).limit(1)

# --- locks (lifecycle.py) ---------------------------------------------------

# A task's row, without a lock (to learn whose reviewer row to lock first). :task_id
READ_TASK = sa.select(tasks).where(tasks.c.id == _p("task_id"))
# The same, locked. :task_id
LOCK_TASK = sa.select(tasks).where(tasks.c.id == _p("task_id")).with_for_update()
# A user's row, locked: what a claim, a connect or a sign-out needs. :user_id
LOCK_USER = (sa.select(users.c.id, users.c.role, users.c.active, users.c.available,
                       users.c.token_version, users.c.idle_since, users.c.offline_since)
             .where(users.c.id == _p("user_id")).with_for_update())
# The same, or nothing if another transaction holds it. :user_id
TRY_LOCK_USER = LOCK_USER.with_for_update(skip_locked=True)
# The task a reviewer holds (UNIQUE holder_id: at most one). :reviewer_id
HELD_TASK = sa.select(tasks).where(tasks.c.holder_id == _p("reviewer_id"))

# --- the edges of the task state machine (lifecycle.py) ----------------------

# pending -> assigned. :task_id :reviewer_id :now. The UNIQUE holder_id makes
# a second task for one reviewer fail here, whatever the code does.
ASSIGN = (sa.update(tasks).where(tasks.c.id == _p("task_id"))
          .values(status=ASSIGNED, assignee_id=_p("reviewer_id"), holder_id=_p("reviewer_id"),
                  assigned_at=_p("now"), acked_at=None, updated_at=_p("now")))
# assigned -> completed. :task_id :now :outcome :note :reasons :checklist
FINISH = (sa.update(tasks).where(tasks.c.id == _p("task_id"))
          .values(status=COMPLETED, holder_id=None, completed_at=_p("now"),
                  outcome=_p("outcome"), note=_p("note"), reasons=_p("reasons"),
                  checklist=_p("checklist"), updated_at=_p("now")))
# The same, and the verdict final at once (not sent to a second review): one
# statement, guarded like lifecycle.finalize's. :task_id :now :outcome :note
# :reasons :checklist
FINISH_FINAL = (sa.update(tasks).where(tasks.c.id == _p("task_id"), tasks.c.finalized_at.is_(None))
                .values(status=COMPLETED, holder_id=None, completed_at=_p("now"),
                        outcome=_p("outcome"), note=_p("note"), reasons=_p("reasons"),
                        checklist=_p("checklist"), updated_at=_p("now"),
                        final_outcome=_p("outcome"), final_note=_p("note"),
                        finalized_at=_p("now")))
# assigned -> pending, keeping created_at (so its place in the queue). :task_id :now
REQUEUE = (sa.update(tasks).where(tasks.c.id == _p("task_id"))
           .values(status=PENDING, holder_id=None, assignee_id=None, assigned_at=None,
                   acked_at=None, updated_at=_p("now")))
# pending|assigned -> cancelled or expired (:status). :task_id :status :now
END = (sa.update(tasks).where(tasks.c.id == _p("task_id"))
       .values(status=_p("status"), holder_id=None, updated_at=_p("now")))
# History rows (one INSERT, many rows).
ADD_EVENTS = sa.insert(events)

# --- reviewers ----------------------------------------------------------------

# The reviewer is free from now: the longest idle gets work first. :reviewer_id :now
IDLE_SINCE = sa.update(users).where(users.c.id == _p("reviewer_id")).values(idle_since=_p("now"))
# Paused (an offer it left unanswered). :reviewer_id :now
PAUSE = (sa.update(users).where(users.c.id == _p("reviewer_id"))
         .values(available=False, idle_since=_p("now")))

# --- acks (acks.py) -----------------------------------------------------------

# The reviewer has the offer on screen. By primary key only: MariaDB would
# otherwise find the row through the UNIQUE holder_id index, locking that
# entry before the row, the reverse of a completion: a deadlock.
# :task_id :reviewer_id :now
ACK = (sa.update(tasks).where(tasks.c.id == _p("task_id"),
                              tasks.c.holder_id == _p("reviewer_id"),
                              tasks.c.acked_at.is_(None))
       .values(acked_at=_p("now"))
       .with_hint("FORCE INDEX (PRIMARY)", dialect_name="mysql")
       .with_hint("FORCE INDEX (PRIMARY)", dialect_name="mariadb"))
