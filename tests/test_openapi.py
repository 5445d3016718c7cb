"""The OpenAPI document: served by the app, equal to docs/openapi.json, and
describing exactly the app's routes (every route in it, nothing else)."""
import json
import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "openapi.json"


def _openapi_path(rule: str) -> str:
    """Flask's /tasks/<int:task_id> is OpenAPI's /tasks/{task_id}."""
    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_the_spec_describes_every_route_and_only_those(app):
    client = app.test_client()
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.is_json
    spec = response.get_json()
    assert spec["openapi"].startswith("3.1")
    # docs/openapi.json is the same document (regenerate it with
    # `python -m qc_live.openapi > docs/openapi.json`).
    assert json.loads(DOC.read_text()) == spec, "docs/openapi.json is out of date"

    routes = {(_openapi_path(rule.rule), method.lower()) for rule in app.url_map.iter_rules()
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    described = {(path, method) for path, item in spec["paths"].items() for method in item}
    assert routes - described == set(), "routes missing from the spec"
    assert described - routes == set(), "the spec describes routes the app does not have"

    for path, item in spec["paths"].items():
        parameters = set(re.findall(r"{([a-z_]+)}", path))
        for method, operation in item.items():
            where = f"{method.upper()} {path}"
            assert operation["summary"] and operation["x-roles"], where
            assert operation["responses"], where
            assert any(code.startswith("2") for code in operation["responses"]), where
            named = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert named == parameters, where
            if method in ("put", "patch") or (method == "post" and path in (
                    "/login", "/tasks", "/users", "/assign_task", "/complete_task",
                    "/me/password", "/tasks/import")):
                assert "requestBody" in operation, where
    # Every reference resolves.
    for ref in set(_refs(spec)):
        node = spec
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
    # The error shape is the contract's.
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error"]
    assert error["properties"]["error"]["required"] == ["code", "message"]
