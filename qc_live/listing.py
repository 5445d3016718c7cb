"""GET /tasks: filters, five orders and keyset cursors — fast at millions of rows.

No OFFSET anywhere: a cursor names the last row shown (its sort key and id),
and the next page starts right after it. Each page is a handful of index range
reads whose cost does not grow with how deep the page is.

How "right after the cursor" stays an index seek: for a sort key (k1, k2, id)
and a cursor (v1, v2, i), the rows after it are, in order, the union of

    k1 = v1 AND k2 = v2 AND id > i      (same key, later id)
    k1 = v1 AND k2 > v2                 (same k1, later k2)
    k1 > v1                             (later k1)

("<" for descending keys). Each part is an equality prefix plus one range, so
the database seeks straight to it; the same condition written with OR would
make it walk every row before the cursor, like OFFSET does. Parts are read in
turn until the page is full.

In every index that serves an order, `status` comes before the sort key, so
each status is read on its own (at most limit + 1 rows each; all five when no status is asked for)
and the results merged. A page costs at most statuses x parts small queries
that read sort keys only, then one primary-key fetch of the rows shown.

Indexes used (models.py): `priority` -> ix_tasks_queue (status, priority desc,
created_at, id); `created_at`/`-created_at` -> ix_tasks_created (status,
created_at); `deadline` -> ix_tasks_deadline (status, deadline). With the
`priority` filter: ix_tasks_queue and ix_tasks_due (status, priority,
deadline). With `assignee_id`: ix_tasks_assignee_created, _priority and
_deadline, the same keys behind (assignee_id, status). With `queue`:
ix_tasks_queue_head (queue, status, priority desc, created_at, id) and
ix_tasks_queue_created (status, queue, created_at, id); by deadline, the
status's deadline index, filtered. Both databases append
the primary key to a secondary index, which gives the id tie-break for free.
`-completed_at` (the results view) -> ix_tasks_completed (status,
completed_at) whatever the other filters: the completion window
(`completed_after`, `completed_before`) is then the index range itself, and
`queue`, `outcome`, `assignee_id` are checked on the rows of that range.
`q` (search) is external_id exactly or a name prefix, checked on the rows of
the order's index range: there is no index on name (one is a migration away),
so a search for a rare name reads that range to its end.
MariaDB is told which index to use (see `_sort_keys`); SQLite finds it alone.
(SQLAlchemy's SQLite dialect writes `LIMIT ? OFFSET ?` with 0: nothing skipped.)

Rows whose sort key changes while a client pages (a task completed, re-
prioritised) may move past the cursor or behind it: a listing is a live view,
not a snapshot.
"""
import base64
import binascii
import functools
import json
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from .errors import BadRequest
from .models import Task, TaskStatus, supervised_task_dict

MAX_CURSOR_LENGTH = 512


@dataclass(frozen=True)
class Key:
    column: object
    descending: bool = False
    kind: type = int  # int or datetime: how a cursor spells the value


@dataclass(frozen=True)
class Phase:
    """Rows matching `where`, sorted by `keys`. An order is one phase or
    several read one after the other (deadline: dated rows, then undated)."""
    keys: tuple[Key, ...]
    where: object = None


ID = Key(Task.id)
ORDERS = {
    # FIFO: oldest first.
    "created_at": (Phase((Key(Task.created_at, kind=datetime), ID)),),
    "-created_at": (Phase((Key(Task.created_at, True, datetime), Key(Task.id, True))),),
    # Dispatch order: highest priority first, then oldest first (the 30-minute
    # urgency rule of dispatch is not applied: it depends on the clock).
    "priority": (Phase((Key(Task.priority, True), Key(Task.created_at, kind=datetime), ID)),),
    # Earliest deadline first; tasks without a deadline last, oldest first.
    "deadline": (Phase((Key(Task.deadline, kind=datetime), ID), Task.deadline.is_not(None)),
                 Phase((ID,), Task.deadline.is_(None))),
    # Results: the latest completion first; tasks never completed are not listed.
    "-completed_at": (Phase((Key(Task.completed_at, True, datetime), Key(Task.id, True)),
                            Task.completed_at.is_not(None)),),
}
DEFAULT_ORDER = "created_at"
STATUSES = tuple(s.value for s in TaskStatus)


