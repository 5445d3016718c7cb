"""The board that runs the floor (issue 15, part 3), in Debian's Chromium
against a real `run.py`: the results view and its filters, the task drawer
with the history, search by external_id and by name, people management
(a reviewer created and given a skill, a password reset, pause,
deactivation, a refusal on screen), the completions chart drawn from the
server's history, and the review form editor's preview.
"""
import json
import re
from datetime import datetime, timedelta, timezone

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from api_support import execute
from live import ADMIN, PASSWORD
from test_pages_browser import (PHONE, browser, fits_the_width, login,  # noqa: F401
                                open_page, screenshot, see)


def result_row(task_id: int) -> str:
    return f'#results tbody tr[data-task="{task_id}"]'


def shown_results(page) -> list[int]:
    return [int(i) for i in page.locator("#results tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.task)")]


def results_are(page, ids: list[int]) -> None:
    """The results table shows exactly these tasks, in this order (waits for it)."""
    try:
        page.wait_for_function(
            "want => JSON.stringify([...document.querySelectorAll('#results tbody tr')]"
            ".map(r => Number(r.dataset.task))) === want", arg=json.dumps(ids), polling=50,
            timeout=5000)
    except PlaywrightTimeout:
        pass
    assert shown_results(page) == ids


def floor(server, connect):
    """alice completes four tasks for real before any board opens: two of
    them two hours ago (times and a reason set underneath), two just now."""
    server.request("POST", "/queues", server.admin_token, expect=201, json={"name": "fruit"})
    alice = server.request("POST", "/users", server.admin_token, expect=201, json={
        "username": "alice", "password": PASSWORD, "skills": {"default": 1, "fruit": 1}}).json()
    tasks = server.add_tasks([
        {"name": "Apple crate 1", "external_id": "ext-a1", "payload": {"sku": "A-1"}},
        {"name": "Apple crate 2", "queue": "fruit", "payload": {"sku": "A-2"}},
        {"name": "Pear box", "queue": "fruit"},
        {"name": "Banana"},
        {"name": "Cherry", "priority": -1},
    ])
    sock = connect(server.login("alice")["access_token"])
    verdicts = [("pass", None), ("fail", "soft spot on the lid"), ("fail", None), ("pass", None)]
    for task, (outcome, note) in zip(tasks, verdicts):
        assert sock.task()["id"] == task["id"]
        assert sock.complete(task["id"], outcome, **({"note": note} if note else {}))["ok"]
    sock.task()  # Cherry: held
    two_hours_ago = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=123456) \
        - timedelta(hours=2)
    for task, minutes in ((tasks[0], 0), (tasks[1], 5)):
        done = two_hours_ago + timedelta(minutes=minutes)
        execute(server.database, "UPDATE tasks SET completed_at = %s, assigned_at = %s, "
                "created_at = %s WHERE id = %s", done, done - timedelta(seconds=95),
                done - timedelta(minutes=3), task["id"])
        # The history tells the same story.
        for kind, at in (("created", done - timedelta(minutes=3)),
                         ("assigned", done - timedelta(seconds=95)), ("completed", done)):
            execute(server.database, "UPDATE task_events SET at = %s WHERE task_id = %s "
                    "AND kind = %s", at, task["id"], kind)
    execute(server.database, "UPDATE tasks SET reasons = %s WHERE id = %s",
            json.dumps(["bruised", "label_missing"]), tasks[1]["id"])
    sock.disconnect()
    return alice, [t["id"] for t in tasks]


