"""Queues and skills on the pages (issue 14), in Debian's Chromium against a
real `run.py`: the board's queue tiles and their figures, the flag on a queue
with work and no qualified reviewer online, the queue filter of the task
list, why a pending task waits, creating a queue, editing a reviewer's skills
(and who gets the next task because of it), and the task's queue on the
reviewer page.
"""
import re

from playwright.sync_api import expect

from live import PASSWORD
from test_pages_browser import (PHONE, browser, cell, fits_the_width, login,  # noqa: F401
                                open_page, screenshot, see, shows_task)


def reviewer_with(server, name: str, skills: dict) -> dict:
    """A reviewer created with `skills` (POST /users), logged in: {"id", "token", ...}."""
    user = server.request("POST", "/users", server.admin_token, expect=201,
                          json={"username": name, "password": PASSWORD, "role": "reviewer",
                                "skills": skills}).json()
    assert user["skills"] == skills
    return {**user, "token": server.login(name)["access_token"]}


def new_queue(server, name: str, **fields) -> dict:
    return server.request("POST", "/queues", server.admin_token, expect=201,
                          json={"name": name, **fields}).json()


def watch_csp(page):
    """Record the page's Content-Security-Policy violations in window.__csp."""
    page.add_init_script("window.__csp = []; document.addEventListener("
                         "'securitypolicyviolation', (e) => window.__csp.push("
                         "`${e.violatedDirective} ${e.blockedURI}`));")
    return page


def tile(name: str, figure: str | None = None) -> str:
    """A queue tile, or one of its figures: pending, assigned, oldest, online."""
    base = f'#queue-tiles li[data-queue="{name}"]'
    return f'{base} dd[data-figure="{figure}"]' if figure else base


def sees_tile(page, name: str, pending: int, assigned: int, online: int, flagged: bool):
    see(page, tile(name, "pending"), str(pending))
    see(page, tile(name, "assigned"), str(assigned))
    see(page, tile(name, "online"), str(online))
    expect(page.locator(tile(name))).to_have_attribute("data-unattended", str(flagged).lower())
    alert = page.locator(f"{tile(name)} .queue-alert")
    if flagged:
        expect(alert).to_have_text("Work waiting, no qualified reviewer online")
    else:
        expect(alert).to_be_hidden()


def waiting_of(server, task_id: int):
    """The `waiting` of GET /tasks/<id> (Server.task leaves it out)."""
    return server.request("GET", f"/tasks/{task_id}", server.admin_token,
                          expect=200).json()["waiting"]


def waiting_said(waiting) -> str:
    """What the board shows for a task's `waiting` (queues.js waitingText)."""
    if isinstance(waiting, str):
        return waiting
    for key in ("message", "detail", "reason", "code"):
        if waiting.get(key):
            return waiting[key]
    raise AssertionError(f"a waiting reason the page cannot show: {waiting!r}")


def task_rows(page):
    return page.locator("#tasks tbody tr")


