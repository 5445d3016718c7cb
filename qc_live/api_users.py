"""REST for accounts: supervisors manage reviewers, admins manage anyone;
every user changes its own password."""
import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify
from flask_jwt_extended import current_user
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash

from . import limits, notify
from .api import api
from .auth import hash_password, issue_tokens, revoke_sessions, role_required
from .database import run_write
from .errors import Conflict, Forbidden, NotFound
from .extensions import db
from .models import MAX_ID, Role, Task, TaskStatus, User, username_key
from .presence import logged_in, sockets_of
from .schemas.answers import SignedOut, Tokens, Users
from .schemas.answers import User as UserRow
from .schemas.requests import NewUser, PasswordChange, UserChanges
from .text import MIN_PASSWORD, check_username  # noqa: F401 (MIN_PASSWORD: the CLI's)

bp = Blueprint("users", __name__)


def may_manage(actor: User, role: Role) -> bool:
    """Admins manage everyone; supervisors manage reviewers."""
    actor_role = Role(actor.role)
    return actor_role == Role.ADMIN or (actor_role == Role.SUPERVISOR and role == Role.REVIEWER)


def _refuse_taken(session, username: str, besides: int | None = None) -> None:
    """Conflict if another account has this name, ignoring case. (The UNIQUE
    username_key refuses it anyway; this says which spelling has it.)"""
    taken = session.scalar(sa.select(User.username).where(
        sa.or_(User.username_key == username_key(username), User.username == username),
        User.id != (besides or 0)).limit(1))
    if taken is not None:
        how = "" if taken == username else f" (as {taken!r}: names are compared ignoring case)"
        raise Conflict(f"username {username!r} is taken{how}", code="username_taken")


def create_user(session, username: str, password: str, role: Role) -> User:
    """Create an account (used by the API, the CLI and the first start).
    Invalid if the name is not a valid username, Conflict if it is taken,
    ignoring case."""
    username = check_username(username)
    # Hashing takes a while (on purpose): not while holding the write lock.
    password_hash = hash_password(password)

    def work(session):
        _refuse_taken(session, username)
        user = User(username=username, role=role.value, password_hash=password_hash)
        session.add(user)
        session.flush()
        return user
    try:
        user = run_write(session, work)
    except IntegrityError:
        raise Conflict(f"username {username!r} is taken", code="username_taken") from None
    # Failures counted against the name before it had this password are moot.
    limits.forget_login_failures(username_key(username))
    return user


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


def config():
    return current_app.extensions["qc_config"]


@bp.post("/users")
@role_required(Role.SUPERVISOR)
@api("Create a user", "an admin; a supervisor for reviewers", body=NewUser,
     answers={201: (UserRow, "the new user")}, errors=(401, 403, 409))
def post_user(body: NewUser):
    name, password, role = body.username, body.password, body.role
    if not may_manage(current_user, role):
        raise Forbidden(f"a {current_user.role} cannot create a {role.value}")
    user = create_user(db.session, name, password, role)
    cfg = current_app.extensions["qc_config"]
    return jsonify(user_rows(db.session, cfg, user.id)[0]), 201


@bp.get("/users")
@role_required(Role.SUPERVISOR)
@api("List users", "a supervisor", answers={200: (Users, "every account")}, errors=(401, 403))
def list_users():
    cfg = current_app.extensions["qc_config"]
    return jsonify({"users": user_rows(db.session, cfg)})


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


def _other_active_admin(session, user_id: int) -> bool:
    return session.scalar(sa.select(User.id).where(
        User.role == Role.ADMIN.value, User.active.is_(True), User.id != user_id).limit(1)) \
        is not None


def update_account(session, user_id: int, username=None, role=None, password=None,
                   reactivate=False, deactivate=False) -> None:
    """Rename, change role, set a password, reactivate (one transaction; the
    user row only — task state changes stay in dispatch). Deactivating is
    checked here and done by `auth.revoke_sessions` afterwards. A new
    password clears the login failures counted against the user's name."""
    if username is not None:
        username = check_username(username)
    # Hashing takes a while (on purpose): not while holding the write lock.
    password_hash = hash_password(password) if password is not None else None
    names = []

    def work(session):
        user = session.scalars(sa.select(User).where(User.id == user_id).with_for_update()
                               .execution_options(populate_existing=True)).first()
        names[:] = [user.username]
        losing_admin = user.role == Role.ADMIN.value and user.active and (
            deactivate or (role is not None and role != Role.ADMIN))
        if losing_admin and not _other_active_admin(session, user_id):
            raise Conflict("this is the last active admin; make another admin first",
                           code="last_admin")
        if username is not None and username != user.username:
            _refuse_taken(session, username, besides=user_id)
            user.username = username
            names.append(username)
        if role is not None:
            user.role = role.value
        if password_hash is not None:
            user.password_hash = password_hash
        if reactivate:
            user.active = True
        session.flush()
    try:
        run_write(session, work)
    except IntegrityError:
        raise Conflict(f"username {username!r} is taken", code="username_taken") from None
    if password_hash is not None:
        for name in names:
            limits.forget_login_failures(username_key(name))


def _new_password(session, user_id: int, password_hash: str) -> list[tuple[str, str]]:
    """Set the password and kill every token of the user (a token_version
    bump). Returns its sockets, for the caller to disconnect after the commit;
    unlike a sign-out, a held task stays through the grace period."""
    user = session.scalars(sa.select(User).where(User.id == user_id).with_for_update()
                           .execution_options(populate_existing=True)).first()
    user.password_hash = password_hash
    user.token_version += 1
    return sockets_of(session, user_id)


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
    out everywhere (auth.revoke_sessions): its tokens die, its sockets are
    disconnected and a held task goes back to the queue."""
    name, role, active, password = body.username, body.role, body.active, body.password
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
    return jsonify(user_rows(db.session, config(), target.id)[0])


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
    notify.disconnect(run_write(db.session, _new_password, user_id, hash_password(new)))
    user = db.session.get(User, user_id)
    limits.forget_login_failures(username_key(user.username))
    return jsonify({"message": "password changed; every other session must log in again",
                    **issue_tokens(user)})
