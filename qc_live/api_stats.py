"""Throughput figures over REST: GET /stats (the floor) and GET /users/<id>/stats."""
from datetime import datetime, timedelta

from flask import Blueprint, jsonify
from flask_jwt_extended import current_user

from . import state
from .api import api
from .auth import role_required
from .board import snapshot
from .errors import Forbidden, Invalid, NotFound
from .extensions import db
from .models import MAX_ID, Role, User
from .audits import reviewer_figures
from .clock import iso, utcnow
from .schemas.answers import Completions, FloorStats, ReviewerQualities, ReviewerStats
from .schemas.requests import CompletionsQuery
from .stats import completions, fail_reasons, reviewer_stats

bp = Blueprint("stats", __name__)
EPOCH = datetime(1970, 1, 1)


@bp.get("/stats")
@role_required(Role.SUPERVISOR)
@api("Queue and reviewer stats", "a supervisor", answers={200: (FloorStats, "the figures")},
     errors=(401, 403))
def floor_stats():
    """The board's queue figures and per-reviewer stats, without the live
    reviewer list: {"queue": {pending, assigned, by_priority,
    oldest_pending_age_s, completed_last_hour, median_handle_s},
    "reviewers": [... with fail_reasons], "fail_reasons": {queue: {code: n}},
    "at"}."""
    board = snapshot(db.session, state.config())
    stats = board["stats"]
    try:
        by_queue, by_reviewer = fail_reasons(db.session)
    finally:
        db.session.rollback()
    return jsonify({
        "queue": {**board["queue"], "completed_last_hour": stats["completed_last_hour"],
                  "median_handle_s": stats["median_handle_s"]},
        "reviewers": [{**r, "fail_reasons": by_reviewer.get(r["id"], {})}
                      for r in stats["reviewers"]],
        "fail_reasons": by_queue,
        "at": board["at"],
    })


@bp.get("/stats/completions")
@role_required(Role.SUPERVISOR)
@api("Completions per time bucket", "a supervisor", query=CompletionsQuery,
     answers={200: (Completions, "the buckets")}, errors=(401, 403),
     description="Completed tasks per bucket of bucket_s seconds over the last `hours` "
     "(the first bucket starts at or before now - hours, on a multiple of bucket_s; the last "
     "holds now), with passes and fails; from the tasks' completed_at, so the history "
     "before anyone looked is there. hours * 3600 / bucket_s at most 1,440 (422 "
     "too_many_buckets); the answer has one bucket more when the window does not start on "
     "a boundary.")
def completion_buckets(query: CompletionsQuery):
    now = utcnow()
    width = query.bucket_s
    epoch_s = int((now - EPOCH).total_seconds())
    since = EPOCH + timedelta(seconds=(epoch_s - query.hours * 3600) // width * width)
    buckets = completions(db.session, since, now, width)
    return jsonify({"hours": query.hours, "bucket_s": width, "at": iso(now),
                    "buckets": [{**b, "start": iso(b["start"])} for b in buckets]})


@bp.get("/stats/reviewers")
@role_required(Role.SUPERVISOR)
@api("Reviewers' agreement and gold accuracy", "a supervisor",
     answers={200: (ReviewerQualities, "every active reviewer, by username")},
     errors=(401, 403),
     description="Per reviewer: completed, audits of their work (agreed, disputed, open "
     "disputes), agreement_rate, gold accuracy, the current audit probability and the last 7 "
     "days. The sampling rule: docs/api.md, Second reviews and gold tasks.")
def reviewers_quality():
    now = utcnow()
    return jsonify({"reviewers": reviewer_figures(db.session, now), "at": iso(now)})


@bp.get("/users/<int:user_id>/stats")
@role_required(Role.REVIEWER)
@api("One reviewer's stats", "a supervisor; a reviewer for itself",
     answers={200: (ReviewerStats, "the reviewer's figures")}, errors=(401, 403, 404, 422))
def user_stats(user_id: int):
    """One reviewer's stats: supervisors for anyone, a reviewer for itself."""
    if Role(current_user.role).rank < Role.SUPERVISOR.rank and user_id != current_user.id:
        raise Forbidden("reviewers see their own stats only")
    user = db.session.get(User, user_id) if user_id <= MAX_ID else None
    if user is None:
        raise NotFound(f"user {user_id} does not exist", code="user_not_found")
    if user.role != Role.REVIEWER.value:
        raise Invalid(f"user {user_id} is not a reviewer", code="not_a_reviewer")
    rows = reviewer_stats(db.session, user_id, with_reasons=True)
    db.session.rollback()
    return jsonify(rows[0])
