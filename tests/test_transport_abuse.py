"""One anonymous client must not stall or bloat the server."""
import pytest


@pytest.mark.parametrize("event", ["task-complete", "set-availability"])
def test_an_event_with_any_number_of_arguments_is_answered(server, connect, event):
    alice = server.reviewer("alice")
    sock = connect(alice["token"])
    assert sock.next("idle")["reason"] == "queue-empty"
    for arguments in [(1, 2, 3), ({"available": True}, 2)]:
        reply = sock.call(event, arguments)  # a tuple: one Socket.IO argument each
        assert reply["ok"] is False and reply["error"]["code"] == "bad_request", arguments
    reply = sock.call(event, ())  # no argument at all
    assert reply["ok"] is False and reply["error"]["code"] == "not_an_object"
    assert sock.call("set-availability", {"available": True})["ok"] is True
