"""GET /tasks/export on a real server: CSV and NDJSON content, the filters,
spreadsheet formulas neutralised, refusals, pages, and who may export."""
import csv
import io
import json

import pytest

from qc_live import export


@pytest.fixture
def floor_tasks(server):
    """Tasks of every kind: two completed by alice (one pass, one fail), one
    cancelled, the rest pending; names a spreadsheet would run."""
    alice = server.reviewer("alice")
    made = server.add_tasks(
        {"name": "=HYPERLINK(\"http://x\",\"click\")", "priority": 5,
         "payload": {"sku": "A-1", "naïve": "ü"}, "external_id": "+lot-1"},
        {"name": "-2+3", "priority": -5, "external_id": "@sum"},
        {"name": "Tabbed", "payload": {}},
        {"name": "plain, with a comma and \"quotes\"", "priority": 1},
        {"name": "to cancel"})
    server.request("PATCH", f"/tasks/{made[4]['id']}", server.admin_token,
                   json={"status": "cancelled"}, expect=200)
    server.request("PUT", "/availability", alice["token"], json={"availability": 1}, expect=200)
    first = server.request("GET", "/me/task", alice["token"], expect=200).json()["task"]
    second = server.request("POST", "/complete_task", alice["token"], expect=200, json={
        "task_id": first["id"], "outcome": "fail", "note": "=cmd|' /C calc'!A0\nline two"}
    ).json()["next_task"]
    # Paused: she keeps the second task, and gets none after it.
    server.request("PUT", "/availability", alice["token"], json={"availability": 0}, expect=200)
    server.request("POST", "/complete_task", alice["token"], expect=200,
                   json={"task_id": second["id"], "outcome": "pass", "note": "\tindented"})
    return {"alice": alice, "made": made, "completed": [first["id"], second["id"]]}


def _export(server, token=None, **params):
    return server.request("GET", "/tasks/export", token or server.admin_token, params=params)


def _csv(response) -> list[dict]:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    text = response.content.decode("utf-8")
    assert text.startswith(",".join(export.COLUMNS) + "\r\n")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def _ndjson(response) -> list[dict]:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/x-ndjson"
    return [json.loads(line) for line in response.text.splitlines()]


def test_ndjson_is_every_task_as_the_api_shows_it(server, floor_tasks):
    exported = _ndjson(_export(server, format="ndjson"))
    assert [t["id"] for t in exported] == sorted(t["id"] for t in floor_tasks["made"])
    for task in exported:
        assert task == server.task(task["id"])


def test_csv_has_a_header_utf8_and_neutralised_formulas(server, floor_tasks):
    response = _export(server, format="csv")
    assert response.headers["Content-Disposition"] == 'attachment; filename="tasks.csv"'
    rows = {int(r["id"]): r for r in _csv(response)}
    made = floor_tasks["made"]
    first, second, tabbed, plain = (rows[t["id"]] for t in made[:4])
    assert first["name"] == "'=HYPERLINK(\"http://x\",\"click\")"
    assert first["external_id"] == "'+lot-1"
    assert json.loads(first["payload"]) == {"sku": "A-1", "naïve": "ü"}
    assert second["name"] == "'-2+3" and second["external_id"] == "'@sum"
    assert second["priority"] == "-5"  # a number, not text: left as it is
    assert tabbed["name"] == "Tabbed"
    assert rows[floor_tasks["completed"][1]]["note"] == "'\tindented"
    assert plain["name"] == "plain, with a comma and \"quotes\""
    noted = rows[floor_tasks["completed"][0]]
    assert noted["note"] == "'=cmd|' /C calc'!A0\nline two"
    assert noted["outcome"] == "fail" and noted["status"] == "completed"
    assert noted["completed_at"] == server.task(int(noted["id"]))["completed_at"]
    assert rows[made[4]["id"]]["assignee_id"] == "" and rows[made[4]["id"]]["note"] == ""
    for row in rows.values():
        for column in export.TEXT_COLUMNS:
            assert not row[column].startswith(export.FORMULA_STARTS), row[column]


