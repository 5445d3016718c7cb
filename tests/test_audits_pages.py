"""An auditor's page in a real browser (Debian's Chromium, Playwright): the second
review shows the item but not the first verdict, and a gold task not its answer,
anywhere in the DOM or in the socket frames the page received."""
import re

from playwright.sync_api import expect

from test_pages_browser import browser, login, open_page, see, shows_task  # noqa: F401

VERDICT = "scratch-on-the-lid-7Q"  # the first reviewer's note: must never reach the auditor
HIDDEN = re.compile(r"expected_outcome|final_outcome|final_note|finalized_at|\"audit\"\s*:|"
                    + VERDICT)


def test_the_auditor_sees_the_item_but_not_the_first_verdict_nor_the_gold_answer(
        server, open_page):  # noqa: F811
    admin = server.admin_token
    server.request("PATCH", "/queues/default", admin, json={"audit_rate": 1}, expect=200)
    alice = server.reviewer("alice")
    server.create_user("bob")
    [item] = server.add_tasks({"name": "Check lot 31", "payload": {"sku": "A-31",
                                                                  "line": "Press 2"}})
    server.request("PUT", "/availability", alice["token"], json={"availability": 1},
                   expect=200)
    server.request("POST", "/complete_task", alice["token"], expect=200, json={
        "task_id": item["id"], "outcome": "fail", "note": VERDICT})
    [gold] = server.add_tasks({"name": "Check lot 32", "payload": {"sku": "A-32"},
                               "expected_outcome": "pass"})

    page = open_page()
    frames = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda data: frames.append(
        data if isinstance(data, str) else data.decode("utf-8", "replace"))))
    page.on("response", lambda r: frames.append(r.text()) if "/socket.io/" in r.url and
            r.request.method == "GET" and r.ok else None)
    login(page, server, "bob", lands_on="/reviewer")
    audit = {"id": item["id"] + 1, "name": "Check lot 31"}
    shows_task(page, audit)
    see(page, "#payload", "Press 2", contains=True)
    assert server.task(audit["id"])["review_of"] == item["id"]
    html = page.content()
    assert VERDICT not in html and not HIDDEN.search(html)
    expect(page.locator("#note")).to_have_value("")

    page.keyboard.press("p")  # bob disagrees: a dispute
    shows_task(page, gold)
    html = page.content()
    assert not HIDDEN.search(html)
    page.keyboard.press("f")
    see(page, "#done-count", "2")
    assert any("Check lot 31" in frame for frame in frames), "no task frame was seen"
    leaked = [frame for frame in frames if HIDDEN.search(frame)]
    assert leaked == []

    original = server.task(item["id"])
    assert (original["audit"], original["finalized_at"]) == ("disputed", None)
    assert server.task(gold["id"])["outcome"] == "fail"