@dataclass(frozen=True)
class TaskQuery:
    statuses: tuple[str, ...] = ()  # empty: every status
    assignee_id: int | None = None
    priority: int | None = None
    queue: str | None = None
    outcome: str | None = None
    completed_after: datetime | None = None  # inclusive
    completed_before: datetime | None = None  # exclusive
    q: str | None = None  # external_id exactly, or a name prefix
    order_by: str = DEFAULT_ORDER
    limit: int = 50
    after: tuple | None = None  # (phase index, key values), from the cursor
    audit: str | None = None  # agreed, disputed, open (disputed, not resolved)


# --- cursors -------------------------------------------------------------------

def encode_cursor(order_by: str, phase: int, values: tuple) -> str:
    """base64url (unpadded) of {"o": order, "p": phase, "k": [sort key..., id]}."""
    keys = [v.isoformat() if isinstance(v, datetime) else v for v in values]
    raw = json.dumps({"o": order_by, "p": phase, "k": keys}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str, order_by: str) -> tuple[int, tuple]:
    """(phase, key values) of a cursor made for `order_by`; 400 bad_cursor otherwise."""
    def bad(why: str):
        return BadRequest(f"'cursor' is not a cursor of this listing ({why}); use the "
                          "next_cursor of a previous answer with the same order_by",
                          code="bad_cursor")
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise bad("too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad("not base64url JSON") from None
    if not isinstance(data, dict) or set(data) != {"o", "p", "k"}:
        raise bad("wrong shape")
    if data["o"] != order_by:
        raise bad(f"it was made for order_by={data['o']!r}")
    phases = ORDERS[order_by]
    phase = data["p"]
    if type(phase) is not int or not 0 <= phase < len(phases):
        raise bad("unknown phase")
    keys, values = phases[phase].keys, data["k"]
    if not isinstance(values, list) or len(values) != len(keys):
        raise bad("wrong key")
    parsed = []
    for key, value in zip(keys, values):
        if key.kind is int:
            if type(value) is not int or not -2**63 <= value < 2**63:
                raise bad("wrong key")
            parsed.append(value)
        else:
            try:
                moment = datetime.fromisoformat(value)
            except (TypeError, ValueError):
                raise bad("wrong key") from None
            if moment.tzinfo is not None:
                raise bad("wrong key")
            parsed.append(moment)
    return phase, tuple(parsed)


# --- reading -------------------------------------------------------------------

@functools.total_ordering
class _Reversed:
    """Sorts its value backwards (descending keys in the in-memory merge)."""
    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return self.value == other.value

    def __lt__(self, other):
        return other.value < self.value


def _parts(phases, after):
    """(phase index, conditions, keys to order by) in reading order."""
    first = 0
    if after is not None:
        phase_index, values = after
        phase = phases[phase_index]
        base = [phase.where] if phase.where is not None else []
        for j in reversed(range(len(phase.keys))):
            same = [k.column == v for k, v in zip(phase.keys[:j], values[:j])]
            key, value = phase.keys[j], values[j]
            beyond = key.column < value if key.descending else key.column > value
            yield phase_index, base + same + [beyond], phase.keys[j:]
        first = phase_index + 1
    for phase_index in range(first, len(phases)):
        phase = phases[phase_index]
        yield phase_index, [phase.where] if phase.where is not None else [], phase.keys


def _index(query: TaskQuery) -> str:
    """The index that serves this listing (see the module docstring)."""
    if query.order_by == "-completed_at":
        return "ix_tasks_completed"
    by = "deadline" if query.order_by == "deadline" else \
        "priority" if query.order_by == "priority" or query.priority is not None else "created"
    if query.assignee_id is not None:
        return f"ix_tasks_assignee_{by}"
    if getattr(query, "audit", None) is not None and by == "created":
        return "ix_tasks_audit_created"
    if query.queue is not None and by != "deadline":
        return "ix_tasks_queue_head" if by == "priority" else "ix_tasks_queue_created"
    if query.priority is not None:
        return "ix_tasks_due" if by == "deadline" else "ix_tasks_queue"
    return {"created": "ix_tasks_created", "priority": "ix_tasks_queue",
            "deadline": "ix_tasks_deadline"}[by]


def _like_prefix(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def filters_of(query) -> list:
    """The conditions of GET /tasks' filters other than status (`assignee_id`,
    `priority`, `queue`, `outcome`, the completion window, `q`; None: any),
    for the listing and the export alike."""
    found = []
    if query.assignee_id is not None:
        found.append(Task.assignee_id == query.assignee_id)
    if query.priority is not None:
        found.append(Task.priority == query.priority)
    if query.queue is not None:
        found.append(Task.queue == query.queue)
    if query.outcome is not None:
        found.append(Task.outcome == query.outcome)
    if query.completed_after is not None:
        found.append(Task.completed_at >= query.completed_after)
    if query.completed_before is not None:
        found.append(Task.completed_at < query.completed_before)
    if query.q is not None:
        found.append(sa.or_(Task.external_id == query.q,
                            Task.name.like(_like_prefix(query.q), escape="\\")))
    audit = getattr(query, "audit", None)
    if audit == "open":
        found += [Task.audit == "disputed", Task.finalized_at.is_(None)]
    elif audit is not None:
        found.append(Task.audit == audit)
    return found


def _sort_keys(session, query: TaskQuery, status: str, want: int) -> list[tuple]:
    """Up to `want` (phase, key values) of one status, after the cursor, in order."""
    phases = ORDERS[query.order_by]
    filters = [Task.status == status, *filters_of(query)]
    # MariaDB/MySQL may read "status = s AND deadline IS NULL AND id > i" (or
    # "created_at = c AND id > i") by the equality prefix alone and skip rows
    # up to i one by one: an OFFSET in disguise, 150 ms deep in a million rows.
    # Naming the index makes it seek on the id too (SQLite plans these right).
    hint = f"FORCE INDEX ({_index(query)})"
    found = []
    for phase_index, conditions, order in _parts(phases, query.after):
        columns = [k.column for k in phases[phase_index].keys]
        statement = (sa.select(*columns).where(*filters, *conditions)
                     .order_by(*[k.column.desc() if k.descending else k.column.asc()
                                 for k in order])
                     .with_hint(Task, hint, "mysql").with_hint(Task, hint, "mariadb")
                     .limit(want - len(found)))
        found += [(phase_index, tuple(row)) for row in session.execute(statement)]
        if len(found) >= want:
            break
    return found


def _merge_key(phases, row):
    phase_index, values = row
    keys = phases[phase_index].keys
    return (phase_index, *[_Reversed(v) if k.descending else v for k, v in zip(keys, values)])


def list_tasks(session, query: TaskQuery) -> tuple[list[dict], str | None]:
    """One page of tasks and the cursor of the next page (None at the end)."""
    phases = ORDERS[query.order_by]
    want = query.limit + 1
    rows = []
    for status in query.statuses or STATUSES:
        rows += _sort_keys(session, query, status, want)
    rows.sort(key=functools.partial(_merge_key, phases))
    page, more = rows[:query.limit], len(rows) > query.limit
    ids = [values[-1] for _, values in page]
    by_id = {row.id: row for row in
             session.execute(sa.select(Task.__table__).where(Task.id.in_(ids)))} if ids else {}
    tasks = [supervised_task_dict(by_id[i]) for i in ids if i in by_id]
    session.rollback()  # end the read transaction
    next_cursor = encode_cursor(query.order_by, *page[-1]) if more and page else None
    return tasks, next_cursor
