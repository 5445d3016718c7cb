"""CSV task import (POST /tasks/import): read, check every row, then create
the tasks in batches.

The policy: every row is checked before anything is written. With a bad row,
nothing is imported and the answer lists the bad rows — unless the caller
asked for `skip_invalid`, in which case the good rows are imported and the
answer lists the skipped ones. Nothing is ever half-imported silently: if the
database fails between batches, the answer says how far the import got.

Batches go through `Dispatcher.create_tasks` one at a time: each is its own
transaction (a long import never holds the write lock for long) and its tasks
go out to free reviewers at once, while the rest of the file is still being
written. Between batches the caller yields to the event loop so sockets and
other requests keep being served. A JSON `POST /tasks` list longer than one
batch goes through `create_in_batches` too, for the same reason.

The file: UTF-8 (a byte-order mark is fine), comma-separated, a header row
naming the columns (any order, case and surrounding blanks ignored): `name`
(required), `priority`, `deadline`, `external_id`, `payload` (a JSON object),
`queue` (an existing queue; a row naming another is refused, `unknown_queue`),
`expected_outcome` (pass or fail: a gold task).
An empty cell means "not given". Blank rows are skipped, and so are columns
that are blank from the header down (spreadsheets save trailing empty
columns); a column with values but no name is refused. Each row is checked
by the model of POST /tasks (schemas.requests.NewTask), once its cells are read as
JSON values (`_row`).
"""
import csv
import io
import logging
import re
from dataclasses import dataclass, field

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from . import state
from .database import is_unavailable
from .lifecycle import TaskSpec
from .errors import BadRequest, Invalid, QCError
from .models import Task
from .schemas.base import problems, strict_json
from .schemas.requests import NewTask, unknown_queue

log = logging.getLogger(__name__)

COLUMNS = ("name", "priority", "deadline", "external_id", "payload", "queue",
           "expected_outcome")
BATCH_SIZE = 1000
# Reports list at most this many problems (the counts are always complete).
MAX_REPORTED = 1000
# Answers carry the ids of the tasks when the import is at most this big.
MAX_IDS_IN_ANSWER = 1000
_INTEGER = re.compile(r"\s*[+-]?[0-9]{1,20}\s*")


@dataclass(frozen=True)
class Problem:
    index: int  # the data row, counting from 0 (the header and blank rows do not count)
    line: int  # the line of the file where the row starts (the header is line 1)
    field: str | None
    error: QCError

    def as_dict(self) -> dict:
        return {"index": self.index, "line": self.line, "field": self.field,
                "code": self.error.code, "message": self.error.message}


@dataclass
class Parsed:
    specs: list[tuple[int, TaskSpec]] = field(default_factory=list)  # (line, spec) of good rows
    problems: list[Problem] = field(default_factory=list)
    total_rows: int = 0

    @property
    def invalid_rows(self) -> int:
        return len({p.index for p in self.problems})

    def report(self) -> list[dict]:
        return [p.as_dict() for p in self.problems[:MAX_REPORTED]]

    def refusal(self) -> QCError:
        """The error answering an import with bad rows (and no skip_invalid):
        400 if any problem is a type error, else 422, like POST /tasks."""
        first = self.problems[0]
        kind = BadRequest if any(p.error.status == 400 for p in self.problems) else Invalid
        return kind(f"{self.invalid_rows} of {self.total_rows} rows are invalid; nothing was "
                    f"imported (first: line {first.line}: {first.error.message}). Fix them, "
                    "or add ?skip_invalid=1 to import the valid rows only",
                    code="invalid_tasks", rows=self.report(), invalid_rows=self.invalid_rows,
                    total_rows=self.total_rows)


