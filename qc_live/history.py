"""A task's history: the append-only `task_events` rows dispatch writes."""
import sqlalchemy as sa

from .clock import iso
from .models import TaskEvent


def task_events(session, task_id: int) -> list[dict]:
    """Every event of the task, oldest first (in the order they were written)."""
    rows = session.scalars(sa.select(TaskEvent).where(TaskEvent.task_id == task_id)
                           .order_by(TaskEvent.id)).all()
    events = [{"at": iso(e.at), "kind": e.kind, "reviewer_id": e.reviewer_id,
               "actor_id": e.actor_id, "detail": e.detail} for e in rows]
    session.rollback()  # end the read transaction
    return events
