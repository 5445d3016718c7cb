"""POST /tasks/import: a CSV upload, every row checked first, a report of the
bad rows, all-or-nothing unless ?skip_invalid=1, then batches of 1,000."""
import csv
import io
import json

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from api_support import assert_error, count

HEADER = ["name", "priority", "deadline", "external_id", "payload"]


def _good(n: int) -> list[str]:
    return [f"item {n}", str(n % 4), "2031-01-01T00:00:00Z" if n % 3 == 0 else "",
            f"csv-{n}", json.dumps({"n": n}) if n % 2 else ""]


# index -> (cells, [(field, code), ...])
BAD = {
    10: (["item", "high", "", "b-10", ""], [("priority", "wrong_type")]),
    500: (["", "1", "", "b-500", ""], [("name", "empty")]),
    777: (["item", "1", "next week", "b-777", ""], [("deadline", "bad_datetime")]),
    1234: (["item", "1", "", "b-1234", "{not json"], [("payload", "invalid_json")]),
    1500: (["item", "1", "", "b-1500", "[1, 2]"], [("payload", "wrong_type")]),
    2000: (["item", "1", "", "x" * 192, ""], [("external_id", "too_long")]),
    2500: (["item", "99999999", "", "b-2500", ""], [("priority", "out_of_range")]),
    2600: (["item", "1", "", "b-2600", "", "surplus"], [(None, "extra_cells")]),
    # A name is one line; a quoted cell may hold several, so the refusal names it.
    2700: (["two\nlines", "1", "", "b-2700", ""], [("name", "control_character")]),
    2800: (["item", "1", "", "b\x00-2800", ""], [("external_id", "control_character")]),
    2999: (["  ", "1.5", "", "b-2999", ""], [("name", "empty"), ("priority", "wrong_type")]),
}


def _csv(rows: int = 3000):
    """A CSV of `rows` data rows with the BAD ones, a two-line quoted cell, a
    blank line and an external_id repeated; returns (bytes, expected problems)."""
    out = io.StringIO()
    writer = csv.writer(out)  # \r\n line ends, as spreadsheets write them
    writer.writerow(HEADER)
    problems = []
    for n in range(rows):
        line = out.getvalue().count("\n") + 1
        if n in BAD:
            cells, expected = BAD[n]
            problems += [(n, line, field, code) for field, code in expected]
        elif n == 5:
            cells = ["two, with comma", "3", "", "csv-5", '{"k":\n "v, with comma"}']
        elif n == 42:
            cells = _good(41)  # the same external_id as row 41
        else:
            cells = _good(n)
        writer.writerow(cells)
        if n == 100:
            out.write("\r\n")  # a blank line: skipped, but it counts for line numbers
    return ("\ufeff" + out.getvalue()).encode("utf-8"), problems


def _post(server, body: bytes, query: str = "", multipart: bool = False, token=None,
          content_type="text/csv"):
    kwargs = ({"files": {"file": ("tasks.csv", body, "text/csv")}} if multipart
              else {"data": body, "headers": {"Content-Type": content_type}})
    return server.request("POST", "/tasks/import" + query, token or server.admin_token,
                          **kwargs)


def _problems(report: list[dict]) -> list[tuple]:
    for row in report:
        assert set(row) == {"index", "line", "field", "code", "message"} and row["message"]
    return [(r["index"], r["line"], r["field"], r["code"]) for r in report]


def test_a_file_with_bad_rows_imports_nothing_and_names_every_bad_row(server):
    body, expected = _csv()
    response = _post(server, body)
    error = assert_error(response, 400, "invalid_tasks")  # some are type errors: 400
    assert _problems(error["rows"]) == expected
    assert (error["invalid_rows"], error["total_rows"]) == (len(BAD), 3000)
    assert "skip_invalid" in error["message"]
    assert count(server.database, "tasks") == 0

    # Only value errors: 422.
    small = "name,priority\nok,1\n,2\nalso ok,7000000\n".encode()
    error = assert_error(_post(server, small), 422, "invalid_tasks")
    assert _problems(error["rows"]) == [(1, 3, "name", "empty"),
                                        (2, 4, "priority", "out_of_range")]
    assert count(server.database, "tasks") == 0


