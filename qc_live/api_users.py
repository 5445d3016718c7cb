"""REST for accounts: supervisors manage reviewers, admins manage anyone;
every user changes its own password."""
from flask import Blueprint, jsonify
from flask_jwt_extended import current_user
from werkzeug.security import check_password_hash

from . import state
from .accounts import (MIN_PASSWORD, _check_password, change_password, create_user,
                       may_manage, update_account, user_rows)
from .auth import issue_tokens, revoke_sessions, role_required
from .errors import BadRequest, Conflict, Forbidden, Invalid, NotFound
from .extensions import db
from .models import Role, User
from .validation import (ANY_TEXT, MAX_ID, boolean, json_body, json_object, no_nulls, string,
                         username_field)

bp = Blueprint("users", __name__)


@bp.post("/users")
@role_required(Role.SUPERVISOR)
def post_user():
    data = json_object(json_body(), {"username", "password", "role"})
    name = username_field(data)
    password = string(data, "password", max_length=1024, allow_empty=True, text=ANY_TEXT)
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
    user = create_user(db.session, name, password, role)
    return jsonify(user_rows(db.session, state.config(), user.id)[0]), 201


@bp.get("/users")
@role_required(Role.SUPERVISOR)
def list_users():
    return jsonify({"users": user_rows(db.session, state.config())})


# --- managing an account ---------------------------------------------------------

def _managed_user(user_id: int) -> User:
    """The target of a management call: 404 if unknown, 403 if the caller may
    not manage its role (supervisors manage reviewers only)."""
    user = db.session.get(User, user_id) if user_id <= MAX_ID else None
    if user is None:
        raise NotFound(f"user {user_id} does not exist", code="user_not_found")
    if not may_manage(current_user, Role(user.role)):
        raise Forbidden(f"a {current_user.role} cannot manage a {user.role}")
    return user


@bp.patch("/users/<int:user_id>")
@role_required(Role.SUPERVISOR)
def patch_user(user_id: int):
    """Rename, change role (admins), (de)activate, reset the password.

    Changing the role, resetting the password or deactivating signs the user
    out everywhere (auth.revoke_sessions): its tokens die, its sockets are
    disconnected and a held task goes back to the queue."""
    data = json_object(json_body(), {"username", "role", "active", "password"})
    if not data:
        raise BadRequest("nothing to change: give username, role, active or password",
                         code="empty_patch")
    no_nulls(data, data.keys())
    name = username_field(data, required=False)
    role = None
    if "role" in data:
        role_name = string(data, "role", max_length=16)
        try:
            role = Role(role_name)
        except ValueError:
            raise Invalid("'role' must be reviewer, supervisor or admin",
                          code="bad_role") from None
    active = boolean(data, "active", required=False)
    password = string(data, "password", required=False, max_length=1024, allow_empty=True,
                      text=ANY_TEXT)
    if password is not None:
        _check_password(password)
    target = _managed_user(user_id)
    if role is not None and current_user.role != Role.ADMIN.value:
        raise Forbidden("only admins change roles")
    if active is False and target.id == current_user.id:
        raise Conflict("you cannot deactivate yourself", code="cannot_deactivate_self")
    role_changes = role is not None and role.value != target.role
    update_account(db.session, target.id, username=name, role=role, password=password,
                   reactivate=active is True, deactivate=active is False)
    if active is False or role_changes or password is not None:
        revoke_sessions(db.session, target.id, current_user.id, deactivate=active is False)
    return jsonify(user_rows(db.session, state.config(), target.id)[0])


@bp.delete("/users/<int:user_id>")
@role_required(Role.SUPERVISOR)
def delete_user(user_id: int):
    """Deactivate: the account stays (history names it) but can no longer log
    in; its tokens die, its sockets are disconnected, a held task returns to
    the queue. PATCH {"active": true} brings it back."""
    target = _managed_user(user_id)
    if target.id == current_user.id:
        raise Conflict("you cannot deactivate yourself", code="cannot_deactivate_self")
    update_account(db.session, target.id, deactivate=True)  # the last-admin check
    revoke_sessions(db.session, target.id, current_user.id, deactivate=True)
    return "", 204


@bp.post("/users/<int:user_id>/sign-out")
@role_required(Role.SUPERVISOR)
def sign_out_user(user_id: int):
    """Force a user offline: tokens revoked, sockets disconnected, a held task
    back to the queue at once (no grace period)."""
    target = _managed_user(user_id)
    outcome = revoke_sessions(db.session, target.id, current_user.id)
    task = outcome.value["task"]
    return jsonify({"message": f"user {target.id} is signed out everywhere",
                    "user_id": target.id, "task": task})


@bp.post("/me/password")
@role_required(Role.REVIEWER)
def change_own_password():
    """Any user, for itself. Every token of the user dies (other devices must
    log in again) and its sockets are disconnected; the answer carries fresh
    tokens. A reviewer's task is kept if it reconnects within the grace period."""
    data = json_object(json_body(), {"current_password", "new_password"})
    current = string(data, "current_password", max_length=1024, allow_empty=True,
                     text=ANY_TEXT)
    new = _check_password(string(data, "new_password", max_length=1024, allow_empty=True,
                                 text=ANY_TEXT))
    if not check_password_hash(current_user.password_hash, current):
        raise Forbidden("the current password is wrong", code="wrong_password")
    user_id = current_user.id
    state.notifier().disconnect(change_password(db.session, user_id, new))
    user = db.session.get(User, user_id)
    return jsonify({"message": "password changed; every other session must log in again",
                    **issue_tokens(user)})
