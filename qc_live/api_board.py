"""GET /board: the same snapshot the /board namespace pushes."""
from flask import Blueprint, jsonify

from . import state
from .api import api
from .auth import role_required
from .board import snapshot
from .extensions import db
from .models import Role
from .schemas.answers import Board

bp = Blueprint("board", __name__)


@bp.get("/board")
@role_required(Role.SUPERVISOR)
@api("The board snapshot", "a supervisor",
     answers={200: (Board, "the same snapshot /board pushes")}, errors=(401, 403))
def get_board():
    return jsonify(snapshot(db.session, state.config()))
