"""Checking what clients send, before anything changes.

Type errors (a string where a number belongs, a missing field) are 400;
values of the right type that make no sense (priority 10**9, outcome
"maybe") are 422. Unknown fields are refused so typos do not pass silently.
"""
import json
import math

from flask import request

from .clock import parse_iso
from .dispatch import TaskSpec
from .errors import BadRequest, Invalid, QCError

MAX_NAME = 255
MAX_EXTERNAL_ID = 191
MAX_NOTE = 4000
PRIORITY_RANGE = (-1_000_000, 1_000_000)
OUTCOMES = ("pass", "fail")
# Ids fit a signed 64-bit column; larger ones cannot name a row (and SQLite
# refuses to even bind them).
MAX_ID = 2**63 - 1


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: the databases' JSON cannot store it
        raise ValueError(f"number out of range: {text}")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def json_body(required: bool = True):
    """The request's JSON body; {} when optional and absent. 400 when not JSON."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            raise BadRequest("a JSON body is required", code="missing_body")
        return {}
    try:
        # NaN and Infinity are not JSON (RFC 8259); Python would accept them,
        # echo them back unparseable, and MySQL's JSON columns refuse them.
        return json.loads(raw, parse_constant=_no_constant, parse_float=_finite_float)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("the body is not valid JSON", code="invalid_json") from None


def json_object(data, allowed: set[str], where: str = "body") -> dict:
    if not isinstance(data, dict):
        raise BadRequest(f"the {where} must be a JSON object", code="not_an_object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise BadRequest(f"unknown field(s) in the {where}: {', '.join(unknown)}",
                         code="unknown_field")
    return data


def integer(data: dict, name: str, required: bool = True, low=None, high=None):
    value = data.get(name)
    if value is None:
        if required:
            raise BadRequest(f"'{name}' is required", code="missing_field")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"'{name}' must be an integer", code="wrong_type")
    if (low is not None and value < low) or (high is not None and value > high):
        raise Invalid(f"'{name}' must be between {low} and {high}", code="out_of_range")
    return value


def string(data: dict, name: str, required: bool = True, max_length: int = 255,
           allow_empty: bool = False):
    value = data.get(name)
    if value is None:
        if required:
            raise BadRequest(f"'{name}' is required", code="missing_field")
        return None
    if not isinstance(value, str):
        raise BadRequest(f"'{name}' must be a string", code="wrong_type")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate (JSON "\ud800"): no database stores it
        raise BadRequest(f"'{name}' is not valid Unicode text", code="invalid_text") from None
    if not allow_empty and not value.strip():
        raise Invalid(f"'{name}' must not be empty", code="empty")
    if len(value) > max_length:
        raise Invalid(f"'{name}' is longer than {max_length} characters", code="too_long")
    return value


def boolean(data: dict, name: str, required: bool = True):
    """true/false, or 1/0 as the original portal API sent them."""
    value = data.get(name)
    if value is None:
        if required:
            raise BadRequest(f"'{name}' is required", code="missing_field")
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if value in (0, 1):
            return bool(value)
        raise Invalid(f"'{name}' must be 0 or 1", code="out_of_range")
    raise BadRequest(f"'{name}' must be a boolean or 0/1", code="wrong_type")


def task_spec(data, max_payload_bytes: int) -> TaskSpec:
    data = json_object(data, {"name", "payload", "priority", "deadline", "external_id"}, "task")
    name = string(data, "name", max_length=MAX_NAME).strip()
    payload = data.get("payload")
    if payload is None:
        payload = {}
    elif not isinstance(payload, dict):
        raise BadRequest("'payload' must be a JSON object", code="wrong_type")
    else:
        try:
            size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
                       .encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate: MariaDB's JSON check refuses it
            raise BadRequest("'payload' contains text that is not valid Unicode",
                             code="invalid_text") from None
        if size > max_payload_bytes:
            raise Invalid(f"'payload' is larger than {max_payload_bytes} bytes",
                          code="payload_too_large")
    priority = integer(data, "priority", required=False, low=PRIORITY_RANGE[0],
                       high=PRIORITY_RANGE[1])
    deadline = data.get("deadline")
    if deadline is not None:
        if not isinstance(deadline, str):
            raise BadRequest("'deadline' must be an ISO-8601 string", code="wrong_type")
        # OverflowError: an offset can push 9999-12-31 past year 9999 in UTC.
        try:
            deadline = parse_iso(deadline)
        except (ValueError, OverflowError):
            raise Invalid("'deadline' is not an ISO-8601 date-time", code="bad_datetime") \
                from None
    external_id = string(data, "external_id", required=False, max_length=MAX_EXTERNAL_ID)
    return TaskSpec(name=name, payload=payload, priority=priority or 0, deadline=deadline,
                    external_id=external_id)


def task_specs(data, max_payload_bytes: int, max_count: int) -> list[TaskSpec]:
    """One task or a list of them. All or nothing: any bad row refuses the request,
    and the error lists every bad row with its index."""
    rows = data if isinstance(data, list) else [data]
    if not rows:
        raise BadRequest("no tasks given", code="empty_list")
    if len(rows) > max_count:
        raise Invalid(f"at most {max_count} tasks per request", code="too_many")
    specs, problems = [], []
    for index, row in enumerate(rows):
        try:
            specs.append(task_spec(row, max_payload_bytes))
        except QCError as error:
            problems.append((index, error))
    if problems:
        first = problems[0][1]
        rows_report = [{"index": i, "code": e.code, "message": e.message}
                       for i, e in problems[:1000]]
        kind = BadRequest if any(e.status == 400 for _, e in problems) else Invalid
        if not isinstance(data, list):
            raise first
        raise kind(f"{len(problems)} of {len(rows)} tasks are invalid; none was created "
                   f"(first: row {problems[0][0]}: {first.message})",
                   code="invalid_tasks", rows=rows_report)
    return specs


def completion(data) -> tuple[int, str | None, str | None, int | None]:
    """task_id, outcome, note, user_id of a completion (REST or socket)."""
    data = json_object(data, {"task_id", "outcome", "note", "user_id"})
    task_id = integer(data, "task_id", low=1, high=MAX_ID)
    outcome = data.get("outcome")
    if outcome is not None:
        if not isinstance(outcome, str):
            raise BadRequest("'outcome' must be \"pass\" or \"fail\"", code="wrong_type")
        if outcome not in OUTCOMES:
            raise Invalid("'outcome' must be \"pass\" or \"fail\"", code="bad_outcome")
    note = string(data, "note", required=False, max_length=MAX_NOTE, allow_empty=True)
    user_id = integer(data, "user_id", required=False, low=1, high=MAX_ID)
    return task_id, outcome, note or None, user_id
