"""GET /healthz: 200 when the database answers, 503 when it does not."""
import sqlalchemy as sa
from flask import Blueprint, jsonify

from . import state
from .api import api
from .extensions import db
from .schemas.answers import Health, Unhealthy

bp = Blueprint("health", __name__)


@bp.get("/healthz")
@api("Health", "anyone", public=True, answers={
    200: (Health, "the database answers"), 503: (Unhealthy, "the database does not answer")})
def healthz():
    runtime = state.runtime()
    try:
        db.session.execute(sa.text("SELECT 1"))
        db.session.rollback()
    except Exception as exc:
        db.session.rollback()
        return jsonify({"status": "unavailable", "database": "unreachable",
                        "error": {"code": "unavailable",
                                  "message": f"database: {exc.__class__.__name__}"}}), 503
    return jsonify({"status": "ok", "database": "ok", "process": runtime.process_id})
