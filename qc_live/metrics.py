"""Prometheus metrics at GET /metrics, with the official `prometheus_client`.

Two kinds of figures:

- This process's counters and histogram, counted as things happen: the socket
  and REST adapters, `notify.push` and `database.run_write` call the small
  functions below. Completions, the time from a completion's arrival to the
  push of the reviewer's next task, claims, tasks taken back, database errors,
  message-queue errors.
- The floor's gauges, read from the database at each scrape (`FloorCollector`):
  sockets online by namespace, reviewers online and free, pending and assigned
  tasks, the oldest pending task's age, live server processes. Every process
  answers the same floor figures, whichever one is scraped.

Several processes: scrape every one (each serves its own counters; sum them in
PromQL). Processes on one host may instead share PROMETHEUS_MULTIPROC_DIR:
prometheus_client then keeps the counters in files there, and any process
serves the sum over all of them (its MultiProcessCollector). The variable must
be set before the process starts (prometheus_client reads it on import) and
the directory emptied before the group starts (docs/deploy.md).
"""
import hmac
import logging
import time

import prometheus_client
import sqlalchemy as sa
from flask import Blueprint, Response, request
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector

from .api import Media, api
from .board import NAMESPACE as BOARD_NAMESPACE
from . import state
from .clock import ago, utcnow
from .errors import Unauthorized
from .extensions import db
from .models import (Connection, Role, ServerProcess, Task, TaskStatus, User,
                     WebhookDelivery)
from .presence import REVIEWER_NAMESPACE, live_socket_exists

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)

# Counters' *_created series (start times) only double what a scrape carries.
prometheus_client.disable_created_metrics()

# This process's own figures (in multi-process mode prometheus_client also
# writes them to PROMETHEUS_MULTIPROC_DIR, and the scrape reads the files).
LOCAL = CollectorRegistry()


