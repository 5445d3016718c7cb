"""Throughput figures over REST: GET /stats (the floor) and GET /users/<id>/stats."""
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
from .schemas.answers import FloorStats, ReviewerQualities, ReviewerStats
from .stats import reviewer_stats

bp = Blueprint("stats", __name__)


@bp.get("/stats")
@role_required(Role.SUPERVISOR)
@api("Queue and reviewer stats", "a supervisor", answers={200: (FloorStats, "the figures")},
     errors=(401, 403))
def floor_stats():
    """The board's queue figures and per-reviewer stats, without the live
    reviewer list: {"queue": {pending, assigned, by_priority,
    oldest_pending_age_s, completed_last_hour, median_handle_s},
    "reviewers": [...], "at"}."""
    board = snapshot(db.session, state.config())
    stats = board["stats"]
    return jsonify({
        "queue": {**board["queue"], "completed_last_hour": stats["completed_last_hour"],
                  "median_handle_s": stats["median_handle_s"]},
        "reviewers": stats["reviewers"],
        "at": board["at"],
    })


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
    rows = reviewer_stats(db.session, user_id)
    db.session.rollback()
    return jsonify(rows[0])
