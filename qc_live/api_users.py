"""REST for accounts: supervisors create reviewers, admins create anyone."""
import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify
from flask_jwt_extended import current_user
from sqlalchemy.exc import IntegrityError

from .auth import find_user, hash_password, role_required
from .database import run_write
from .errors import Conflict, Forbidden, Invalid
from .extensions import db
from .models import Role, Task, TaskStatus, User
from .presence import logged_in
from .validation import json_body, json_object, string

bp = Blueprint("users", __name__)

MIN_PASSWORD = 8


def may_manage(actor: User, role: Role) -> bool:
    """Admins manage everyone; supervisors manage reviewers."""
    actor_role = Role(actor.role)
    return actor_role == Role.ADMIN or (actor_role == Role.SUPERVISOR and role == Role.REVIEWER)


def create_user(session, username: str, password: str, role: Role) -> User:
    """Create an account (used by the API and the CLI). Conflict if the name is taken."""
    def work(session):
        if find_user(session, username) is not None:
            raise Conflict(f"username {username!r} is taken", code="username_taken")
        user = User(username=username, role=role.value, password_hash=hash_password(password))
        session.add(user)
        session.flush()
        return user
    try:
        return run_write(session, work)
    except IntegrityError:
        raise Conflict(f"username {username!r} is taken", code="username_taken") from None


def user_rows(session, config, user_id: int | None = None) -> list[dict]:
    """GET /users rows. `online` means what it means on the board: a socket now,
    or the grace period after the last one dropped (a reload is not a logout)."""
    held = sa.select(Task.id).where(Task.holder_id == User.id).limit(1).scalar_subquery()
    done = (sa.select(sa.func.count(Task.id))
            .where(Task.assignee_id == User.id, Task.status == TaskStatus.COMPLETED.value)
            .scalar_subquery())
    query = sa.select(User, held, done, logged_in(config.lease_seconds, config.grace_seconds)) \
        .order_by(User.id)
    if user_id is not None:
        query = query.where(User.id == user_id)
    return [{**user.public(), "active": user.active, "online": bool(online),
             "available": user.available, "task_id": task_id,
             "completed_count": count or 0}
            for user, task_id, count, online in session.execute(query)]


@bp.post("/users")
@role_required(Role.SUPERVISOR)
def post_user():
    data = json_object(json_body(), {"username", "password", "role"})
    username = string(data, "username", max_length=80).strip()
    password = string(data, "password", max_length=1024, allow_empty=True)
    role_name = string(data, "role", required=False, max_length=16) or Role.REVIEWER.value
    try:
        role = Role(role_name)
    except ValueError:
        raise Invalid("'role' must be reviewer, supervisor or admin", code="bad_role") from None
    if len(password) < MIN_PASSWORD:
        raise Invalid(f"'password' needs at least {MIN_PASSWORD} characters",
                      code="weak_password")
    if not may_manage(current_user, role):
        raise Forbidden(f"a {current_user.role} cannot create a {role.value}")
    user = create_user(db.session, username, password, role)
    cfg = current_app.extensions["qc_config"]
    return jsonify(user_rows(db.session, cfg, user.id)[0]), 201


@bp.get("/users")
@role_required(Role.SUPERVISOR)
def list_users():
    cfg = current_app.extensions["qc_config"]
    return jsonify({"users": user_rows(db.session, cfg)})