def test_queue_tiles_filter_and_why_tasks_wait(server, connect, open_page):
    server.create_user("sue", role="supervisor")
    injected = '<img id="injected-desc" src="x" onerror="window.__xss = 1">'
    new_queue(server, "fruit", min_level=3, description=f"Apples and pears {injected}")
    alice = reviewer_with(server, "alice", {"default": 1, "fruit": 5})
    reviewer_with(server, "bob", {"default": 1})  # never online
    board = login(watch_csp(open_page()), server, "sue", lands_on="/supervisor")
    see(board, tile("fruit", "pending"), "0")
    see(board, tile("fruit") + " .queue-about", f"Apples and pears {injected}")
    assert board.locator("#injected-desc").count() == 0

    # A supervisor creates a queue on the page; the same name twice is refused, on screen.
    board.fill("#queue-name", "metal")
    board.fill("#queue-description", "Castings")
    board.click("#queue-form-go")
    see(board, ".toast-ok", "Queue metal created.", contains=True)
    expect(board.locator("#queue-name")).to_have_value("")
    see(board, tile("metal", "pending"), "0")
    metal = [q for q in server.request("GET", "/queues", server.admin_token, expect=200)
             .json()["queues"] if q["name"] == "metal"]
    assert [(q["description"], q["min_level"]) for q in metal] == [("Castings", 1)]
    board.fill("#queue-name", "metal")
    board.click("#queue-form-go")
    see(board, "#queue-form-error", "Could not create the queue", contains=True)
    see(board, "#queue-form-error", "409", contains=True)
    # Editing a queue from its tile: PATCH /queues/<name>.
    board.click(f'{tile("fruit")} .queue-edit')
    expect(board.locator("#queue-name")).to_have_value("fruit")
    expect(board.locator("#queue-min-level")).to_have_value("3")
    board.fill("#queue-min-level", "0")
    board.click("#queue-form-go")
    see(board, "#queue-form-error", "The minimum level must be at least 1.")
    board.fill("#queue-min-level", "3")
    board.fill("#queue-relax", "600")
    board.fill("#queue-description", "Apples and pears")
    board.click("#queue-form-go")
    see(board, ".toast-ok:last-child", "Queue fruit saved.", contains=True)
    see(board, tile("fruit") + " .queue-rule", "needs level 3 · any level after 10 min")
    fruit = server.request("GET", "/queues", server.admin_token, expect=200).json()["queues"]
    assert [(q["min_level"], q["relax_after_s"], q["description"]) for q in fruit
            if q["name"] == "fruit"] == [(3, 600, "Apples and pears")]
    expect(board.locator("#queue-form-go")).to_have_text("Create queue")

    top, second, *castings, plain = server.add_tasks([
        {"name": "Grade apples", "queue": "fruit", "priority": 5},
        {"name": "Grade pears", "queue": "fruit"},
        {"name": "Casting 1", "queue": "metal"}, {"name": "Casting 2", "queue": "metal"},
        {"name": "Casting 3", "queue": "metal"},
        {"name": "Plain check"}])
    assert plain["queue"] == "default"
    assert connect(alice["token"]).task()["id"] == top["id"]

    # fruit: alice (level 5 >= 3) holds one; metal: nobody has the skill, so it is flagged.
    sees_tile(board, "fruit", pending=1, assigned=1, online=1, flagged=False)
    sees_tile(board, "metal", pending=3, assigned=0, online=0, flagged=True)
    sees_tile(board, "default", pending=1, assigned=0, online=1, flagged=False)
    see(board, "#queues-summary", "1 with work and no qualified reviewer online")
    assert board.locator("#injected-desc").count() == 0
    assert board.evaluate("window.__xss") is None
    assert board.evaluate("window.__csp") == []
    expect(board.locator("#queue-tiles li").first).to_have_attribute("data-queue", "metal")

    # The task list: every queue, then one queue (GET /tasks?queue=).
    expect(task_rows(board)).to_have_count(5)
    filtered = []
    board.on("request", lambda r: filtered.append(r.url) if "/tasks?" in r.url else None)
    board.select_option("#tasks-queue", "metal")
    expect(task_rows(board)).to_have_count(3)
    assert any("queue=metal" in url for url in filtered)
    expect(board.locator("#tasks tbody td.task-queue")).to_have_text(["metal"] * 3)
    see(board, "#tasks-note", "3 pending tasks in metal")
    # Why each one waits: GET /tasks/<id> `waiting`, shown under its name.
    for task in castings:
        said = waiting_said(waiting_of(server, task["id"]))
        see(board, f'#tasks tr[data-task="{task["id"]}"] .task-waiting', said)
    board.select_option("#tasks-queue", "fruit")
    expect(task_rows(board)).to_have_count(1)
    see(board, f'#tasks tr[data-task="{second["id"]}"] .task-waiting',
        waiting_said(waiting_of(server, second["id"])))
    # A tile's "Tasks" button filters too.
    board.click(f'{tile("default")} .queue-show')
    expect(board.locator("#tasks-queue")).to_have_value("default")
    expect(task_rows(board)).to_have_count(1)
    see(board, f'#tasks tr[data-task="{plain["id"]}"] td.task-queue', "default")
    board.select_option("#tasks-queue", "")
    expect(task_rows(board)).to_have_count(5)
    board.select_option("#tasks-queue", "metal")
    expect(task_rows(board)).to_have_count(3)
    see(board, f'#tasks tr[data-task="{castings[0]["id"]}"] .task-waiting',
        waiting_said(waiting_of(server, castings[0]["id"])))
    board.evaluate("window.scrollTo(0, 0); document.querySelector('#toasts').replaceChildren()")
    screenshot(board, "board-queues")

    phone = login(open_page(PHONE), server, "sue", lands_on="/supervisor")
    sees_tile(phone, "metal", pending=3, assigned=0, online=0, flagged=True)
    assert fits_the_width(phone)
    screenshot(phone, "board-queues-phone")