def decode(raw: bytes) -> str:
    """The upload as text: UTF-8, with or without a byte-order mark."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise BadRequest(f"the file is not UTF-8 text (line {line}); save it as "
                         "CSV UTF-8", code="invalid_csv") from None


def _header(cells: list[str]) -> list[str | None]:
    """The column names in file order; None for a column the header leaves
    blank (its cells must be blank too, which `parse` checks)."""
    names = [cell.strip().lower() or None for cell in cells]
    unknown = [f"column {number} {name!r}" for number, name in enumerate(names, 1)
               if name is not None and name not in COLUMNS]
    if unknown:
        raise BadRequest(f"unknown column(s): {', '.join(unknown)}; the columns are "
                         f"{', '.join(COLUMNS)}", code="unknown_column")
    repeated = [f"{name!r} is columns " + " and ".join(
        str(number) for number, other in enumerate(names, 1) if other == name)
        for name in COLUMNS if names.count(name) > 1]
    if repeated:
        raise BadRequest(f"the header names a column more than once: {'; '.join(repeated)}",
                         code="duplicate_column")
    if "name" not in names:
        raise BadRequest("the header row must name a 'name' column", code="missing_column")
    return names


def _row(cells: dict, context: dict, queues: set | None = None):
    """(spec, []) or (None, [(field, error), ...]) for one row's cells. A
    blank cell is an absent field (but a blank name is an empty one); a
    priority of digits is a number, a payload is JSON; anything else is left
    as text for the model to refuse."""
    row, bad = {}, []
    for name, text in cells.items():
        if name != "name" and not text.strip():
            continue
        if name == "priority" and _INTEGER.fullmatch(text):
            row[name] = int(text)
        elif name == "payload":
            try:
                row[name] = strict_json(text)
            except (ValueError, RecursionError):
                bad.append((name, BadRequest("'payload' is not valid JSON", code="invalid_json")))
        else:
            row[name] = text
    try:
        task = NewTask.model_validate(row, context=context)
    except ValidationError as error:
        bad += problems(error, NewTask)
    else:
        if queues is not None and task.queue not in queues:
            bad.append(("queue", unknown_queue(task.queue)))
    if bad:
        return None, sorted(bad, key=lambda problem: COLUMNS.index(problem[0]))
    return TaskSpec(**dict(task)), []


def parse(text: str, max_payload_bytes: int, max_rows: int, pause=None,
          queues: set | None = None) -> Parsed:
    """Check every row. Whole-file problems (no header, unknown columns,
    broken quoting, too many rows) raise; row problems are collected (a
    queue not in `queues`, when given: `unknown_queue`).
    `pause` is called every 1,000 rows (the server yields to the event loop)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    context = {"max_payload_bytes": max_payload_bytes}
    try:
        header = next(reader, None)
        while header is not None and not any(cell.strip() for cell in header):
            header = next(reader, None)
        if header is None:
            raise BadRequest("the file is empty: it needs a header row and at least one "
                             "task", code="empty_file")
        columns = _header(header)
        unnamed = [i for i, name in enumerate(columns) if name is None]
        parsed = Parsed()
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            index = parsed.total_rows
            parsed.total_rows += 1
            if parsed.total_rows > max_rows:
                raise Invalid(f"at most {max_rows} rows per import", code="too_many")
            if pause is not None and index % 1000 == 999:
                pause()
            if len(cells) > len(columns):
                if any(cell.strip() for cell in cells[len(columns):]):
                    parsed.problems.append(Problem(index, line, None, BadRequest(
                        f"the row has {len(cells)} cells, the header {len(columns)}",
                        code="extra_cells")))
                    continue
                cells = cells[:len(columns)]  # blank cells past the header: nothing
            for i in unnamed:
                if i < len(cells) and cells[i].strip():
                    raise BadRequest(
                        f"column {i + 1} has no name in the header, but line {line} has a "
                        f"value in it ({cells[i][:40]!r}); name the column or delete it",
                        code="unnamed_column")
            spec, bad = _row({name: cell for name, cell in zip(columns, cells)
                              if name is not None}, context, queues)
            if bad:
                parsed.problems += [Problem(index, line, name, error) for name, error in bad]
            else:
                parsed.specs.append((line, spec))
    except csv.Error as exc:
        raise BadRequest(f"the file is not valid CSV (line {reader.line_num}: {exc})",
                         code="invalid_csv") from None
    if parsed.total_rows == 0:
        raise BadRequest("the file has a header but no tasks", code="empty_list")
    return parsed


@dataclass
class Imported:
    created: int = 0
    existing: int = 0  # rows whose external_id was already there (or earlier in the file)
    batches: int = 0
    task_ids: list[int] = field(default_factory=list)


class ImportInterrupted(QCError):
    """The database failed part-way: earlier batches are in, the rest is not."""

    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message, code=code, **extra)
        self.status = status


def create_in_batches(session, specs: list[tuple[int, TaskSpec]], actor_id: int,
                      after_batch, batch_size: int = BATCH_SIZE,
                      counted_by: str = "line"):
    """Create the tasks, `batch_size` per transaction, in input order.
    `after_batch(outcome)` runs after each commit (the server pushes the
    new assignments and yields there). Each spec comes with where it stands
    in the input: its line in a CSV file (`counted_by="line"`) or its index
    in a JSON list (`counted_by="index"`), which a failure part-way names."""
    done = Imported()
    seen = set()
    for start in range(0, len(specs), batch_size):
        batch = specs[start:start + batch_size]
        try:
            # Ids only grow (tasks are never deleted), so a task with a
            # larger id than any before this batch was created by it; the
            # others were found by their external_id.
            newest_before = session.scalar(sa.select(sa.func.max(Task.id))) or 0
            outcome = state.dispatcher().create_tasks(session, [spec for _, spec in batch],
                                                      actor_id)
        except Exception as exc:
            session.rollback()
            raise _interrupted(exc, done, specs[start - 1][0] if start else None,
                               counted_by) from exc
        for task in outcome.value:
            if task["id"] > newest_before and task["id"] not in seen:
                done.created += 1
            else:
                done.existing += 1
            seen.add(task["id"])
            done.task_ids.append(task["id"])
        done.batches += 1
        after_batch(outcome)
    return done


def _interrupted(exc: Exception, done: Imported, last: int | None,
                 counted_by: str) -> QCError:
    if isinstance(exc, QCError) and not done.batches:
        return exc
    progress = {"created": done.created, "existing": done.existing,
                f"imported_through_{counted_by}": last}
    items = "rows" if counted_by == "line" else "tasks"
    tail = (f"{items} up to {counted_by} {last} were imported ({done.created} tasks "
            f"created), the rest was not; send the rest again ({items} with an external_id "
            "are never created twice)" if last is not None else "nothing was imported")
    if isinstance(exc, IntegrityError):
        return ImportInterrupted(409, "external_id_conflict",
                                 "an external_id clashes with an existing task's external_id "
                                 f"(the database compares them differently); {tail}",
                                 **progress)
    if is_unavailable(exc):
        return ImportInterrupted(503, "unavailable",
                                 f"the database is not reachable; {tail}", **progress)
    if isinstance(exc, QCError):
        return ImportInterrupted(exc.status, exc.code, f"{exc.message}; {tail}", **progress)
    log.error("import failed after %d batch(es)", done.batches, exc_info=exc)
    return ImportInterrupted(500, "internal_error", f"internal server error; {tail}",
                             **progress)
