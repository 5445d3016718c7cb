"""The reviewer page with review forms (issue 15, item 2), in Debian's Chromium
against a real `run.py`: the item first (images fitted with zoom, pages in a
frame, text, JSON as nested lists), media only from QC_MEDIA_ORIGINS (two
loopback http.servers: one listed, one not), the checklist and fail reasons
by keyboard, a fail that lacks a reason or a note is not sent, the server's
`invalid_verdict` shown, and the page on a 390-px phone.

QC_DOCS_SCREENSHOTS=1 (`make screenshots`) writes docs/screenshots/
reviewer-form.png and reviewer-form-phone.png.
"""
import os
import re
import struct
import subprocess
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect

from live import ROOT
from test_pages_browser import (PHONE, browser, fits_the_width, login,  # noqa: F401
                                open_page, screenshot, see, see_connection, shows_task)
from test_queues_pages import new_queue, reviewer_with, watch_csp


def png(width: int, height: int) -> bytes:
    """A real PNG (a colour gradient), made with the standard library."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            rows += bytes((x * 255 // width, y * 255 // height, 160))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


SPEC_PAGE = b"<!doctype html><title>spec</title><h1 id='spec'>Spec sheet R-7</h1>"


class MediaHost:
    """A small http.server on a loopback port serving /photo.png and /spec.html,
    recording every path asked for."""

    def __init__(self):
        self.requests = []
        image = png(960, 600)
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                host.requests.append(self.path)
                kind, body = {"/photo.png": ("image/png", image),
                              "/spec.html": ("text/html", SPEC_PAGE)}.get(
                    self.path.split("?")[0], ("text/plain", b"missing"))
                self.send_response(200 if body != b"missing" else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def media():
    """Two hosts: `listed` goes into QC_MEDIA_ORIGINS, `other` does not."""
    listed, other = MediaHost(), MediaHost()
    yield listed, other
    listed.close()
    other.close()


REASONS = [{"code": "blurry", "label": "Photo blurry"},
           {"code": "label_missing", "label": "Label missing"},
           {"code": "dented", "label": "Dented"}]
CHECKLIST = [{"id": "label", "label": "Label readable"},
             {"id": "seal", "label": "Seal intact"}]


def inspection_form(**extra) -> dict:
    return {"display": [{"field": "photo", "as": "image"},
                        {"field": "thumb", "as": "image"},
                        {"field": "instructions", "as": "text"},
                        {"field": "measures", "as": "json"},
                        {"field": "spec", "as": "iframe"},
                        {"field": "ticket", "as": "link"},
                        {"field": "missing", "as": "image"},
                        {"field": "script", "as": "link"},
                        {"field": "not_there", "as": "text"}],
            "checklist": CHECKLIST, "fail_reasons": REASONS,
            "note_required_on_fail": False, **extra}


def inspection(listed, other, n: int, **extra) -> dict:
    return {"name": f"Inspect crate {n}", "queue": "crates", "payload": {
        "photo": f"{listed.origin}/photo.png?crate={n}",
        "thumb": f"{other.origin}/photo.png?crate={n}",
        "spec": f"{listed.origin}/spec.html",
        "instructions": "Check the label.\n  Then the seal <b>twice</b>.",
        "measures": {"weight_kg": 12.5, "sides": ["north", "south"],
                     "box": {"w": 40, "h": {"mm": 300}}},
        "ticket": "https://tickets.example.com/T-9",
        "missing": f"{listed.origin}/gone.png",
        "script": "javascript:window.__xss = 1",
        "line": "Press 4"}, **extra}


def field(name: str) -> str:
    return f'#item .item-field[data-field="{name}"]'


def image_loaded(page, selector: str) -> None:
    page.wait_for_function("s => { const i = document.querySelector(s); "
                           "return i && i.complete && i.naturalWidth > 0; }",
                           arg=selector, timeout=5000)


def test_the_item_from_a_listed_origin_and_a_placeholder_for_another(
        start_server, open_page, media):
    listed, other = media
    server = start_server(QC_MEDIA_ORIGINS=listed.origin)
    csp = server.request("GET", "/reviewer").headers["Content-Security-Policy"]
    assert f"img-src 'self' data: {listed.origin};" in csp
    assert f"frame-src 'self' {listed.origin};" in csp
    assert other.origin not in csp
    new_queue(server, "crates", form=inspection_form())
    reviewer_with(server, "alice", {"crates": 1})
    [task] = server.add_tasks(inspection(listed, other, 1))

    page = login(watch_csp(open_page()), server, "alice", lands_on="/reviewer")
    shows_task(page, task)
    expect(page.locator("main")).to_have_attribute("data-media-origins", listed.origin)
    # The image from the listed origin is on screen, fitted; the other one is a
    # placeholder that says why, and no request went to its host.
    image_loaded(page, field("photo") + " img")
    assert f"/photo.png?crate=1" in listed.requests
    see(page, field("thumb") + " .pv-blocked", f"not in QC_MEDIA_ORIGINS: {other.origin}",
        contains=True)
    assert page.locator(field("thumb") + " img").count() == 0
    # The page from the listed origin is in its frame.
    expect(page.frame_locator(field("spec") + " iframe").locator("#spec")).to_have_text(
        "Spec sheet R-7")
    # Text as text (line breaks kept, HTML not parsed), JSON as nested lists, a link.
    text = page.locator(field("instructions") + " .pv-textblock")
    expect(text).to_have_text("Check the label.\n  Then the seal <b>twice</b>.")
    assert text.evaluate("n => getComputedStyle(n).whiteSpace") == "pre-wrap"
    assert page.locator("#item b").count() == 0
    measures = page.locator(field("measures"))
    expect(measures.locator("ol.pv-list > li")).to_have_text(["north", "south"])
    expect(measures.locator("ul.pv-object ul.pv-object ul.pv-object > li")).to_have_text("mm 300")
    assert "{" not in measures.inner_text()
    expect(page.locator(field("ticket") + " a")).to_have_attribute(
        "href", "https://tickets.example.com/T-9")
    # A listed image that does not load, a javascript: "link", a field the payload lacks.
    see(page, field("missing") + " .pv-blocked", "it did not load", contains=True)
    assert "/gone.png" in listed.requests
    see(page, field("script") + " > span", "javascript:window.__xss = 1 (not an http(s) link)")
    assert page.locator(field("script") + " a").count() == 0
    see(page, field("not_there") + " > p", "Not in this task's payload.")
    # The rest of the payload under "More details".
    see(page, "#details-title", "More details")
    expect(page.locator("#payload tr th")).to_have_text(["line"])

    # Zoom: fitted to the box, then 100 % by a click, back with Z.
    figure = page.locator(field("photo") + " figure")
    img = figure.locator("img")
    fitted = img.bounding_box()["width"]
    assert fitted < 960
    figure.locator(".pv-zoom").click()
    expect(figure).to_have_class("pv-image zoomed")
    assert img.bounding_box()["width"] == 960
    page.keyboard.press("z")
    expect(figure).to_have_class("pv-image")
    assert img.bounding_box()["width"] == fitted
    expect(figure.locator(".pv-zoom")).to_have_attribute("aria-pressed", "false")

    assert page.evaluate("window.__csp") == []
    assert other.requests == []
    # The CSP itself refuses the other origin (were the page ever to try it).
    page.evaluate("u => { const i = new Image(); i.src = u; document.body.append(i); }",
                  f"{other.origin}/photo.png?probe")
    page.wait_for_function("() => window.__csp.length > 0", timeout=5000)
    assert page.evaluate("window.__csp") == [f"img-src {other.origin}/photo.png?probe"]
    assert other.requests == []
    page.evaluate("document.querySelectorAll('body > img').forEach(i => i.remove()); "
                  "document.activeElement.blur()")
    screenshot(page, "reviewer-form")


def test_a_fail_with_two_reasons_by_keyboard_and_one_without_is_not_sent(
        start_server, open_page, media):
    listed, other = media
    server = start_server(QC_MEDIA_ORIGINS=listed.origin)
    new_queue(server, "crates", form=inspection_form())
    reviewer_with(server, "alice", {"crates": 1})
    first, second = server.add_tasks([inspection(listed, other, 1, priority=1),
                                      inspection(listed, other, 2)])
    page = login(watch_csp(open_page()), server, "alice", lands_on="/reviewer")
    shows_task(page, first)
    expect(page.locator("#reasons .reason")).to_have_text(
        ["1Photo blurry", "2Label missing", "3Dented"])
    expect(page.locator("#checklist label")).to_have_text(["Label readable", "Seal intact"])

    # F with no reason picked: not sent; the picker asks for one.
    page.keyboard.press("f")
    see(page, "#decision-status", "Pick a fail reason first", contains=True)
    expect(page.locator("#reasons-box")).to_have_class("verdict-part needs-answer")
    expect(page.locator("#reasons .reason").first).to_be_focused()
    assert server.task(first["id"])["status"] == "assigned"
    shows_task(page, first)

    # 1 and 3 toggle two reasons (2 twice: on and off again), a checkbox, then F.
    for key in ("1", "2", "3", "2"):
        page.keyboard.press(key)
    expect(page.locator('#reasons .reason[aria-pressed="true"]')).to_have_text(
        ["1Photo blurry", "3Dented"])
    expect(page.locator("#reasons-box")).to_have_class("verdict-part")
    page.check('#checklist input[data-id="seal"]')
    page.keyboard.press("f")  # the checkbox has the focus: keys still decide
    shows_task(page, second)
    done = server.task(first["id"])
    assert (done["status"], done["outcome"]) == ("completed", "fail")
    assert done["reasons"] == ["blurry", "dented"]
    assert done["checklist"] == {"label": False, "seal": True}
    # A new task starts with nothing picked.
    expect(page.locator('#reasons .reason[aria-pressed="true"]')).to_have_count(0)
    expect(page.locator("#checklist input:checked")).to_have_count(0)

    # A pass sends the checklist and no reasons, even if one was picked.
    page.keyboard.press("2")
    page.check('#checklist input[data-id="label"]')
    page.keyboard.press("p")
    see(page, "#empty-title", "All done for now")
    passed = server.task(second["id"])
    assert (passed["outcome"], passed["reasons"]) == ("pass", None)
    assert passed["checklist"] == {"label": True, "seal": False}
    assert page.evaluate("window.__csp") == []


def test_a_note_required_on_fail_and_the_servers_refusal(start_server, open_page, media):
    listed, other = media
    server = start_server(QC_MEDIA_ORIGINS=listed.origin)
    new_queue(server, "crates", form=inspection_form(note_required_on_fail=True))
    reviewer_with(server, "alice", {"crates": 1})
    first, second = server.add_tasks([inspection(listed, other, 1, priority=1),
                                      inspection(listed, other, 2)])
    page = login(open_page(), server, "alice", lands_on="/reviewer")
    shows_task(page, first)
    see(page, "#note-hint", "(required on fail)")
    page.keyboard.press("3")
    page.keyboard.press("f")
    see(page, "#decision-status", "A fail needs a note", contains=True)
    expect(page.locator("#note")).to_be_focused()
    assert server.task(first["id"])["status"] == "assigned"
    page.keyboard.type("dent on the lid")  # typed into the note: not shortcuts
    page.keyboard.press("Escape")
    page.keyboard.press("f")
    shows_task(page, second)
    done = server.task(first["id"])
    assert (done["outcome"], done["reasons"], done["note"]) == ("fail", ["dented"],
                                                                "dent on the lid")

    # The form changes while a task is on screen: a reason the page still
    # offers is no longer in it. The server refuses; the page says so and keeps the task.
    server.request("PATCH", "/queues/crates", server.admin_token, expect=200,
                   json={"form": inspection_form(fail_reasons=REASONS[:2])})
    page.fill("#note", "dented again")
    page.keyboard.press("Escape")
    page.keyboard.press("3")
    page.keyboard.press("f")
    see(page, "#decision-status", "Not saved:", contains=True)
    shows_task(page, second)
    assert server.task(second["id"])["status"] == "assigned"
    expect(page.locator("#fail")).to_be_enabled()
    page.keyboard.press("3")
    page.keyboard.press("2")
    page.keyboard.press("f")
    see(page, "#empty-title", "All done for now")
    assert server.task(second["id"])["reasons"] == ["label_missing"]


def test_on_a_phone_the_item_comes_first_and_the_decision_bar_stays(
        start_server, open_page, media):
    listed, other = media
    server = start_server(QC_MEDIA_ORIGINS=listed.origin)
    new_queue(server, "crates", form=inspection_form())
    reviewer_with(server, "alice", {"crates": 1})
    [task] = server.add_tasks(inspection(listed, other, 1))
    page = login(open_page(PHONE), server, "alice", lands_on="/reviewer")
    shows_task(page, task)
    image_loaded(page, field("photo") + " img")
    expect(page.frame_locator(field("spec") + " iframe").locator("#spec")).to_have_text(
        "Spec sheet R-7")
    assert fits_the_width(page)
    expect(page.locator("#whoami")).to_be_visible()
    expect(page.locator("#whoami")).to_have_text("alice")
    photo = page.locator(field("photo")).bounding_box()
    assert photo["y"] < page.locator("#reasons-box").bounding_box()["y"]
    assert photo["width"] <= PHONE["width"]
    # Pass and Fail stay at the bottom of the screen wherever the page is scrolled.
    for scroll in (0, 10_000):
        page.evaluate(f"window.scrollTo(0, {scroll})")
        bar = page.locator("#decision-bar").bounding_box()
        assert bar["y"] + bar["height"] <= PHONE["height"] + 1
        assert bar["y"] > PHONE["height"] / 2
        expect(page.locator("#fail")).to_be_in_viewport()
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "reviewer-form-phone")
    page.locator('#reasons .reason[data-code="label_missing"]').click()
    page.locator("#fail").click()
    see(page, "#empty-title", "All done for now")
    assert server.task(task["id"])["reasons"] == ["label_missing"]
    # Connected is a green dot; trouble is spelled out, and the top bar still fits.
    expect(page.locator("#conn .conn-label")).to_be_hidden()
    page.context.set_offline(True)
    see_connection(page, re.compile("offline|reconnecting"))
    expect(page.locator("#conn .conn-label")).to_be_visible()
    expect(page.locator("#whoami")).to_be_visible()
    assert fits_the_width(page)
    page.context.set_offline(False)
    see_connection(page, "connected")


def test_without_a_form_nested_values_are_lists(server, open_page):
    server.create_user("bob")
    [task] = server.add_tasks({"name": "Check lot 7", "payload": {
        "sku": "A-7", "photo": "https://example.com/lots/7.jpg",
        "checks": ["label", "seal"], "dims": {"w": 10, "h": {"mm": 5}}, "empty": [],
        "html": {"x": '<i id="injected">x</i>'}}})
    page = login(open_page(), server, "bob", lands_on="/reviewer")
    shows_task(page, task)
    expect(page.locator("#item")).to_be_hidden()
    see(page, "#details-title", "Details")
    payload = page.locator("#payload")
    expect(payload.locator("tr th")).to_have_text(["sku", "photo", "checks", "dims", "empty",
                                                   "html"])
    expect(payload.locator("ol.pv-list > li")).to_have_text(["label", "seal"])
    expect(payload.locator("ul.pv-object > li")).to_have_text(
        ["w 10", "h mm 5", "mm 5", 'x <i id="injected">x</i>'])
    expect(payload.locator('a[href="https://example.com/lots/7.jpg"]')).to_have_count(1)
    assert payload.locator("img, #injected").count() == 0  # no form: no image is fetched
    see(page, "#payload", "(empty list)", contains=True)
    assert "{" not in payload.inner_text()


def test_a_bad_media_origin_stops_start_up(database, tmp_path):
    from qc_live.config import ConfigError, from_env
    base = {"QC_INSTANCE_PATH": str(tmp_path), "QC_SECRET_KEY": "x" * 40}
    assert from_env({**base, "QC_MEDIA_ORIGINS": " https://CDN.example.com:443 "
                     "http://127.0.0.1:8081/  https://cdn.example.com"}).media_origins == (
        "https://cdn.example.com", "http://127.0.0.1:8081")
    assert from_env(base).media_origins == ()
    for bad in ("cdn.example.com", "https://cdn.example.com/images", "https://*.example.com",
                "javascript:alert(1)", "https://cdn.example.com;", "'self'"):
        with pytest.raises(ConfigError, match="QC_MEDIA_ORIGINS"):
            from_env({**base, "QC_MEDIA_ORIGINS": bad})
    env = {**os.environ, "DATABASE_URL": database.url, "QC_INSTANCE_PATH": str(tmp_path),
           "QC_MEDIA_ORIGINS": "https://cdn.example.com/images"}
    result = subprocess.run([sys.executable, "run.py"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert ("qc_live: QC_MEDIA_ORIGINS: 'https://cdn.example.com/images' is not an origin"
            in result.stderr)
