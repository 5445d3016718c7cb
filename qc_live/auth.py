"""Tokens and role checks, for REST and sockets alike.

Tokens carry the user's `token_version`; logout, a new password, a role change
and deactivation bump it, so every access and refresh token issued before is
dead at once.
"""
from datetime import timedelta
from functools import wraps

from flask import jsonify
from flask_jwt_extended import (create_access_token, create_refresh_token, current_user,
                                decode_token, jwt_required)

from .errors import Forbidden, Unauthorized
from .extensions import db, jwt
from .models import MAX_ID, Role, User

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