def test_skip_invalid_imports_the_good_rows_in_batches_and_reports_the_rest(server):
    body, expected = _csv()
    response = _post(server, body, "?skip_invalid=1", multipart=True)
    assert response.status_code == 201, response.text
    result = response.json()
    good = 3000 - len(BAD)
    assert _problems(result.pop("invalid")) == expected
    assert result == {"created": good - 1, "existing": 1, "invalid_rows": len(BAD),
                      "total_rows": 3000, "batches": 3}  # no task_ids above 1,000 rows
    assert count(server.database, "tasks") == good - 1
    assert count(server.database, "task_events") == good - 1  # one "created" each

    (name, priority, deadline, payload), = server.database.query(
        "SELECT name, priority, deadline, payload FROM tasks WHERE external_id = %s", "csv-5")
    assert (name, priority, deadline) == ("two, with comma", 3, None)
    assert json.loads(payload) == {"k": "v, with comma"}
    task_id = server.database.query("SELECT id FROM tasks WHERE external_id = %s", "csv-9")[0][0]
    task = server.task(task_id)
    assert (task["name"], task["priority"], task["deadline"], task["payload"], task["status"]) \
        == ("item 9", 1, "2031-01-01T00:00:00.000Z", {"n": 9}, "pending")
    # File order is queue order within a priority: created_at ties break by id.
    ids = [row[0] for row in server.database.query(
        "SELECT id FROM tasks WHERE external_id IN (%s, %s, %s)", "csv-1", "csv-2", "csv-3")]
    assert sorted(ids) == ids

    # The same file again: every row is found by its external_id, nothing new.
    again = _post(server, body, "?skip_invalid=true").json()
    assert (again["created"], again["existing"], again["batches"]) == (0, good, 3)
    assert count(server.database, "tasks") == good - 1


def test_imported_tasks_go_out_at_once_and_small_imports_list_their_ids(server, connect):
    alice = server.reviewer("alice")
    sock = connect(alice["token"])
    sock.next("idle")
    body = ("Name , PRIORITY,external_id\r\nlow,0,s-1\r\nurgent,9,s-2\r\n\r\nmid,2,s-3\r\n"
            "low,0,s-1\r\n").encode()
    response = _post(server, body, content_type="text/csv; charset=utf-8")
    assert response.status_code == 201, response.text
    result = response.json()
    ids = result.pop("task_ids")
    assert result == {"created": 3, "existing": 1, "invalid": [], "invalid_rows": 0,
                      "total_rows": 4, "batches": 1}
    assert len(set(ids)) == 3 and ids[0] == ids[3]
    pushed = sock.task()
    assert (pushed["id"], pushed["name"], pushed["priority"]) == (ids[1], "urgent", 9)


def test_whole_file_problems_content_types_flags_and_size(server):
    admin = server.admin_token
    cases = [
        (b"", 400, "empty_file"),
        (b"\r\n\r\n", 400, "empty_file"),
        (b"name,priority\n", 400, "empty_list"),
        (b"name,colour\nx,red\n", 400, "unknown_column"),
        (b"priority\n1\n", 400, "missing_column"),
        (b"name,Name\nx,y\n", 400, "duplicate_column"),
        (b"name\n\xff\xfe broken\n", 400, "invalid_csv"),
        (b'name\n"unterminated\n', 400, "invalid_csv"),
        (b'name\n"a"b\n', 400, "invalid_csv"),
    ]
    for body, status, code in cases:
        assert_error(_post(server, body), status, code)
    assert_error(_post(server, b"name\nx\n", content_type="application/json"), 415,
                 "unsupported_media_type")
    assert_error(server.request("POST", "/tasks/import", admin,
                                files={"upload": ("t.csv", b"name\nx\n", "text/csv")}),
                 400, "missing_file")
    assert_error(_post(server, b"name\nx\n", "?skip_invalid=maybe"), 400)
    assert_error(_post(server, b"name\nx\n", "?dry_run=1"), 400, "unknown_field")
    too_many = b"name\n" + b"x\n" * 100_001
    assert_error(_post(server, too_many), 422, "too_many")
    # The upload may be bigger than the JSON routes' 16 MiB (these 17 MiB of
    # blank rows are read, and skipped), but not without bound.
    blank = b"name\n" + (b" " * 1023 + b"\n") * (17 * 1024)
    assert_error(_post(server, blank), 400, "empty_list")
    huge = b"name\n" + b"x\n" * (33 * 1024 * 1024)  # 66 MiB
    assert_error(_post(server, huge), 413)
    assert count(server.database, "tasks") == 0


