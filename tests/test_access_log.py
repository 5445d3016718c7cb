"""The access log (QC_ACCESS_LOG) and X-Request-ID, read from a live server's output."""
import json
import re

import pytest

from live import Reviewer, wait_until

HEX_ID = re.compile(r"[0-9a-f]{32}")


def access_lines(server) -> list[dict]:
    lines = []
    for line in server.log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if "request_id" in record:
                lines.append(record)
    return lines


def line_of(server, request_id: str) -> dict:
    return wait_until(lambda: next((r for r in access_lines(server)
                                    if r["request_id"] == request_id), None),
                      what=f"the access log line of {request_id}")


def test_each_request_is_one_json_line(start_server):
    server = start_server(QC_ACCESS_LOG="1")
    admin = server.login("admin", "admin-password-1")

    # a sane X-Request-ID is kept and answered back
    users = server.request("GET", "/users", admin["access_token"], expect=200,
                           headers={"X-Request-ID": "lb-7f3a:01"})
    assert users.headers["X-Request-ID"] == "lb-7f3a:01"
    line = line_of(server, "lb-7f3a:01")
    assert line["method"] == "GET" and line["path"] == "/users" and line["status"] == 200
    assert line["user_id"] == admin["user"]["id"]
    assert line["remote_addr"] == "127.0.0.1"
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert "query" not in line and "websocket" not in line

    # an insane one is replaced by a fresh id
    for offered in ("two words", "x" * 129, "<script>"):
        answer = server.request("GET", "/healthz", headers={"X-Request-ID": offered},
                                expect=200)
        assert HEX_ID.fullmatch(answer.headers["X-Request-ID"])
        assert line_of(server, answer.headers["X-Request-ID"])["user_id"] is None

    # errors are logged with their status; query values other than the API's
    # own filters are not written
    missing = server.request("GET", "/tasks/999", admin["access_token"], expect=404)
    assert line_of(server, missing.headers["X-Request-ID"])["status"] == 404
    listing = server.request("GET", "/tasks?status=pending&limit=5", admin["access_token"],
                             expect=200)
    assert line_of(server, listing.headers["X-Request-ID"])["query"] == "status=pending&limit=5"
    secret = server.request("GET", "/healthz?token=hunter2&x=1", expect=200)
    line = line_of(server, secret.headers["X-Request-ID"])
    assert line["query"] == "token=-&x=-" and "hunter2" not in json.dumps(access_lines(server))

    # login is logged without a user (there is no token yet)
    login = server.request("POST", "/login", json={"username": "admin",
                                                   "password": "admin-password-1"})
    assert line_of(server, login.headers["X-Request-ID"])["user_id"] is None


@pytest.mark.parametrize("transports", [["websocket"], None])
def test_a_websocket_is_one_line_when_it_closes(start_server, transports):
    server = start_server(QC_ACCESS_LOG="1")
    alice = server.reviewer("alice")
    sock = Reviewer(server, alice["token"]).connect(transports=transports)
    sock.next("idle")
    sock.disconnect()
    line = wait_until(lambda: next((r for r in access_lines(server) if r.get("websocket")),
                                   None), what="the WebSocket's line")
    assert line["status"] == 101 and line["path"] == "/socket.io/"
    assert line["user_id"] == alice["id"]
    # the query is shown, Engine.IO's sid (a polling session's credential) is not
    assert "transport=websocket" in line["query"]
    assert not re.search(r"sid=[^-]", line["query"])
    # long-polling requests are not logged unless QC_ACCESS_LOG=all
    assert not [r for r in access_lines(server) if "transport=polling" in r.get("query", "")]


def test_all_logs_long_polling_too(start_server):
    server = start_server(QC_ACCESS_LOG="all")
    alice = server.reviewer("alice")
    sock = Reviewer(server, alice["token"]).connect(transports=["polling"])
    sock.next("idle")
    sock.disconnect()
    polls = wait_until(lambda: [r for r in access_lines(server)
                                if "transport=polling" in r.get("query", "")],
                       what="long-polling lines")
    assert {r["method"] for r in polls} >= {"GET", "POST"}
    # the connection's user, once its CONNECT arrived
    assert alice["id"] in {r["user_id"] for r in polls}


def test_off_by_default_but_every_answer_has_a_request_id(server):
    answer = server.request("GET", "/healthz", expect=200)
    assert HEX_ID.fullmatch(answer.headers["X-Request-ID"])
    assert server.request("GET", "/nope", headers={"X-Request-ID": "abc"},
                          expect=404).headers["X-Request-ID"] == "abc"
    assert access_lines(server) == []


def test_a_bad_setting_stops_start_up(tmp_path):
    from qc_live.config import ConfigError, from_env
    with pytest.raises(ConfigError, match="QC_ACCESS_LOG"):
        from_env({"QC_INSTANCE_PATH": str(tmp_path), "QC_ACCESS_LOG": "yes please"})
