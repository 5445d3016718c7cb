"""REST for accounts: supervisors manage reviewers, admins manage anyone;
every user changes its own password."""
from flask import Blueprint, jsonify
from flask_jwt_extended import current_user
from werkzeug.security import check_password_hash

from . import routing, state
from .accounts import change_password, create_user, may_manage, update_account, user_rows
from .api import api
from .api_auth import revoke_sessions
from .auth import issue_tokens, role_required
from .errors import Conflict, Forbidden, Invalid, NotFound
from .extensions import db
from .models import MAX_ID, Role, User
from .schemas.answers import SignedOut, Tokens, Users
from .schemas.answers import User as UserRow
from .schemas.requests import NewUser, PasswordChange, UserChanges

bp = Blueprint("users", __name__)


@bp.post("/users")
@role_required(Role.SUPERVISOR)
@api("Create a user", "an admin; a supervisor for reviewers", body=NewUser,
     answers={201: (UserRow, "the new user")}, errors=(401, 403, 409),
     description="A reviewer's skills default to {\"default\": 1}.")
def post_user(body: NewUser):
    name, password, role = body.username, body.password, body.role
    if not may_manage(current_user, role):
        raise Forbidden(f"a {current_user.role} cannot create a {role.value}")
    skills = _checked_skills(body.skills, role)
    user = create_user(db.session, name, password, role)
    if skills is not None:
        routing.set_skills(db.session, user.id, skills)
    return jsonify(user_rows(db.session, state.config(), user.id)[0]), 201


@bp.get("/users")
@role_required(Role.SUPERVISOR)
@api("List users", "a supervisor", answers={200: (Users, "every account")}, errors=(401, 403))
def list_users():
    return jsonify({"users": user_rows(db.session, state.config())})


def _checked_skills(skills: dict | None, role: Role) -> dict | None:
    """The skills given, checked (422 unknown_queue, bad_level); only reviewers have them."""
    if skills is None:
        return None
    if role != Role.REVIEWER:
        raise Invalid("only reviewers have skills", code="not_a_reviewer")
    return routing.check_skills(db.session, skills)


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
@api("Change a user", "an admin; a supervisor for reviewers (not their role)",
     body=UserChanges, answers={200: (UserRow, "the user as it is now")},
     errors=(401, 403, 404, 409),
     description="Changing the role, resetting the password or active=false signs the user "
     "out everywhere (tokens, sockets, held task back to the queue). The last active admin "
     "cannot be demoted or deactivated (409 last_admin), nobody deactivates themselves "
     "(409 cannot_deactivate_self).")
def patch_user(user_id: int, body: UserChanges):
    """Rename, change role (admins), (de)activate, reset the password.

    Changing the role, resetting the password or deactivating signs the user
    out everywhere (api_auth.revoke_sessions): its tokens die, its sockets are
    disconnected and a held task goes back to the queue."""
    name, role, active, password = body.username, body.role, body.active, body.password
    target = _managed_user(user_id)
    skills = _checked_skills(body.skills, role or Role(target.role))
    if role is not None and current_user.role != Role.ADMIN.value:
        raise Forbidden("only admins change roles")
    if active is False and target.id == current_user.id:
        raise Conflict("you cannot deactivate yourself", code="cannot_deactivate_self")
    role_changes = role is not None and role.value != target.role
    update_account(db.session, target.id, username=name, role=role, password=password,
                   reactivate=active is True, deactivate=active is False)
    if active is False or role_changes or password is not None:
        revoke_sessions(db.session, target.id, current_user.id, deactivate=active is False)
    if role_changes and role == Role.REVIEWER and skills is None \
            and not routing.skills_of(db.session, [target.id]):
        skills = routing.DEFAULT_SKILLS  # a new reviewer, as if created one
    if skills is not None:
        # From its next claim; a held task stays. A free reviewer may qualify now.
        routing.set_skills(db.session, target.id, skills)
        state.notifier().dispatch_later()
    return jsonify(user_rows(db.session, state.config(), target.id)[0])


@bp.delete("/users/<int:user_id>")
@role_required(Role.SUPERVISOR)
@api("Deactivate a user", "an admin; a supervisor for reviewers",
     answers={204: (None, "deactivated (the account and its history stay)")},
     errors=(401, 403, 404, 409))
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
@api("Force a user offline", "an admin; a supervisor for reviewers", errors=(401, 403, 404),
     answers={200: (SignedOut, "signed out; `task` is the task that went back to the queue")})
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
@api("Change your own password", "any user", body=PasswordChange,
     answers={200: (Tokens, "fresh tokens (with a message)")}, errors=(401, 403),
     description="Every earlier token of the user dies and its sockets are disconnected; the "
     "answer carries fresh tokens. A reviewer keeps its task if it reconnects within the "
     "grace period. 403 wrong_password if current_password is wrong.")
def change_own_password(body: PasswordChange):
    """Any user, for itself. Every token of the user dies (other devices must
    log in again) and its sockets are disconnected; the answer carries fresh
    tokens. A reviewer's task is kept if it reconnects within the grace period."""
    current, new = body.current_password, body.new_password
    if not check_password_hash(current_user.password_hash, current):
        raise Forbidden("the current password is wrong", code="wrong_password")
    user_id = current_user.id
    state.notifier().disconnect(change_password(db.session, user_id, new))
    user = db.session.get(User, user_id)
    return jsonify({"message": "password changed; every other session must log in again",
                    **issue_tokens(user)})
