"""Tokens and role checks, for REST and sockets alike, and the routes that
hand tokens out and take them back (login, refresh, logout).

Tokens carry the user's `token_version`; logout, a new password, a role change
and deactivation bump it, so every access and refresh token issued before is
dead at once.
"""
from datetime import timedelta
from functools import wraps

from flask import Blueprint, jsonify, request
from flask_jwt_extended import (create_access_token, create_refresh_token, current_user,
                                decode_token, jwt_required)

from . import accounts, state
from .accounts import verify_login
from .api import api
from .errors import Forbidden, RateLimited, Unauthorized
from .extensions import db, jwt
from .models import MAX_ID, Role, User, username_key
from .schemas.answers import AccessToken, Message, Tokens
from .schemas.requests import Login

bp = Blueprint("auth", __name__)

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
    limits = state.limits()
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
    """Log the user out everywhere (accounts.sign_out), then tell its sockets
    and disconnect them, on whichever process they are."""
    outcome = accounts.sign_out(state.dispatcher(), session, user_id, actor_id,
                                deactivate=deactivate)
    notifier = state.notifier()
    notifier.push(outcome)
    notifier.disconnect(outcome.value["sockets"])
    return outcome