class _Instruments:
    """The counters and the histogram. Made by `init_app`, after the
    configuration was checked: in multi-process mode making them opens files."""

    def __init__(self):
        self.completions = Counter(
            "qc_completions", "Tasks completed, by route (socket: task-complete, rest: "
            "POST /complete_task) and outcome (pass, fail, none)", ["route", "outcome"],
            registry=LOCAL)
        self.next_task_seconds = Histogram(
            "qc_complete_to_next_seconds", "From a completion's arrival to the emit of "
            "the reviewer's next task-assigned (completions that had a next task)",
            ["route"], registry=LOCAL,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.claims = Counter(
            "qc_claims", "Tasks handed to a reviewer: each new task-assigned pushed (a "
            "task shown again to a reconnecting socket is not one)", registry=LOCAL)
        self.taken_back = Counter(
            "qc_tasks_taken_back", "Tasks taken back from their reviewer, by reason: "
            "unacknowledged (an offer no socket acknowledged in time), abandoned (grace "
            "ran out), released, cancelled, expired", ["reason"], registry=LOCAL)
        self.database_errors = Counter(
            "qc_database_errors", "Write transactions retried (deadlock, lock wait "
            "timeout, SQLite busy) or refused because the database was unavailable",
            ["kind"], registry=LOCAL)
        self.queue_errors = Counter(
            "qc_message_queue_errors", "Failed message-queue (Redis) attempts "
            "python-socketio reported, by operation: publish (it retries once) or listen",
            ["operation"], registry=LOCAL)
        self.webhook_deliveries = Counter(
            "qc_webhook_deliveries", "Webhook delivery attempts this process made, by "
            "result: delivered (a 2xx), retried (to be tried again after a back-off), "
            "failed (retries over)", ["result"], registry=LOCAL)
        # Series that exist from the start, at 0, so that rate() and alerts see them.
        for route in ("socket", "rest"):
            self.next_task_seconds.labels(route)
            for outcome in ("pass", "fail", "none"):
                self.completions.labels(route, outcome)
        for reason in ("unacknowledged", "abandoned", "released", "cancelled", "expired"):
            self.taken_back.labels(reason)
        for kind in ("retried", "unavailable"):
            self.database_errors.labels(kind)
        for operation in ("publish", "listen"):
            self.queue_errors.labels(operation)
        for result in WEBHOOK_RESULTS.values():
            self.webhook_deliveries.labels(result)


# None until init_app: code run without an app (scripts) counts nothing.
_made: _Instruments | None = None

# next task id -> (route, when its completion arrived), until the task's push.
_awaiting_push: dict[int, tuple[str, float]] = {}
_MAX_AWAITING = 10_000


def clock() -> float:
    return time.perf_counter()


def completed(route: str, outcome: str | None, result, started: float) -> None:
    """A completion went through (`result`: dispatch.complete's Outcome)."""
    if _made is None:
        return
    _made.completions.labels(route, outcome or "none").inc()
    following = result.value.get("next_task")
    if following is not None:
        if len(_awaiting_push) >= _MAX_AWAITING:  # pushes that never happened
            for stale in list(_awaiting_push)[:_MAX_AWAITING // 2]:
                _awaiting_push.pop(stale, None)
        _awaiting_push[following["id"]] = (route, started)


def pushed(notice) -> None:
    """notify.push emitted this notice."""
    from .notices import Assigned, Revoked  # notices is light, but imported late like the rest
    if _made is None:
        return
    if isinstance(notice, Assigned):
        if not notice.resent:
            _made.claims.inc()
        waiting = _awaiting_push.pop(notice.task["id"], None)
        if waiting is not None:
            route, started = waiting
            _made.next_task_seconds.labels(route).observe(clock() - started)
    elif isinstance(notice, Revoked):
        _made.taken_back.labels(notice.reason).inc()


# outbox.settle's status -> the counter's result.
WEBHOOK_RESULTS = {"delivered": "delivered", "pending": "retried", "failed": "failed"}


def webhook_attempt(status: str | None) -> None:
    """A delivery attempt was settled (`status`: outbox.settle's; None: its
    lease was lost meanwhile, not counted)."""
    if _made is not None and status in WEBHOOK_RESULTS:
        _made.webhook_deliveries.labels(WEBHOOK_RESULTS[status]).inc()


def database_error(kind: str) -> None:
    if _made is not None:
        _made.database_errors.labels(kind).inc()


class _QueueErrors(logging.Handler):
    """python-socketio reports message-queue failures only by logging them
    (on "socketio.server": "Cannot publish to redis... retrying", "Cannot
    receive from redis...", "pubsub listen() exited unexpectedly")."""

    def __init__(self):
        super().__init__(logging.ERROR)

    def emit(self, record):
        try:
            message = record.getMessage().lower()
        except Exception:
            return
        if _made is None:
            return
        if "publish" in message:
            _made.queue_errors.labels("publish").inc()
        elif "receive" in message or "listen" in message:
            _made.queue_errors.labels("listen").inc()


_queue_errors = _QueueErrors()


def init_app(app) -> None:
    global _made
    if _made is None:
        _made = _Instruments()
    socketio_log = logging.getLogger("socketio")
    if _queue_errors not in socketio_log.handlers:
        socketio_log.addHandler(_queue_errors)


class FloorCollector:
    """The floor's gauges, read from the database when scraped."""

    def __init__(self, session, lease_seconds: float):
        self.session = session
        self.lease_seconds = lease_seconds

    def collect(self):
        up = GaugeMetricFamily("qc_database_up", "1 if this scrape read the floor's figures "
                               "from the database, 0 if the database did not answer")
        try:
            figures = floor(self.session, self.lease_seconds)
        except Exception as exc:
            log.warning("/metrics: could not read the floor's figures: %s", exc)
            figures = None
        finally:
            self.session.rollback()
        up.add_metric([], 0 if figures is None else 1)
        yield up
        if figures is None:
            return
        sockets = GaugeMetricFamily("qc_sockets_online", "Socket.IO connections on live "
                                    "server processes, by namespace", labels=["namespace"])
        for namespace, count in figures["sockets"].items():
            sockets.add_metric([namespace], count)
        yield sockets
        for name, text in (
                ("reviewers_online", "Reviewers with a live /reviewer socket"),
                ("reviewers_free", "Reviewers online, available and holding no task"),
                ("tasks_pending", "Tasks waiting for a reviewer (the queue's depth)"),
                ("tasks_assigned", "Tasks held by a reviewer"),
                ("oldest_pending_age_seconds", "Age of the oldest pending task (0 when none)"),
                ("webhooks_pending", "Webhook deliveries not yet made (the outbox's backlog)"),
                ("server_processes", "Server processes whose lease is fresh")):
            yield GaugeMetricFamily(f"qc_{name}", text, value=figures[name])


def floor(session, lease_seconds: float) -> dict:
    live_process = ServerProcess.heartbeat_at > ago(lease_seconds)
    sockets = {REVIEWER_NAMESPACE: 0, BOARD_NAMESPACE: 0}
    sockets.update(session.execute(
        sa.select(Connection.namespace, sa.func.count())
        .join(ServerProcess, ServerProcess.id == Connection.process_id)
        .where(live_process).group_by(Connection.namespace)).all())
    online = sa.and_(User.role == Role.REVIEWER.value, User.active.is_(True),
                     live_socket_exists(User.id, lease_seconds))
    holds = sa.exists().where(Task.holder_id == User.id)
    count = sa.select(sa.func.count()).select_from(User)
    tasks = dict(session.execute(
        sa.select(Task.status, sa.func.count())
        .where(Task.status.in_([TaskStatus.PENDING.value, TaskStatus.ASSIGNED.value]))
        .group_by(Task.status)).all())
    oldest = session.scalar(sa.select(sa.func.min(Task.created_at))
                            .where(Task.status == TaskStatus.PENDING.value))
    return {
        "sockets": sockets,
        "reviewers_online": session.scalar(count.where(online)),
        "reviewers_free": session.scalar(count.where(online, User.available.is_(True),
                                                     ~holds)),
        "tasks_pending": tasks.get(TaskStatus.PENDING.value, 0),
        "tasks_assigned": tasks.get(TaskStatus.ASSIGNED.value, 0),
        "oldest_pending_age_seconds":
            max(0.0, (utcnow() - oldest).total_seconds()) if oldest else 0.0,
        "webhooks_pending": session.scalar(sa.select(sa.func.count())
                                           .select_from(WebhookDelivery)
                                           .where(WebhookDelivery.status == "pending")),
        "server_processes": session.scalar(sa.select(sa.func.count())
                                           .select_from(ServerProcess).where(live_process)),
    }


@bp.get("/metrics")
@api("Prometheus metrics", "anyone; with QC_METRICS_TOKEN set, that token as a bearer",
     errors=(401,), public=True, answers={200: (Media("text/plain", {"type": "string"}),
     "Prometheus text format (OpenMetrics if asked for in Accept): this process's counters "
     "and the floor's gauges (docs/deploy.md)")})
def metrics():
    config = state.config()
    if config.metrics_token is not None:
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, f"Bearer {config.metrics_token}".encode()):
            raise Unauthorized("GET /metrics needs Authorization: Bearer <QC_METRICS_TOKEN>")
    registry = CollectorRegistry()
    if config.metrics_multiproc_dir:
        MultiProcessCollector(registry, path=config.metrics_multiproc_dir)
    else:
        registry.register(LOCAL)
        # The process's memory, CPU, file descriptors; not in multi-process
        # mode, where they would describe only the process that was asked.
        for collector in (prometheus_client.PROCESS_COLLECTOR,
                          prometheus_client.PLATFORM_COLLECTOR,
                          prometheus_client.GC_COLLECTOR):
            registry.register(collector)
    registry.register(FloorCollector(db.session, config.lease_seconds))
    encode, content_type = choose_encoder(request.headers.get("Accept"))
    return Response(encode(registry), content_type=content_type)
