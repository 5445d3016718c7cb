"""Errors with a status and a code, and their one JSON shape.

The domain modules raise these (they know nothing of Flask); `register`
turns them, and Flask's own HTTP errors, into
``{"error": {"code": ..., "message": ...}}``. Socket handlers use `as_ack`.
"""
import logging

from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class QCError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, code: str | None = None, **extra):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.extra = extra

    def body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


class BadRequest(QCError):
    status, code = 400, "bad_request"


class Unauthorized(QCError):
    status, code = 401, "unauthorized"


class Forbidden(QCError):
    status, code = 403, "forbidden"


class NotFound(QCError):
    status, code = 404, "not_found"


class Conflict(QCError):
    status, code = 409, "conflict"


class UnsupportedMediaType(QCError):
    status, code = 415, "unsupported_media_type"


class Invalid(QCError):
    status, code = 422, "invalid_value"


class RateLimited(QCError):
    status, code = 429, "rate_limited"


class Unavailable(QCError):
    status, code = 503, "unavailable"


_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
               415: "unsupported_media_type", 422: "invalid_value", 429: "rate_limited",
               503: "unavailable"}


def as_ack(error: QCError) -> dict:
    """The socket acknowledgement for a refused event."""
    return {"ok": False, **error.body()}


def register(app) -> None:
    from flask import jsonify

    from .database import is_unavailable

    @app.errorhandler(QCError)
    def _qc_error(error: QCError):
        headers = {}
        if "retry_after" in error.extra:  # said in the body too, for clients reading JSON
            headers["Retry-After"] = str(error.extra["retry_after"])
        return jsonify(error.body()), error.status, headers

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        code = _HTTP_CODES.get(error.code, "http_error")
        body = {"error": {"code": code, "message": error.description or error.name}}
        # Keep what the exception says besides its HTML body: a 405 must name
        # the allowed methods (Allow), a 429/503 may carry Retry-After.
        headers = [(name, value) for name, value in error.get_headers()
                   if name.lower() != "content-type"]
        return jsonify(body), error.code, headers

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):
        if is_unavailable(error):
            log.warning("database unavailable: %s", error)
            return jsonify(Unavailable("the database is not reachable; try again shortly")
                           .body()), 503
        log.exception("unhandled error")
        body = {"error": {"code": "internal_error", "message": "internal server error"}}
        return jsonify(body), 500