def test_results_filters_drawer_search_and_the_chart_from_history(server, connect, open_page):
    alice, (apple1, apple2, pear, banana, cherry) = floor(server, connect)
    server.create_user("sue", role="supervisor")
    board = login(open_page(), server, "sue", lands_on="/supervisor")

    # The chart counts the completions made before the page opened.
    expect(board.locator("#chart")).to_have_attribute("data-total", "4")
    see(board, "#chart-note", "4 completed (2 pass, 2 fail or other)", contains=True)
    assert board.locator("#chart .chart-bar-fail").count() >= 1

    # Results: newest completion first, with outcome, reasons, note, reviewer, handling time.
    results_are(board, [banana, pear, apple2, apple1])
    row = result_row(apple2)
    see(board, f"{row} td:nth-child(4)", "fail")
    see(board, f"{row} td.reasons", "bruisedlabel_missing")
    see(board, f"{row} td.note", "soft spot on the lid")
    see(board, f"{row} td.result-reviewer", "alice")
    see(board, f"{row} td.handled", "1:35")
    see(board, f"{result_row(apple1)} td:nth-child(4)", "pass")
    see(board, "#results-summary", "4 completed")
    board.evaluate("window.scrollTo(0, document.querySelector('#results-card').offsetTop - 70)")
    screenshot(board, "board-results")

    # Filters narrow it, and combine.
    board.select_option("#results-outcome", "fail")
    results_are(board, [pear, apple2])
    board.select_option("#results-queue", "fruit")
    results_are(board, [pear, apple2])
    board.select_option("#results-outcome", "pass")
    results_are(board, [])
    see(board, "#results-empty", "No completed tasks match.")
    board.select_option("#results-outcome", "")
    board.select_option("#results-queue", "")
    board.select_option("#results-range", "1")  # the last hour: not the two of two hours ago
    results_are(board, [banana, pear])
    board.select_option("#results-range", "24")
    board.select_option("#results-reviewer", label="alice")
    results_are(board, [banana, pear, apple2, apple1])
    server.create_user("bob")
    board.reload()
    expect(board.locator("#results-reviewer option", has_text="bob")).to_have_count(1)
    board.select_option("#results-reviewer", label="bob")
    results_are(board, [])
    board.select_option("#results-reviewer", "")
    # A custom window: between 3 and 1 hours ago.
    board.select_option("#results-range", "custom")
    local = board.evaluate("""() => { const f = (d) => new Date(d - d.getTimezoneOffset() * 60000)
        .toISOString().slice(0, 19); const now = new Date();
        return [f(new Date(now - 3 * 3600000)), f(new Date(now - 3600000))]; }""")
    board.fill("#results-from", local[0])
    board.fill("#results-to", local[1])
    board.click("#results-refresh")
    results_are(board, [apple2, apple1])

    # The drawer: fields, payload, verdict and history.
    board.locator(f"{result_row(apple2)} td.name .task-link").click()
    drawer = board.locator("#drawer")
    expect(drawer).to_be_visible()
    see(board, "#drawer-title", f"Task #{apple2} · Apple crate 2")
    see(board, '#drawer dd[data-field="queue"]', "fruit")
    see(board, ".drawer-note", "soft spot on the lid")
    see(board, ".drawer-reasons", "Reasons: bruisedlabel_missing")
    see(board, ".drawer-payload", "skuA-2")
    expect(board.locator("#drawer-events li")).to_have_count(3)
    kinds = board.locator("#drawer-events li").evaluate_all("l => l.map(i => i.dataset.kind)")
    assert kinds == [e["kind"] for e in server.request(
        "GET", f"/tasks/{apple2}/history", server.admin_token, expect=200).json()["events"]]
    assert kinds == ["created", "assigned", "completed"]
    see(board, '#drawer-events li[data-kind="completed"]', "reviewer alice", contains=True)
    assert "null" not in board.locator("#drawer-body").inner_text()
    screenshot(board, "board-drawer")
    board.keyboard.press("Escape")
    expect(drawer).to_be_hidden()

    # Search: by external_id, by the start of a name, by number; a miss says so.
    board.fill("#search", "ext-a1")
    board.press("#search", "Enter")
    hits = board.locator("#search-results .search-hit")
    expect(hits).to_have_count(1)
    assert hits.first.get_attribute("data-task") == str(apple1)
    board.fill("#search", "Apple crate")
    board.press("#search", "Enter")
    expect(hits).to_have_count(2)
    assert sorted(int(i) for i in hits.evaluate_all("h => h.map(x => x.dataset.task)")) == \
        [apple1, apple2]
    board.fill("#search", "Nothing like it")
    board.press("#search", "Enter")
    see(board, "#search-results", "No task has the external_id", contains=True)
    board.fill("#search", f"#{cherry}")
    board.press("#search", "Enter")
    expect(hits).to_have_count(1)
    hits.first.click()
    # The drawer's actions on a live task: reprioritise it, then release it.
    see(board, "#drawer-title", f"Task #{cherry} · Cherry")
    see(board, '#drawer dd[data-field="status"]', re.compile("assigned|pending"))
    board.fill("#drawer-priority", "4")
    board.click("#drawer-set-priority")
    see(board, ".toast-ok:last-child", f"Task #{cherry} now has priority 4.", contains=True,
        timeout=15000)
    assert server.task(cherry)["priority"] == 4
    see(board, '#drawer dd[data-field="priority"]', "4")
    expect(board.locator('#drawer-events li[data-kind="updated"]')).to_have_count(1)

    # A task in the task list opens the drawer too.
    board.locator("#drawer-close").click()
    board.select_option("#tasks-status", "completed")
    board.locator(f'#tasks tbody .task-link[data-open-task="{banana}"]').first.click()
    see(board, "#drawer-title", f"Task #{banana} · Banana")
    see(board, '#drawer dd[data-field="status"]', "completed")


