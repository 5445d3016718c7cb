"""Declaring a REST route once: `@api(...)`, under the route's `@bp.<method>`
and its role check, parses the request into the route's models (schemas/)
and describes the route for the OpenAPI document (openapi.py).

    @bp.patch("/tasks/<int:task_id>")
    @role_required(Role.SUPERVISOR)
    @api("Edit or cancel a task", who="a supervisor", body=TaskChanges,
         answers={200: (Task, "the task as it is now")}, errors=(401, 403, 404, 409))
    def patch_task(task_id: int, body: TaskChanges): ...

The view gets `body=` (a schemas.base.Body: the JSON body) and `query=` (a
schemas.base.Query: the query string) already checked. Request bodies are JSON,
declared as such (415 otherwise).
"""
from dataclasses import dataclass
from functools import wraps

from flask import current_app, request

from . import database
from .errors import BadRequest, UnsupportedMediaType
from .schemas.base import strict_json


@dataclass(frozen=True)
class Media:
    """An answer or body that is not JSON: its media type and schema."""
    type: str
    schema: dict | None = None


@dataclass(frozen=True)
class Route:
    """What the OpenAPI document says of one route (see `api`)."""
    summary: str
    who: str
    answers: dict
    errors: tuple = ()
    body: object = None
    query: type | None = None
    description: str | None = None
    public: bool = False
    tag: str | None = None


def api(summary: str, who: str, *, answers: dict, errors=(), body=None, query=None,
        description: str | None = None, public: bool = False, tag: str | None = None):
    """Declare a route. `who` says which roles may call it (for people: the
    role check itself is `auth.role_required`). `answers` maps a success
    status to (a model of schemas.answers, a Media, a tuple of Media (one answer in
    several media types) or None; what it means).
    `errors` lists the error statuses besides those a body or a query string
    brings (400 and 422, and 415 for a JSON body). `body` is a request model
    (a Body, or NewTasks) parsed from the JSON body, or a dict of media type
    to schema for a body the view reads itself; `query` a Query model.
    `public`: no token needed. `tag` defaults to the blueprint's
    (openapi.TAGS)."""
    route = Route(summary, who, answers, tuple(errors), body, query, description, public, tag)

    def decorate(view):
        @wraps(view)
        def parsed(*args, **kwargs):
            if query is not None:
                kwargs["query"] = query.from_args(request.args)
            if hasattr(body, "from_request"):
                kwargs["body"] = body.from_request(json_body(), validation_context())
            return view(*args, **kwargs)
        parsed.api_route = route  # functools.wraps carries it to the decorators above
        return parsed
    return decorate


def validation_context() -> dict:
    """What the models need from the configuration (schemas.fields)."""
    config = current_app.extensions["qc_config"]
    return {"max_payload_bytes": config.max_payload_bytes,
            "max_tasks": config.max_tasks_per_request, "pause": database.yield_to_loop,
            "known_queues": known_queues()}


def known_queues():
    """A function giving the names of the queues, read once, when first asked."""
    found = []

    def names() -> set:
        if not found:
            from .extensions import db
            from .routing import queue_names
            found.append(queue_names(db.session))
        return found[0]
    return names


def json_body():
    """The request's JSON body. 400 when absent or not JSON; 415 when the body
    is not declared as JSON (`application/json` or `application/*+json`): a
    form, a text or no Content-Type at all means a client that does not speak
    this API, and guessing would hide its bug."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise BadRequest("a JSON body is required", code="missing_body")
    if not request.is_json:
        declared = request.mimetype or "no Content-Type"
        raise UnsupportedMediaType(f"send the body as JSON with Content-Type: "
                                   f"application/json (not {declared})")
    try:
        return strict_json(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("the body is not valid JSON", code="invalid_json") from None


HTML = Media("text/html", {"type": "string"})
