"""Handing tokens out and taking them back: POST /login, /refresh, /logout."""
from flask import Blueprint, jsonify, request
from flask_jwt_extended import create_access_token, current_user, jwt_required

from . import accounts, state
from .accounts import verify_login
from .api import api
from .auth import issue_tokens
from .errors import RateLimited, Unauthorized
from .extensions import db
from .models import username_key
from .schemas.answers import AccessToken, Message, Tokens
from .schemas.requests import Login

bp = Blueprint("auth", __name__)


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