def test_people_created_given_a_skill_reset_paused_deactivated_from_the_board(server,
                                                                             open_page):
    server.request("POST", "/queues", server.admin_token, expect=201, json={"name": "fruit"})
    server.create_user("sue", role="supervisor")
    board = login(open_page(), server, "sue", lands_on="/supervisor")
    people = board.locator("#people tbody")
    expect(people.locator('tr[data-person="sue"]')).to_have_count(1)

    # A reviewer is created on the board; the skills editor opens on it.
    board.fill("#person-username", "carol")
    board.fill("#person-password", "carol-Password-1")
    board.click("#person-create")
    see(board, ".toast-ok", "carol was created", contains=True)
    expect(people.locator('tr[data-person="carol"]')).to_have_count(1)
    expect(board.locator("#skills-editor")).to_be_visible()
    see(board, "#skills-title", "Skills of carol")
    board.fill('#skills-levels input[data-queue="fruit"]', "3")
    board.click("#skills-save")
    see(board, ".toast-ok:last-child", "carol's skills: fruit 3, default 1.", contains=True)
    carol = [u for u in server.request("GET", "/users", server.admin_token, expect=200)
             .json()["users"] if u["username"] == "carol"]
    assert [(u["role"], u["active"], u["skills"]) for u in carol] == \
        [("reviewer", True, {"default": 1, "fruit": 3})]
    carol_id = carol[0]["id"]
    expect(board.locator('#people tr[data-person="carol"] td.person-skills')) \
        .to_contain_text("fruit")
    server.login("carol", "carol-Password-1")

    # Refusals are shown, not swallowed: the same name twice, a weak password.
    board.fill("#person-username", "carol")
    board.fill("#person-password", "carol-Password-1")
    board.click("#person-create")
    see(board, "#people-error", "409", contains=True)
    see(board, ".toast-error:last-child", "carol was not created", contains=True)

    # Reset the password: the old one stops working, the new one logs in.
    row = board.locator('#people tr[data-person="carol"]')
    row.get_by_role("button", name="Password").click()
    see(board, "#password-title", "New password for carol:")
    board.fill("#password-new", "short")
    board.click("#password-save")
    see(board, "#people-error", "password", contains=True)
    board.fill("#password-new", "carol-Newpass-22")
    board.click("#password-save")
    see(board, ".toast-ok:last-child", "carol's password was reset", contains=True)
    expect(board.locator("#password-form")).to_be_hidden()
    assert server.request("POST", "/login", json={"username": "carol",
                          "password": "carol-Password-1"}).status_code == 401
    server.login("carol", "carol-Newpass-22")

    # Pause and resume (PUT /availability with user_id).
    row.get_by_role("button", name="Pause").click()
    see(board, ".toast-ok:last-child", "carol is paused.", contains=True)
    assert _user(server, carol_id)["available"] is False
    row.get_by_role("button", name="Resume").click()
    see(board, ".toast-ok:last-child", "carol is available again.", contains=True)
    assert _user(server, carol_id)["available"] is True

    board.set_viewport_size(PHONE)
    board.evaluate("document.querySelector('#toasts').replaceChildren()")
    board.evaluate("window.scrollTo(0, document.querySelector('#people-card').offsetTop - 60)")
    assert fits_the_width(board)
    screenshot(board, "board-people-phone")
    board.set_viewport_size({"width": 1280, "height": 800})

    # Deactivate (asks first), then bring back.
    row.get_by_role("button", name="Deactivate").click()
    expect(row.get_by_role("button", name="Sure?")).to_have_count(1)
    row.get_by_role("button", name="Sure?").click()
    see(board, ".toast-ok:last-child", "carol is deactivated.", contains=True)
    assert _user(server, carol_id)["active"] is False
    expect(row).to_have_attribute("data-active", "false")
    row.get_by_role("button", name="Reactivate").click()
    see(board, ".toast-ok:last-child", "carol is active again.", contains=True)
    assert _user(server, carol_id)["active"] is True


