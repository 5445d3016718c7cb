"""GET /board: the same snapshot the /board namespace pushes."""
from flask import Blueprint, jsonify

from . import state
from .auth import role_required
from .board import snapshot
from .extensions import db
from .models import Role

bp = Blueprint("board", __name__)


@bp.get("/board")
@role_required(Role.SUPERVISOR)
def get_board():
    return jsonify(snapshot(db.session, state.config()))
