"""Accounts: users, their passwords and names, the first admin, signing out.

Domain code over a session, as dispatch.py is: the REST routes (api_users.py,
auth.py) and the CLI call it. Names are unique ignoring case
(models.username_key, a UNIQUE column); passwords are hashed with the
configured werkzeug method (scrypt by default), on purpose slowly, so never
inside a write transaction.
"""
import logging
import os
import re
import secrets
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from . import lifecycle, presence, routing, state
from .clock import ago
from .database import run_write
from .errors import Conflict, Invalid, NotFound
from .lifecycle import ASSIGNED, Work
from .models import Role, Task, TaskStatus, User, username_key
from .notices import Outcome, Revoked
from .presence import logged_in, sockets_of
from .text import check_username

log = logging.getLogger(__name__)

# Checked when the username is unknown, so both paths cost the same time.
_DUMMY_HASH = generate_password_hash("not a real password")


def hash_password(password: str) -> str:
    method = state.config().password_hash_method
    return generate_password_hash(password, method=method)


def find_user(session, username: str) -> User | None:
    """The account `username` names: its exact spelling, else the account
    whose name is the same ignoring case (models.username_key). Both are
    looked up each time (two index reads), so login time does not tell which
    names exist. A database from before that rule may hold twins ('ADMIN' and
    'admin'): each still finds itself by its exact spelling."""
    key = username_key(username)
    exact = session.scalars(sa.select(User).where(User.username == username)).first()
    twin = session.scalars(sa.select(User).where(User.username_key == key)).first()
    # Twins of that release have no key: with one of them, another spelling is
    # ambiguous and finds neither.
    keyless = session.scalars(sa.select(User.username).where(User.username_key.is_(None)))
    if exact is None and any(username_key(name) == key for name in keyless):
        return None
    return exact or twin


def verify_login(session, username: str, password: str) -> User | None:
    user = find_user(session, username)
    ok = check_password_hash(user.password_hash if user else _DUMMY_HASH, password)
    if user is None or not ok or not user.active:
        return None
    return user


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
    state.limits().forget_login_failures(username_key(username))
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
    rows = session.execute(query).all()
    skills = routing.skills_of(session, [user.id for user, *_ in rows
                                         if user.role == Role.REVIEWER.value])
    return [{**user.public(), "active": user.active, "online": bool(online),
             "available": user.available, "task_id": task_id,
             "completed_count": count or 0,
             **({"skills": skills.get(user.id, {})} if user.role == Role.REVIEWER.value
                else {})}
            for user, task_id, count, online in rows]


def _other_active_admin(session, user_id: int) -> bool:
    return session.scalar(sa.select(User.id).where(
        User.role == Role.ADMIN.value, User.active.is_(True), User.id != user_id).limit(1)) \
        is not None


