"""Accounts, passwords, tokens and role checks — for REST and sockets alike.

Tokens carry the user's `token_version`; logout and deactivation bump it, so
every access and refresh token issued before is dead at once.
"""
import os
import re
import secrets
from datetime import timedelta
from functools import wraps
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from flask import Blueprint, current_app, jsonify, request
from flask_jwt_extended import (create_access_token, create_refresh_token, current_user,
                                decode_token, jwt_required)
from werkzeug.security import check_password_hash, generate_password_hash

from . import dispatch, limits, notify
from .api import api
from .errors import Conflict, Forbidden, Invalid, RateLimited, Unauthorized
from .extensions import db, jwt
from .models import MAX_ID, Role, User, username_key
from .schemas.answers import AccessToken, Message, Tokens
from .schemas.requests import Login

bp = Blueprint("auth", __name__)

# Checked when the username is unknown, so both paths cost the same time.
_DUMMY_HASH = generate_password_hash("not a real password")


def hash_password(password: str) -> str:
    method = current_app.extensions["qc_config"].password_hash_method
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


def issue_tokens(user: User) -> dict:
    claims = {"role": user.role, "ver": user.token_version}
    access = create_access_token(identity=str(user.id), additional_claims=claims)
    refresh = create_refresh_token(identity=str(user.id), additional_claims=claims)
    return {"token": access, "access_token": access, "refresh_token": refresh,
            "user": user.public()}


def configure_jwt(app, config) -> None:
    app.config.update(
        JWT_SECRET_KEY=config.secret_key,
        JWT_TOKEN_LOCATION=["headers"],
        JWT_ACCESS_TOKEN_EXPIRES=timedelta(minutes=config.access_token_minutes),
        JWT_REFRESH_TOKEN_EXPIRES=timedelta(days=config.refresh_token_days),
        JWT_ERROR_MESSAGE_KEY="message",
    )


def _error(message: str):
    return jsonify(Unauthorized(message).body()), 401


@jwt.user_lookup_loader
def _load_user(_header, payload):
    try:
        user_id = int(payload["sub"])
    except (KeyError, TypeError, ValueError):  # signed by us, so only if the key leaked
        return None
    if not 1 <= user_id <= MAX_ID:
        return None
    user = db.session.get(User, user_id)
    if user is None or not user.active or user.token_version != payload.get("ver"):
        return None
    return user


@jwt.user_lookup_error_loader
def _user_gone(_header, _payload):
    return _error("the token was revoked or its user is no longer active")


@jwt.unauthorized_loader
def _missing(reason):
    return _error(f"missing or malformed Authorization header ({reason})")


@jwt.invalid_token_loader
def _invalid(reason):
    return _error(f"invalid token ({reason})")


@jwt.expired_token_loader
def _expired(_header, _payload):
    return _error("the token has expired; refresh it or log in again")


@jwt.revoked_token_loader
def _revoked(_header, _payload):
    return _error("the token was revoked")


def user_from_token(token, required_role: Role | None = None, exact: bool = False) -> User:
    """Authenticate a raw access token (sockets send it in the connect `auth`)."""
    if not isinstance(token, str) or not token:
        raise Unauthorized("an access token is required")
    try:
        payload = decode_token(token)
    except Exception as exc:  # expired, bad signature, garbage: all the same to the client
        raise Unauthorized(f"invalid token ({exc.__class__.__name__})") from None
    if payload.get("type") != "access":
        raise Unauthorized("an access token is required, not a refresh token")
    user = _load_user(None, payload)
    if user is None:
        raise Unauthorized("the token was revoked or its user is no longer active")
    if required_role is not None:
        role = Role(user.role)
        if (exact and role != required_role) or role.rank < required_role.rank:
            raise Forbidden(f"this needs the {required_role.value} role", code="forbidden")
    return user


def role_required(role: Role, exact: bool = False):
    """Decorator: a valid access token of a user with at least (or exactly) `role`."""
    def decorate(view):
        @wraps(view)
        @jwt_required()
        def wrapper(*args, **kwargs):
            have = Role(current_user.role)
            if (exact and have != role) or have.rank < role.rank:
                raise Forbidden(f"this needs the {role.value} role")
            return view(*args, **kwargs)
        return wrapper
    return decorate


@bp.post("/login")
@api("Log in", "anyone", body=Login, answers={200: (Tokens, "tokens and the user")},
     errors=(401, 429), public=True,
     description="The name is found by its exact spelling, else ignoring case. Failed logins "
     "are throttled: after 10 failures for one username from one client address, or 50 from "
     "one address, within 5 minutes, 429 too_many_attempts with Retry-After (a success "
     "clears its name and address, a new password clears the name).")
def login(body: Login):
    username, password = body.username, body.password
    address = request.remote_addr or "?"
    # Per name (ignoring case, as names are found) and address, and per
    # address: a guesser is slowed, the owner elsewhere still logs in.
    # Checked before the password, the same way for known and unknown names.
    key = username_key(username)
    wait = limits.login_blocked_for(key, address)
    if wait:
        raise RateLimited(f"too many failed logins; try again in {int(wait) + 1} s",
                          code="too_many_attempts", retry_after=int(wait) + 1)
    user = verify_login(db.session, username, password)
    if user is None:
        limits.login_failed(key, address)
        raise Unauthorized("wrong username or password", code="invalid_credentials")
    limits.login_succeeded(key, address)
    return jsonify(issue_tokens(user))


@bp.post("/refresh")
@jwt_required(refresh=True)
@api("A new access token", "a refresh token in the Authorization header", errors=(401,),
     answers={200: (AccessToken, "a fresh access token")})
def refresh():
    claims = {"role": current_user.role, "ver": current_user.token_version}
    return jsonify({"access_token": create_access_token(identity=str(current_user.id),
                                                       additional_claims=claims)})


@bp.post("/logout")
@jwt_required()
@api("Log out everywhere", "any user", errors=(401,),
     answers={200: (Message, "every token of the user is revoked")},
     description="Revokes every token of the user, disconnects its sockets and returns a "
     "held task to the queue at once.")
def logout():
    user_id = current_user.id
    revoke_sessions(db.session, user_id, user_id)
    return jsonify({"message": "logged out; all tokens of this user are revoked"})


def revoke_sessions(session, user_id: int, actor_id: int | None = None,
                    deactivate: bool = False):
    """Log the user out everywhere: every token dies, a held task returns to
    the queue at once, every socket of theirs is disconnected."""
    config = current_app.extensions["qc_config"]
    outcome = dispatch.sign_out(session, user_id, actor_id, config.lease_seconds,
                                config.grace_seconds, deactivate=deactivate)
    notify.push(outcome)
    notify.disconnect(outcome.value["sockets"])
    return outcome


def bootstrap_admin(session, config) -> None:
    """Create the configured admin, or on a first run a generated one (printed)."""
    from .api_users import create_user  # api_users imports this module
    if config.admin_username and config.admin_password:
        if find_user(session, config.admin_username) is None:
            try:
                create_user(session, config.admin_username, config.admin_password, Role.ADMIN)
            except Invalid as error:
                raise RuntimeError(f"QC_ADMIN_USERNAME: {error.message}") from None
            except Conflict:  # a process starting at the same time created it
                return
            current_app.logger.info("created admin %r from QC_ADMIN_USERNAME",
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
