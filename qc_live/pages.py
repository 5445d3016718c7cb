"""The browser pages: login (/), the reviewer's page (/reviewer) and the
supervisors' board (/supervisor; /board is the JSON snapshot), plus the
official Socket.IO client they load from /vendor.

The pages are static HTML and plain JS modules (static/js); everything they
show comes over the same REST and Socket.IO API as any other client. The
client library is the npm package `socket.io-client` (pinned in
package-lock.json, installed by `npm ci`), served from node_modules so the
pages never need a CDN.
"""
from flask import Blueprint, render_template, request, send_from_directory

from . import state
from .api import HTML, Media, api
from .config import PROJECT_ROOT
from .errors import NotFound

bp = Blueprint("pages", __name__)

CLIENT_DIST = PROJECT_ROOT / "node_modules" / "socket.io-client" / "dist"
VENDOR_FILES = frozenset({"socket.io.esm.min.js", "socket.io.esm.min.js.map",
                          "socket.io.min.js", "socket.io.min.js.map"})


@bp.get("/")
@api("Login page", "anyone", answers={200: (HTML, "an HTML page")}, public=True)
def login_page():
    return render_template("login.html")


@bp.get("/reviewer")
@api("Reviewer page", "anyone (the page logs in itself)", answers={200: (HTML, "an HTML page")},
     public=True)
def reviewer_page():
    # The page shows media only from these (and its own origin); the CSP below
    # enforces the same list if the page ever tried another.
    return render_template("reviewer.html", media_origins=" ".join(state.config().media_origins))


@bp.get("/supervisor")
@api("Board page", "anyone (the page logs in itself)", answers={200: (HTML, "an HTML page")},
     public=True)
def board_page():
    return render_template("board.html")


@bp.get("/vendor/<name>")
@api("The Socket.IO browser client", "anyone", errors=(404,), public=True,
     answers={200: (Media("text/javascript"), "JavaScript")})
def vendor(name: str):
    if name not in VENDOR_FILES:
        raise NotFound(f"no vendor file {name!r}")
    if not (CLIENT_DIST / name).is_file():
        raise NotFound("the Socket.IO browser client is not installed: run `npm ci` in the "
                       "project folder (make run and make test do it)",
                       code="client_library_missing")
    return send_from_directory(CLIENT_DIST, name)


@bp.after_request
def page_headers(response):
    """Task payloads are other people's data and may hold HTML: the pages only
    ever set text, and this policy forbids inline or foreign scripts anyway.
    Images and frames may also come from QC_MEDIA_ORIGINS (validated at start-up)."""
    host = request.host
    media = "".join(f" {origin}" for origin in state.config().media_origins)
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:{media}; "
        f"frame-src 'self'{media}; connect-src 'self' ws://{host} wss://{host}; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