def test_the_filters_of_the_listing_and_the_completion_window(server, floor_tasks):
    made, completed = floor_tasks["made"], floor_tasks["completed"]

    def ids(**params):
        return [t["id"] for t in _ndjson(_export(server, format="ndjson", **params))]
    assert ids(status="completed") == sorted(completed)
    assert ids(status="cancelled,completed") == sorted(completed + [made[4]["id"]])
    assert ids(assignee_id=floor_tasks["alice"]["id"]) == sorted(completed)
    assert ids(priority=-5) == [made[1]["id"]]
    at = [server.task(i)["completed_at"] for i in completed]
    assert ids(completed_after=at[0]) == sorted(completed)  # inclusive
    assert ids(completed_before=at[1]) == [completed[0]]  # exclusive
    assert ids(completed_after=at[1], completed_before=at[1]) == []
    assert ids(status="pending", completed_after=at[0]) == []
    assert _csv(_export(server, format="csv", status="expired")) == []  # the header alone


def test_the_queue_filter_and_column(server, floor_tasks):
    server.request("POST", "/queues", server.admin_token, json={"name": "metal"}, expect=201)
    [metal] = server.add_tasks({"name": "in metal", "queue": "metal"})
    exported = _ndjson(_export(server, format="ndjson", queue="metal"))
    assert [t["id"] for t in exported] == [metal["id"]]
    assert exported[0]["queue"] == "metal"
    rows = _csv(_export(server, format="csv"))
    queues = {int(r["id"]): r["queue"] for r in rows}
    assert queues[metal["id"]] == "metal"
    assert {queues[t["id"]] for t in floor_tasks["made"]} == {"default"}


@pytest.mark.parametrize("params, status, code", [
    ({}, 400, "missing_field"),
    ({"format": "xlsx"}, 422, "bad_format"),
    ({"format": "csv", "status": "done"}, 422, "bad_status"),
    ({"format": "csv", "completed_after": "yesterday"}, 422, "bad_datetime"),
    ({"format": "csv", "priority": "high"}, 400, "wrong_type"),
    ({"format": "csv", "cursor": "abc"}, 400, "unknown_field"),
])
def test_a_bad_format_or_filter_is_refused_before_anything_is_sent(server, params, status,
                                                                   code):
    response = _export(server, **params)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize("cell, safe", [
    ("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@A1", "'@A1"), ("\tx", "'\tx"),
    ("\rx", "'\rx"), ("a=1", "a=1"), ("", ""), ("'=quoted", "'=quoted")])
def test_what_a_spreadsheet_would_run_gets_a_quote(cell, safe):
    assert export.neutralise(cell) == safe


def test_pages_follow_each_other_by_id_without_a_gap_or_a_repeat(app, floor, monkeypatch):
    monkeypatch.setattr(export, "PAGE", 7)
    floor.tasks(*({"name": f"t{i}"} for i in range(50)))
    from qc_live.extensions import db
    query = export.ExportQuery()
    sizes = [len(rows) for rows in export.pages(db.session, query, page=7)]
    assert sizes == [7] * 7 + [1]
    chunks = list(export.stream(db.session, export.ExportQuery(statuses=("pending",)), "ndjson"))
    assert [json.loads(line)["name"] for chunk in chunks
            for line in chunk.decode().splitlines()] == [f"t{i}" for i in range(50)]


def test_only_supervisors_and_admins_export(server):
    alice = server.reviewer("alice")
    assert server.request("GET", "/tasks/export", None, params={"format": "csv"}) \
        .status_code == 401
    assert _export(server, alice["token"], format="csv").status_code == 403
    server.create_user("sue", role="supervisor")
    sue = server.login("sue")["access_token"]
    assert _export(server, sue, format="ndjson").status_code == 200