def _user(server, user_id: int) -> dict:
    return next(u for u in server.request("GET", "/users", server.admin_token, expect=200)
                .json()["users"] if u["id"] == user_id)


def test_review_form_editor_previews_and_saves_or_shows_the_refusal(server, open_page):
    server.create_user("sue", role="supervisor")
    board = login(open_page(), server, "sue", lands_on="/supervisor")
    board.locator('#queue-tiles li[data-queue="default"] .queue-form-edit').click()
    editor = board.locator("#form-editor")
    expect(editor).to_be_visible()
    see(board, "#form-editor-title", "Review form of default")
    board.click("#form-add-display")
    board.fill('#form-display .form-row input[data-key="field"]', "photo")
    board.select_option('#form-display .form-row select', "image")
    board.click("#form-add-check")
    board.fill('#form-checklist .form-row input[data-key="id"]', "label")
    board.fill('#form-checklist .form-row input[data-key="label"]', "Label readable")
    board.click("#form-add-reason")
    board.fill('#form-reasons .form-row input[data-key="code"]', "blurry")
    board.fill('#form-reasons .form-row input[data-key="label"]', "Photo is blurry")
    board.check("#form-note-required")
    # The preview is what the reviewer gets.
    see(board, "#form-preview .preview-display", "photo shown as image")
    see(board, "#form-preview .preview-checklist", "Label readable")
    see(board, "#form-preview .preview-reasons", "1 Photo is blurry blurry")
    see(board, "#form-preview", "A fail needs a note.", contains=True)
    board.click("#form-save")
    see(board, ".toast-ok:last-child", "The review form of default is saved.", contains=True)
    assert _form(server, "default") == {
        "display": [{"field": "photo", "as": "image"}],
        "checklist": [{"id": "label", "label": "Label readable"}],
        "fail_reasons": [{"code": "blurry", "label": "Photo is blurry"}],
        "note_required_on_fail": True}

    # Opened again, the editor shows the form the server has.
    board.click("#form-close")
    expect(editor).to_be_hidden()
    board.locator('#queue-tiles li[data-queue="default"] .queue-form-edit').click()
    expect(board.locator('#form-reasons .form-row input[data-key="code"]')).to_have_value("blurry")
    expect(board.locator('#form-display .form-row select')).to_have_value("image")
    expect(board.locator("#form-note-required")).to_be_checked()

    # A refusal (a reason without a code) is the server's message, on screen; nothing changes.
    board.fill('#form-reasons .form-row input[data-key="code"]', "")
    board.click("#form-save")
    see(board, "#form-error", re.compile(r"Not saved: .+\(422 invalid_form\)"))
    assert _form(server, "default")["fail_reasons"] == [{"code": "blurry",
                                                        "label": "Photo is blurry"}]
    # Removing the form: the queue has none.
    board.click("#form-clear")
    see(board, ".toast-ok:last-child", "default has no review form now.", contains=True)
    assert _form(server, "default") is None
    expect(board.locator("#form-reasons .form-row")).to_have_count(0)


def _form(server, queue: str):
    return next(q for q in server.request("GET", "/queues", server.admin_token, expect=200)
                .json()["queues"] if q["name"] == queue)["form"]


def test_review_form_editor_keeps_rows_whose_text_is_a_display_kind(server, open_page):
    """A payload field named "image" shown as an image (or a reason coded and
    labelled "link") is typed text, not an empty row: the editor saves it."""
    server.create_user("sue", role="supervisor")
    board = login(open_page(), server, "sue", lands_on="/supervisor")
    board.locator('#queue-tiles li[data-queue="default"] .queue-form-edit').click()
    expect(board.locator("#form-editor")).to_be_visible()
    for field, kind in (("image", "image"), ("link", "link"), ("text", "json")):
        board.click("#form-add-display")
        row = board.locator("#form-display .form-row").last
        row.locator('input[data-key="field"]').fill(field)
        row.locator("select").select_option(kind)
    board.click("#form-add-display")  # left empty: not sent
    board.click("#form-add-check")
    board.fill('#form-checklist .form-row input[data-key="id"]', "text")
    board.fill('#form-checklist .form-row input[data-key="label"]', "text")
    board.click("#form-add-reason")
    board.fill('#form-reasons .form-row input[data-key="code"]', "link")
    board.fill('#form-reasons .form-row input[data-key="label"]', "link")
    see(board, "#form-preview .preview-display", "image shown as image", contains=True)
    board.click("#form-save")
    see(board, ".toast-ok:last-child", "The review form of default is saved.", contains=True)
    assert _form(server, "default") == {
        "display": [{"field": "image", "as": "image"}, {"field": "link", "as": "link"},
                    {"field": "text", "as": "json"}],
        "checklist": [{"id": "text", "label": "text"}],
        "fail_reasons": [{"code": "link", "label": "link"}],
        "note_required_on_fail": False}


