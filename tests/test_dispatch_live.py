"""Push on connect, complete -> next, tabs, pause/resume: against a real server."""


def test_connect_pushes_the_next_task_and_completion_pushes_the_one_after(server, connect):
    alice = server.reviewer("alice")
    low, high = server.add_tasks([{"name": "low", "priority": 0},
                                  {"name": "high", "priority": 5}])
    sock = connect(alice["token"])
    first = sock.task()
    assert first["id"] == high["id"]
    assert first["status"] == "assigned" and first["assignee_id"] == alice["id"]
    ack = sock.complete(first["id"], "fail", note="scratch on lid")
    assert ack["ok"] is True and ack["task_id"] == first["id"]
    second = sock.task()
    assert second["id"] == low["id"]
    sock.complete(second["id"])
    assert sock.next("idle") == {"reason": "queue-empty"}
    done = server.task(first["id"])
    assert (done["status"], done["outcome"], done["note"]) == ("completed", "fail",
                                                               "scratch on lid")
