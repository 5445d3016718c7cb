"""Request ids and the access log (QC_ACCESS_LOG).

Every HTTP answer carries `X-Request-ID`: the client's (or the proxy's) own if
it is sane (1 to 128 characters of A-Z a-z 0-9 . _ : -), else a new random
one. With the access log on, each request is one JSON line on the
`qc_live.access` logger (stdout), written once the answer has been sent:

    {"time", "method", "path", "query", "status", "duration_ms", "request_id",
     "remote_addr", "user_id", "websocket"}

- `query` only if there is one; the values of parameters other than the API's
  own filters and Engine.IO's `EIO`/`transport` are written as "-": Engine.IO's
  `sid` is a long-polling session's only credential, and anything else a client
  puts there may be a secret.
- `user_id`: the user of the access token (REST), or of the Socket.IO
  connection the request belongs to; null when nobody is known.
- A WebSocket is one line when it closes: status 101, `"websocket": true`, and
  the connection's lifetime as its duration.
- Socket.IO's long-polling requests (several a minute per polling client) are
  logged with QC_ACCESS_LOG=all only.

WSGI middleware, so that it sees Engine.IO's requests as well as Flask's.
"""
import json
import logging
import re
import sys
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qsl, quote

from flask import request
from flask_jwt_extended import get_jwt
from werkzeug.wsgi import ClosingIterator

log = logging.getLogger("qc_live.access")

REQUEST_ID = "qc.request_id"
# A dict in the environ, {"user_id": ...}: Flask-SocketIO hands a copy of the
# environ on to Flask and Engine.IO, and a copy still shares this dict.
NOTES = "qc.access"
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
SHOWN_PARAMETERS = frozenset({"status", "assignee_id", "priority", "order_by", "limit",
                              "cursor", "EIO", "transport"})
SOCKETIO_PATH = "/socket.io/"


def init_app(app, config, sessions) -> None:
    """Wrap the app (outermost, so Engine.IO's requests pass through too).
    `sessions(eio_sid)` gives the WSGI environ a Socket.IO connection began with."""
    app.wsgi_app = AccessLog(app.wsgi_app, config.access_log, sessions)
    app.after_request(_note_token_user)
    if config.access_log != "off" and not log.handlers:
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False  # a line of JSON, not the root logger's format


def identify(user_id: int) -> None:
    """The current request (or Socket.IO connection) is this user's."""
    notes = request.environ.get(NOTES)
    if notes is not None:
        notes["user_id"] = user_id


def _note_token_user(response):
    try:
        subject = get_jwt().get("sub")
    except RuntimeError:  # no token was checked for this request
        return response
    if isinstance(subject, str) and subject.isdigit():
        identify(int(subject))
    return response


def request_id(offered: str | None) -> str:
    if offered and _SANE_ID.fullmatch(offered):
        return offered
    return uuid.uuid4().hex


def shown_query(query: str) -> str:
    return "&".join(f"{quote(name, safe='')}="
                    f"{quote(value, safe=',') if name in SHOWN_PARAMETERS else '-'}"
                    for name, value in parse_qsl(query, keep_blank_values=True))


class AccessLog:
    def __init__(self, app, mode: str, sessions):
        self.app = app
        self.mode = mode
        self.sessions = sessions

    def __call__(self, environ, start_response):
        started, began = time.perf_counter(), time.time()
        rid = environ[REQUEST_ID] = request_id(environ.get("HTTP_X_REQUEST_ID"))
        notes = environ[NOTES] = {}
        status = []

        def respond(line, headers, exc_info=None):
            status[:] = [line]
            headers = [(k, v) for k, v in headers if k.lower() != "x-request-id"]
            headers.append(("X-Request-ID", rid))
            return start_response(line, headers, exc_info)

        websocket = environ.get("HTTP_UPGRADE", "").lower() == "websocket"
        socketio = environ.get("PATH_INFO", "").startswith(SOCKETIO_PATH)
        if self.mode == "off" or (socketio and not websocket and self.mode != "all"):
            return self.app(environ, respond)
        # The environ of the connection's first request: Socket.IO handlers
        # see that one, so that is where the user is noted (a later polling
        # request or the upgrade to WebSocket carries the connection's sid).
        session = self._session(environ) if socketio else None

        def write(code=None):
            code = code or (status[0].split(" ", 1)[0] if status else None)
            if websocket and code in (None, "200"):
                # The upgrade's 101 went out on the raw socket; what start_response
                # saw (nothing, or Engine.IO's 200 after the WebSocket ended) is not sent.
                code = "101"
            user = notes.get("user_id") or (session or {}).get(NOTES, {}).get("user_id")
            line = {
                "time": datetime.fromtimestamp(began, timezone.utc)
                .isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "method": environ.get("REQUEST_METHOD"),
                "path": environ.get("PATH_INFO"),
                "status": int(code) if code else None,
                "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                "request_id": rid,
                "remote_addr": environ.get("REMOTE_ADDR"),
                "user_id": user,
            }
            if environ.get("QUERY_STRING"):
                line["query"] = shown_query(environ["QUERY_STRING"])
            if websocket:
                line["websocket"] = True
            log.info(json.dumps(line, separators=(",", ":")))

        try:
            body = self.app(environ, respond)
        except BaseException:
            # The server answers 500 to what escapes the app; but in threading
            # mode every WebSocket ends this way (Engine.IO raises to close it).
            write(None if websocket else "500")
            raise
        return ClosingIterator(body, write)

    def _session(self, environ):
        sid = dict(parse_qsl(environ.get("QUERY_STRING", ""))).get("sid")
        return self.sessions(sid) if sid else None
