"""What happened, for the adapters to tell reviewers: the notices a transition
returns, pushed by notify.py after the commit (never inside a transaction).

Wire names are in docs/api.md: `Assigned` is `task-assigned`, `Idle` is `idle`,
`Revoked` is `task-revoked`.
"""
from dataclasses import dataclass, field

from .models import reviewer_view


@dataclass(frozen=True)
class Assigned:
    """Push `task-assigned` to the reviewer. `resent`: not new, the task the
    reviewer already holds, shown again (to a socket that just connected, or
    after a supervisor's edit)."""
    reviewer_id: int
    task: dict
    resent: bool = False

    def __post_init__(self):
        # Whatever the caller built it from, a reviewer never gets a gold
        # task's answer or an audit's findings.
        object.__setattr__(self, "task", reviewer_view(self.task))


@dataclass(frozen=True)
class Idle:
    """Push `idle`: reason is 'queue-empty' or 'paused'."""
    reviewer_id: int
    reason: str


@dataclass(frozen=True)
class Revoked:
    """Push `task-revoked`: reason is 'released' (a supervisor, or the user
    signed out), 'cancelled', 'expired', 'unacknowledged' (the offer went
    unanswered) or 'abandoned' (the grace period ran out)."""
    reviewer_id: int
    task_id: int
    reason: str


@dataclass
class Outcome:
    """What a use case returns: `value` for the caller's answer, `notices` to
    push after the commit, in order."""
    value: object = None
    notices: list = field(default_factory=list)

    def extend(self, other: "Outcome") -> "Outcome":
        self.notices.extend(other.notices)
        return self