def test_editing_skills_on_the_board_decides_who_gets_the_next_task(server, connect, open_page):
    server.create_user("sue", role="supervisor")
    new_queue(server, "fruit", min_level=3)
    alice = reviewer_with(server, "alice", {"default": 1})
    bob = reviewer_with(server, "bob", {"default": 1})
    alice_socket = connect(alice["token"])
    assert alice_socket.next("idle")["reason"] == "queue-empty"
    bob_page = login(watch_csp(open_page()), server, "bob", lands_on="/reviewer")
    see(bob_page, "#empty-title", "All done for now")
    [apples] = server.add_tasks({"name": "Grade apples", "queue": "fruit", "priority": 2})

    board = login(watch_csp(open_page()), server, "sue", lands_on="/supervisor")
    sees_tile(board, "fruit", pending=1, assigned=0, online=0, flagged=True)
    see(board, cell("bob", 1) + " .skills", "default 1")

    row = board.locator('#reviewers tr[data-reviewer="bob"]')
    row.get_by_role("button", name="Edit the skills of bob").click()
    editor = board.locator("#skills-editor")
    expect(editor).to_be_visible()
    see(board, "#skills-title", "Skills of bob")
    level = board.locator('#skills-levels input[data-queue="fruit"]')
    expect(level).to_have_value("")
    expect(board.locator('#skills-levels input[data-queue="default"]')).to_have_value("1")

    # A level the server refuses: the error stays on screen, with what was typed.
    level.fill("11")
    board.click("#skills-save")
    see(board, "#skills-error", "Not saved", contains=True)
    see(board, "#skills-error", "422", contains=True)
    expect(editor).to_be_visible()
    expect(level).to_have_value("11")
    users = server.request("GET", "/users", server.admin_token, expect=200).json()["users"]
    assert [u["skills"] for u in users if u["id"] == bob["id"]] == [{"default": 1}]
    assert server.task(apples["id"])["status"] == "pending"

    # Level 4 >= the queue's 3: bob, not alice, gets the task.
    level.fill("4")
    board.click("#skills-save")
    see(board, ".toast-ok", "bob's skills: fruit 4, default 1.", contains=True)
    expect(editor).to_be_hidden()
    shows_task(bob_page, apples)
    see(bob_page, "#task-queue", "fruit")
    assert server.task(apples["id"])["assignee_id"] == bob["id"]
    see(board, cell("bob", 1) + " .skills", re.compile(r"fruit 4"))
    see(board, cell("bob", 3), f"#{apples['id']}")
    sees_tile(board, "fruit", pending=0, assigned=1, online=1, flagged=False)
    screenshot(bob_page, "reviewer-queue")

    # The next fruit task goes to bob again once he is free; alice still cannot take it.
    [pears] = server.add_tasks({"name": "Grade pears", "queue": "fruit"})
    bob_page.keyboard.press("p")
    shows_task(bob_page, pears)
    assert server.task(pears["id"])["assignee_id"] == bob["id"]
    assert all(kind != "task-assigned" for kind, _ in alice_socket.log)

    # A blank level takes the reviewer out of that queue (the map is replaced).
    board.locator('#reviewers tr[data-reviewer="alice"]').get_by_role(
        "button", name="Edit the skills of alice").click()
    see(board, "#skills-title", "Skills of alice")
    board.fill('#skills-levels input[data-queue="default"]', "")
    board.fill('#skills-levels input[data-queue="fruit"]', "3")
    board.click("#skills-save")
    see(board, ".toast-ok:last-child", "alice's skills: fruit 3.", contains=True)
    see(board, cell("alice", 1) + " .skills", "fruit 3")
    users = server.request("GET", "/users", server.admin_token, expect=200).json()["users"]
    assert [u["skills"] for u in users if u["id"] == alice["id"]] == [{"fruit": 3}]
    for page in (board, bob_page):
        assert page.evaluate("window.__csp") == []
