"""The REST API as an OpenAPI 3.1 document, served at GET /openapi.json.

Generated from the app: every route of its URL map, as its `@api`
declaration describes it (api.py), with the schemas of its models
(schemas/, through pydantic's JSON Schema). A route without a declaration
is an error. Copied to docs/openapi.json with
`python -m qc_live.openapi > docs/openapi.json` (a test checks the copy is
current). Socket.IO events are outside OpenAPI's reach: docs/api.md
describes them.
"""
import json
import re
import sys

from flask import Blueprint, current_app, jsonify
from pydantic.json_schema import GenerateJsonSchema, models_json_schema

from .api import Media, Route, api
from .schemas.answers import Error
from .schemas.base import Query

bp = Blueprint("openapi", __name__)

VERSION = "1.0.0"
COMPONENTS = "#/components/schemas/{model}"
# A route's tag by its blueprint, unless it names its own.
TAGS = {"auth": "auth", "tasks": "tasks", "queues": "queues", "reviewer_api": "reviewers", "users": "users",
        "stats": "stats", "board": "stats", "health": "operations", "metrics": "operations",
        "openapi": "operations", "pages": "pages", "webhooks": "webhooks", None: "pages"}
ERRORS = {
    400: "bad input: not JSON, wrong types, unknown fields",
    401: "no token, or an invalid, expired or revoked one",
    403: "wrong role, or not your task",
    404: "unknown id",
    409: "state conflict",
    413: "body too large",
    415: "unsupported content type: a JSON body needs Content-Type: application/json",
    422: "well-formed but invalid values",
    429: "too many attempts",
    503: "the database is not reachable",
}
# Routes Flask makes itself.
OTHER_ROUTES = {"static": Route("Static files of the pages", "anyone",
                                {200: (None, "the file")}, (404,), public=True)}


class _Schema(GenerateJsonSchema):
    """pydantic's JSON Schema without the titles it derives from Python
    names, and without null defaults (an absent field is just absent)."""

    def field_title_should_be_set(self, schema) -> bool:
        return False

    def model_schema(self, schema):
        result = super().model_schema(schema)
        result.pop("title", None)
        return result

    def default_schema(self, schema):
        result = super().default_schema(schema)
        if result.get("default", ...) is None:
            del result["default"]
        return result


def _json(shape, description: str) -> dict:
    answer = {"description": description}
    if isinstance(shape, tuple):  # several media types (GET /tasks/export)
        answer["content"] = {m.type: {"schema": m.schema} if m.schema else {} for m in shape}
    elif isinstance(shape, Media):
        answer["content"] = {shape.type: {"schema": shape.schema} if shape.schema else {}}
    elif shape is not None:
        answer["content"] = {"application/json": {"schema": {
            "$ref": COMPONENTS.format(model=shape.__name__)}}}
    return answer


def _parameters(rule, query: type[Query] | None) -> list[dict]:
    parameters = []
    for converter, name in re.findall(r"<(?:([a-z]+):)?([a-z_]+)>", rule.rule):
        if converter == "int":
            what = name.removesuffix("_id")
            parameters.append({"name": name, "in": "path", "required": True,
                               "schema": {"type": "integer", "minimum": 1},
                               "description": f"the {what}'s id"})
        else:
            parameters.append({"name": name, "in": "path", "required": True,
                               "schema": {"type": "string"}})
    if query is not None:
        schema = query.model_json_schema(schema_generator=_Schema)
        for name, prop in schema["properties"].items():
            prop = dict(prop)
            parameter = {"name": name, "in": "query", "required": name in schema.get(
                "required", ()), "description": prop.pop("description", "")}
            parameters.append({**parameter, "schema": prop})
    return parameters


def _operation(rule, route: Route) -> dict:
    errors = set(route.errors)
    if route.body is not None:
        body_models = {} if isinstance(route.body, dict) else {
            "application/json": {"schema": {"$ref": COMPONENTS.format(
                model=route.body.__name__)}}}
        errors |= {415} if isinstance(route.body, dict) else {400, 415, 422}
    if route.query is not None:
        errors |= {400, 422}
    operation = {
        "tags": [route.tag or TAGS[rule.endpoint.rpartition(".")[0] or None]],
        "summary": route.summary,
        "description": (route.description + "\n\n" if route.description else "")
        + f"Who: {route.who}.",
        "x-roles": route.who,
        "responses": {**{str(status): _json(*answer) for status, answer in route.answers.items()},
                      **{str(status): {"$ref": f"#/components/responses/E{status}"}
                         for status in sorted(errors)}},
    }
    if route.public:
        operation["security"] = []
    if route.body is not None:
        content = {kind: {"schema": schema} for kind, schema in route.body.items()} \
            if isinstance(route.body, dict) else body_models
        operation["requestBody"] = {"required": True, "content": content}
    parameters = _parameters(rule, route.query)
    if parameters:
        operation["parameters"] = parameters
    return operation


def spec(app) -> dict:
    """The document of `app`'s routes."""
    paths, models = {}, {Error}
    for rule in app.url_map.iter_rules():
        route = OTHER_ROUTES.get(rule.endpoint) or getattr(
            app.view_functions[rule.endpoint], "api_route", None)
        if route is None:
            raise LookupError(f"{rule.rule} has no @api declaration (api.py)")
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(rule, route)
        models |= {shape for shape, _ in route.answers.values()
                   if isinstance(shape, type)}
        if isinstance(route.body, type):
            models.add(route.body)
    _, schemas = models_json_schema(
        [(model, "validation") for model in sorted(models, key=lambda m: m.__name__)],
        ref_template=COMPONENTS, schema_generator=_Schema)
    return {
        "openapi": "3.1.0",
        "info": {"title": "qc_live", "version": VERSION,
                 "description": "Real-time task dispatch for manual QC teams. REST here; "
                 "the Socket.IO namespaces /reviewer and /board are described in "
                 "docs/api.md. Every error is {\"error\": {\"code\", \"message\"}}."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [{"name": name} for name in ("auth", "tasks", "queues", "reviewers", "users",
                                             "webhooks", "stats", "operations", "pages")],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
            "schemas": schemas["$defs"],
            "responses": {f"E{status}": _json(Error, text) for status, text in ERRORS.items()},
        },
    }


@bp.get("/openapi.json")
@api("This document", "anyone", answers={200: (Media("application/json"), "OpenAPI 3.1")},
     public=True)
def openapi_json():
    app = current_app._get_current_object()
    if "qc_openapi" not in app.extensions:
        app.extensions["qc_openapi"] = spec(app)
    return jsonify(app.extensions["qc_openapi"])


def main() -> None:
    """Print the document of an app built for the purpose (no database)."""
    import tempfile

    from . import create_app
    from .config import Config
    with tempfile.TemporaryDirectory() as instance:
        app = create_app(Config(database_url="sqlite://", secret_key="openapi " * 8,
                                instance_path=instance, log_level="WARNING"))
        document = spec(app)
    json.dump(document, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