def test_people_roles_offered_follow_the_rules_admin_any_supervisor_reviewers(server,
                                                                              open_page):
    """An admin (who manages supervisors and admins) may create any role from
    the board; a supervisor is offered only what it may create: reviewers."""
    board = login(open_page(), server, ADMIN[0], ADMIN[1], lands_on="/supervisor")
    expect(board.locator("#person-role option")).to_have_text(
        ["Reviewer", "Supervisor", "Admin"])
    board.fill("#person-username", "dana")
    board.fill("#person-password", "dana-Password-1")
    board.select_option("#person-role", "admin")
    board.click("#person-create")
    see(board, ".toast-ok", "dana was created.", contains=True)
    expect(board.locator('#people tr[data-person="dana"] td').nth(1)).to_have_text("admin")
    assert [u["role"] for u in server.request("GET", "/users", server.admin_token, expect=200)
            .json()["users"] if u["username"] == "dana"] == ["admin"]

    server.create_user("sue", role="supervisor")
    board = login(open_page(), server, "sue", lands_on="/supervisor")
    expect(board.locator("#person-role option")).to_have_text(["Reviewer"])


def test_results_pages_shown_stay_when_the_floor_completes_more(server, connect, open_page):
    """Results past the first page ("Show more") stay on screen when someone
    completes a task: the new one goes on top; a filter change reads afresh."""
    server.request("POST", "/users", server.admin_token, expect=201, json={
        "username": "alice", "password": PASSWORD})
    token = server.login("alice")["access_token"]
    tasks = server.add_tasks([{"name": f"Crate {n}"} for n in range(56)])
    for task in tasks[:55]:
        held = server.request("PUT", "/availability", token, expect=200,
                              json={"availability": 1}).json()["task"]
        assert held["id"] == task["id"]
        server.request("POST", "/complete_task", token, expect=200,
                       json={"task_id": held["id"], "outcome": "pass"})
    # Newest completion first, as the server orders them (completed_at, then id).
    done = [t["id"] for t in server.request(
        "GET", "/tasks?status=completed&order_by=-completed_at&limit=500", server.admin_token,
        expect=200).json()["tasks"]]
    assert sorted(done) == sorted(t["id"] for t in tasks[:55])
    server.create_user("sue", role="supervisor")
    board = login(open_page(), server, "sue", lands_on="/supervisor")
    results_are(board, done[:50])
    board.click("#results-more")
    results_are(board, done)
    see(board, "#results-summary", "55 completed")

    sock = connect(token)
    last = sock.task()
    assert sock.complete(last["id"], "fail")["ok"]
    results_are(board, [last["id"]] + done)
    see(board, "#results-summary", "56 completed")
    # A filter is a new reading: its first page only.
    board.select_option("#results-outcome", "pass")
    results_are(board, done[:50])  # the fail is not a pass


def test_review_form_editor_takes_no_rows_before_the_form_is_read(server, open_page):
    """The editor reads the queue's form (GET /queues) before it takes edits:
    a row added meanwhile would be replaced by the form read."""
    server.create_user("sue", role="supervisor")
    board = login(open_page(), server, "sue", lands_on="/supervisor")
    expect(board.locator('#queue-tiles li[data-queue="default"]')).to_have_count(1)
    released = []

    def slow(route):
        while not released:
            board.wait_for_timeout(50)
        route.continue_()
    board.route("**/queues", slow)
    board.locator('#queue-tiles li[data-queue="default"] .queue-form-edit').click()
    expect(board.locator("#form-editor")).to_be_visible()
    expect(board.locator("#form-add-display")).to_be_disabled()
    expect(board.locator("#form-save")).to_be_disabled()
    released.append(True)
    board.click("#form-add-display")  # waits until the form is read
    board.fill('#form-display .form-row input[data-key="field"]', "photo")
    board.click("#form-save")
    see(board, ".toast-ok:last-child", "The review form of default is saved.", contains=True)
    assert _form(server, "default")["display"] == [{"field": "photo", "as": "text"}]
