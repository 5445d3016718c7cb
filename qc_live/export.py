"""GET /tasks/export: every task matching the filters, streamed as CSV or
NDJSON in flat memory.

Rows are read by a keyset cursor on the primary key, PAGE at a time
(`WHERE id > last ORDER BY id LIMIT PAGE`: an index seek wherever the
export stands), each page in a short read transaction of its own, and
written out before the next is read. So a million rows cost what a page
does in memory, no transaction stays open while the client reads, and the
event loop runs between pages. The filters are those of GET /tasks
(listing.py) and the completion window; a task is in the export as it was
when its page was read (a live view, like the listing).

CSV is UTF-8 with a header row, written by the csv module; `reasons` is
the codes joined by ";", `checklist` and `payload` are JSON text. A text cell that
a spreadsheet would take for a formula (it begins with =, +, -, @, a tab or
a carriage return) gets a leading single quote, as OWASP's "CSV Injection"
advises; numbers and timestamps are written as such.
"""
import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from .database import yield_to_loop
from .listing import filters_of
from .models import Task, supervised_task_dict as task_dict

PAGE = 1000
COLUMNS = ("id", "external_id", "name", "queue", "status", "priority", "assignee_id", "created_at",
           "assigned_at", "completed_at", "deadline", "outcome", "note", "reasons", "checklist",
           "payload", "kind", "review_of", "expected_outcome", "audit", "final_outcome",
           "final_note", "finalized_at")
# Text cells a spreadsheet could run: neutralised (numbers are not text cells).
TEXT_COLUMNS = frozenset({"external_id", "name", "queue", "note", "reasons", "checklist",
                          "payload", "final_note"})
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}


@dataclass(frozen=True)
class ExportQuery:
    statuses: tuple[str, ...] = ()
    assignee_id: int | None = None
    priority: int | None = None
    queue: str | None = None
    outcome: str | None = None
    completed_after: datetime | None = None
    completed_before: datetime | None = None
    q: str | None = None


def _filters(query: ExportQuery) -> list:
    found = filters_of(query)
    if query.statuses:
        found.append(Task.status.in_(query.statuses))
    return found


def pages(session, query: ExportQuery, page: int = PAGE):
    """The matching task rows, a list of up to `page` at a time, by id."""
    table, filters, last = Task.__table__, _filters(query), 0
    # By the primary key, whatever the filters: MariaDB would otherwise pick a
    # filter's index and sort every remaining match for each page.
    hint = "FORCE INDEX (PRIMARY)"
    while True:
        try:
            rows = session.execute(
                sa.select(table).where(table.c.id > last, *filters).order_by(table.c.id)
                .limit(page).with_hint(table, hint, "mysql")
                .with_hint(table, hint, "mariadb")).all()
        finally:
            session.rollback()  # no transaction stays open while the client reads
        if not rows:
            return
        yield rows
        if len(rows) < page:
            return
        last = rows[-1].id
        yield_to_loop()


def neutralise(text: str) -> str:
    """A text cell that cannot run as a spreadsheet formula (OWASP)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_cells(task: dict) -> list:
    cells = []
    for column in COLUMNS:
        value = task[column]
        if column == "reasons" and value is not None:
            value = ";".join(value)  # codes: letters, digits and _ . - (forms.CODE)
        elif column in ("payload", "checklist") and value is not None:
            value = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        if value is None:
            cells.append("")
        elif column in TEXT_COLUMNS:
            cells.append(neutralise(value))
        else:
            cells.append(value)
    return cells


def stream(session, query: ExportQuery, kind: str):
    """The export as chunks of UTF-8 bytes, one per page (the header first)."""
    if kind == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(COLUMNS)
        yield buffer.getvalue().encode("utf-8")
        for rows in pages(session, query):
            buffer.seek(0)
            buffer.truncate()
            for row in rows:
                writer.writerow(_csv_cells(task_dict(row)))
            yield buffer.getvalue().encode("utf-8")
        return
    for rows in pages(session, query):
        yield "".join(json.dumps(task_dict(row), ensure_ascii=False, separators=(",", ":"))
                      + "\n" for row in rows).encode("utf-8")