def test_spreadsheet_columns_left_empty_are_ignored_and_unnamed_values_refused(server):
    # A spreadsheet's "Save as CSV" keeps columns that once held something.
    saved = b"name,priority,,\r\nLot 10,5,,\r\nLot 11,6,,\r\n"
    result = _post(server, saved).json()
    assert (result["created"], result["invalid_rows"]) == (2, 0), result
    assert [server.task(i)["priority"] for i in result["task_ids"]] == [5, 6]
    # Blank columns anywhere, blank cells past the header, a header cell of blanks.
    for body in (b",name, ,priority\n,Lot 12,,7\n", b"name,priority\nLot 13,8,,\n"):
        response = _post(server, body)
        assert response.status_code == 201, (body, response.text)
    assert count(server.database, "tasks") == 4

    # A value under no name: the whole file, and the message says where.
    error = assert_error(_post(server, b"name,priority,\nLot 20,5,\nLot 21,6,urgent\n"),
                         400, "unnamed_column")
    assert "column 3" in error["message"] and "line 3" in error["message"], error
    # Unknown and repeated names say which columns.
    error = assert_error(_post(server, b"name,prio,colour\nx,1,red\n"), 400, "unknown_column")
    assert "column 2 'prio'" in error["message"] and "column 3 'colour'" in error["message"]
    error = assert_error(_post(server, b"Name,priority,name\nx,1,y\n"), 400,
                         "duplicate_column")
    assert "'name' is columns 1 and 3" in error["message"], error
    assert count(server.database, "tasks") == 4


def test_a_failure_part_way_says_how_far_the_import_got(app, monkeypatch):
    """Batches before the failure stay (each was committed and dispatched);
    the error says so instead of pretending nothing happened."""
    from qc_live import importer, state
    from qc_live.extensions import db
    from qc_live.models import Task
    tasks = sa.select(sa.func.count()).select_from(Task)
    dispatcher = state.dispatcher()
    real = dispatcher.create_tasks
    failures = {2: OperationalError("INSERT", {}, Exception(2013, "Lost connection")),
                3: RuntimeError("a bug")}
    for failing_batch, error in failures.items():
        calls = []

        def flaky(session, specs, actor_id):
            calls.append(len(specs))
            if len(calls) == failing_batch:
                raise error
            return real(session, specs, actor_id)
        monkeypatch.setattr(dispatcher, "create_tasks", flaky)
        before = db.session.scalar(tasks)
        parsed = importer.parse("name\n" + "x\n" * 2500, 65536, 100_000)
        with pytest.raises(importer.ImportInterrupted) as raised:
            importer.create_in_batches(db.session, parsed.specs, None, lambda outcome: None)
        done = (failing_batch - 1) * 1000
        assert raised.value.extra == {"created": done, "existing": 0,
                                      "imported_through_line": done + 1}
        assert (raised.value.status, raised.value.code) == \
            ((503, "unavailable") if failing_batch == 2 else (500, "internal_error"))
        assert f"line {done + 1}" in raised.value.message
        assert db.session.scalar(tasks) - before == done



def test_a_long_json_list_failing_part_way_names_the_last_index_written(app, monkeypatch):
    """POST /tasks sends lists over 1,000 through the same batches; its error
    counts items by their index in the list, not by file lines."""
    from qc_live import importer, state
    from qc_live.extensions import db
    from qc_live.lifecycle import TaskSpec
    dispatcher = state.dispatcher()
    real, calls = dispatcher.create_tasks, []

    def flaky(session, specs, actor_id):
        calls.append(len(specs))
        if len(calls) == 3:
            raise OperationalError("INSERT", {}, Exception(2013, "Lost connection"))
        return real(session, specs, actor_id)
    monkeypatch.setattr(dispatcher, "create_tasks", flaky)
    specs = [TaskSpec(name=f"t{n}", payload={}) for n in range(2500)]
    with pytest.raises(importer.ImportInterrupted) as raised:
        importer.create_in_batches(db.session, list(enumerate(specs)), None,
                                   lambda outcome: None, counted_by="index")
    assert raised.value.extra == {"created": 2000, "existing": 0,
                                  "imported_through_index": 1999}
    assert (raised.value.status, raised.value.code) == (503, "unavailable")
    assert "tasks up to index 1999" in raised.value.message