def update_account(session, user_id: int, username=None, role=None, password=None,
                   reactivate=False, deactivate=False) -> None:
    """Rename, change role, set a password, reactivate (one transaction; the
    user row only — task state changes stay in dispatch). Deactivating is
    checked here and done by `sign_out` afterwards. A new
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
            state.limits().forget_login_failures(username_key(name))


def change_password(session, user_id: int, password: str) -> list[tuple[str, str]]:
    """Set the user's own new password and kill every token it had (a
    token_version bump); the login failures counted against its name are
    forgotten. Returns its sockets, for the caller to disconnect after the
    commit; unlike a sign-out, a held task stays through the grace period."""
    password_hash = hash_password(password)

    def work(session):
        user = presence.lock_user(session, user_id)
        session.execute(sa.update(User).where(User.id == user_id).values(
            password_hash=password_hash, token_version=user.token_version + 1))
        name = session.scalar(sa.select(User.username).where(User.id == user_id))
        return sockets_of(session, user_id), name
    sockets, name = run_write(session, work)
    state.limits().forget_login_failures(username_key(name))
    return sockets


def sign_out(dispatcher, session, user_id: int, actor_id: int | None,
             deactivate: bool = False) -> Outcome:
    """Log a user out everywhere (logout, a supervisor forcing a reviewer
    offline, a role change, deactivation): every token dies, the user's
    sockets stop counting as presence, and a held task goes back to its place
    in the queue at once (no grace period: this was on purpose). The user
    shows as offline at once too, and coming back it joins the end of the
    idle line. Outcome.value: {"task": the returned task or None, "sockets":
    [(sid, namespace)]}, which the caller disconnects after the commit."""
    def work(w: Work):
        user = lifecycle.lock_reviewer(w, user_id)
        if user is None:
            raise NotFound(f"user {user_id} does not exist", code="user_not_found")
        # Offline for a whole grace period already: "online" includes the
        # grace after a dropped socket (a reload), which a sign-out must not get.
        changes = {"token_version": user.token_version + 1,
                   "offline_since": ago(dispatcher.grace_seconds)}
        if deactivate:
            changes["active"] = False
        w.conn.execute(sa.update(User).where(User.id == user_id).values(**changes))
        sockets = presence.forget_sockets(w.session, user_id)
        held = lifecycle.held_task(w, user_id)
        if held is None:
            return Outcome({"task": None, "sockets": sockets})
        row = lifecycle.lock(w, held.id, (ASSIGNED,), "task_not_assigned")
        task = lifecycle.requeue(w, row, "signed_out", actor_id=actor_id)
        return Outcome({"task": task, "sockets": sockets},
                       [Revoked(user_id, held.id, "released")])
    return lifecycle.run(session, work).extend(dispatcher.dispatch_pending(session))


def bootstrap_admin(session, config) -> None:
    """Create the configured admin, or on a first run a generated one (printed)."""
    if config.admin_username and config.admin_password:
        if find_user(session, config.admin_username) is None:
            try:
                create_user(session, config.admin_username, config.admin_password, Role.ADMIN)
            except Invalid as error:
                raise RuntimeError(f"QC_ADMIN_USERNAME: {error.message}") from None
            except Conflict:  # a process starting at the same time created it
                return
            log.info("created admin %r from QC_ADMIN_USERNAME",
                                    config.admin_username)
        return
    if session.scalar(sa.select(User.id).where(User.role == Role.ADMIN.value).limit(1)):
        return
    password = secrets.token_urlsafe(12)
    try:
        create_user(session, "admin", password, Role.ADMIN)
    except Conflict as error:
        session.rollback()
        if session.scalar(sa.select(User.id).where(User.role == Role.ADMIN.value).limit(1)):
            return  # a process starting at the same time made the first admin
        raise RuntimeError(f"cannot create the first admin ({error.message}); set "
                           "QC_ADMIN_USERNAME and QC_ADMIN_PASSWORD") from None
    try:
        saved = f"also saved in {_save_first_run_admin(config, password)}: delete that file"
    except OSError as exc:
        saved = f"could not be saved ({exc}): note it now"
    banner = "=" * 64
    print(f"\n{banner}\n qc_live first run: created the admin account\n"
          f"   username: admin\n   password: {password}\n"
          f" ({saved} once read;\n"
          f"  set QC_ADMIN_USERNAME/QC_ADMIN_PASSWORD to choose your own)\n{banner}\n",
          flush=True)


def _save_first_run_admin(config, password: str) -> Path:
    """Write the generated password to <instance>/first-run-admin-<database>.txt
    (mode 0600). One file per database, and never over an existing one: the
    instance folder may serve several databases (DATABASE_URL), and each
    admin's password must survive the next one's first run."""
    url = make_url(config.database_url)
    name = Path(url.database or "").stem if config.is_sqlite else url.database
    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", name or "")[:64] or "database"
    folder = Path(config.instance_path)
    folder.mkdir(parents=True, exist_ok=True)
    text = (f"qc_live's first-run admin of the database {url.render_as_string()}\n"
            f"username: admin\npassword: {password}\n"
            "Delete this file once you have read it (and change the password: "
            "POST /me/password).\n")
    for attempt in range(1, 1000):
        path = folder / f"first-run-admin-{label}{'' if attempt == 1 else f'-{attempt}'}.txt"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        return path
    raise FileExistsError(f"{folder}: too many first-run-admin-{label}*.txt files")
