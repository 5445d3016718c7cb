"""The baseline for every benchmark: a bare Flask-SocketIO server, no database.

It runs on the same async mode as qc_live (QC_ASYNC_MODE, monkey-patched first,
as run.py does) and has the shape of qc_live's work loop, minus everything
qc_live does in between:

- namespace /reviewer; on connect it pushes `task-assigned` (or `idle`, if the
  client's auth says {"idle": true}), after the CONNECT packet;
- `task-complete` is answered by its ack ({"ok": true, "task_id", "task"}),
  then a `task-assigned` with the next (made-up) task is pushed to the socket,
  asking for the client's ack, exactly as qc_live's complete -> ack -> push;
- POST /push-all pushes one `task-assigned` to every connected /reviewer
  socket (the baseline of a bulk import reaching every screen);
- GET /healthz answers 200.

    QC_ASYNC_MODE=gevent PORT=5055 .venv/bin/python bench/echo_server.py

QC_BENCH_MAX_SIZE (default 20000) is eventlet's cap on simultaneous
connections (eventlet.wsgi.server's max_size, 1024 unless given).
QC_BENCH_NODELAY=1 sets TCP_NODELAY on the listening socket (bench/nodelay.py).
"""
import os
import sys

ASYNC_MODE = os.environ.get("QC_ASYNC_MODE", "eventlet")
if ASYNC_MODE == "eventlet":
    import warnings

    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)
    import eventlet

    eventlet.monkey_patch()
elif ASYNC_MODE == "gevent":
    from gevent import monkey

    monkey.patch_all()
elif ASYNC_MODE != "threading":
    sys.exit(f"QC_ASYNC_MODE must be eventlet, gevent or threading, not {ASYNC_MODE!r}")

import itertools  # noqa: E402
from datetime import datetime, timezone  # noqa: E402

from flask import Flask, jsonify, request  # noqa: E402
from flask_socketio import SocketIO  # noqa: E402

NS = "/reviewer"
app = Flask(__name__)
# The same Socket.IO options as qc_live's create_app.
socketio = SocketIO(app, async_mode=ASYNC_MODE, max_http_buffer_size=1_000_000,
                    logger=False, engineio_logger=False)
_ids = itertools.count(1)
_sockets = set()


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _task(task_id: int, status: str = "assigned") -> dict:
    """A made-up task with the fields (and about the size) of qc_live's."""
    now = _now()
    return {"id": task_id, "external_id": f"bench-{task_id}", "name": f"Check lot {task_id}",
            "payload": {"sku": f"A-{task_id % 1000}", "lot": task_id}, "priority": 0,
            "status": status, "assignee_id": 1, "created_at": now, "assigned_at": now,
            "completed_at": now if status == "completed" else None, "deadline": None,
            "outcome": "pass" if status == "completed" else None, "note": None}


def _acknowledged(*_payload) -> None:
    """qc_live records the ack in the database here; the baseline does nothing."""


def _offer(sid: str) -> None:
    socketio.emit("task-assigned", {"task": _task(next(_ids))}, to=sid, namespace=NS,
                  callback=_acknowledged)


def _idle(sid: str) -> None:
    socketio.emit("idle", {"reason": "queue-empty"}, to=sid, namespace=NS)


@socketio.on("connect", namespace=NS)
def connect(auth=None):
    _sockets.add(request.sid)
    idle = isinstance(auth, dict) and auth.get("idle")
    socketio.start_background_task(_idle if idle else _offer, request.sid)


@socketio.on("disconnect", namespace=NS)
def disconnect(*_reason):
    _sockets.discard(request.sid)


@socketio.on("task-complete", namespace=NS)
def complete(data):
    task_id = data["task_id"]
    # Like qc_live's push_later: the ack goes out first, then the next task.
    socketio.start_background_task(_offer, request.sid)
    return {"ok": True, "task_id": task_id, "task": _task(task_id, "completed")}


@app.get("/healthz")
def healthz():
    return jsonify({"status": "ok", "sockets": len(_sockets)})


@app.post("/push-all")
def push_all():
    sids = list(_sockets)
    for sid in sids:
        _offer(sid)
    return jsonify({"pushed": len(sids)}), 201


def main() -> int:
    port = int(os.environ.get("PORT", "5055"))
    host = os.environ.get("HOST", "127.0.0.1")
    options = {"log_output": False}
    if ASYNC_MODE == "eventlet":
        options["max_size"] = int(os.environ.get("QC_BENCH_MAX_SIZE", "20000"))
    elif ASYNC_MODE == "threading":
        options["allow_unsafe_werkzeug"] = True
    if os.environ.get("QC_BENCH_NODELAY") == "1":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import nodelay
        nodelay.install(ASYNC_MODE)
    print(f"echo server on http://{host}:{port} ({ASYNC_MODE})", flush=True)
    socketio.run(app, host=host, port=port, **options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
