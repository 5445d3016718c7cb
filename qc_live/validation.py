"""Checking what clients send, before anything changes.

Type errors (a string where a number belongs, a missing field) are 400;
values of the right type that make no sense (priority 10**9, outcome
"maybe") are 422. Unknown fields are refused so typos do not pass silently.
Request bodies are JSON, declared as such (415 otherwise).
"""
import json
import math
import re
import unicodedata

from flask import request

from .clock import parse_iso
from .dispatch import TaskSpec
from .errors import BadRequest, Invalid, QCError, UnsupportedMediaType
from .listing import DEFAULT_ORDER, ORDERS, STATUSES, TaskQuery, decode_cursor
from .models import MAX_USERNAME_KEY, username_key

MAX_NAME = 255
MAX_EXTERNAL_ID = 191
MAX_NOTE = 4000
MAX_USERNAME = 80
PRIORITY_RANGE = (-1_000_000, 1_000_000)
OUTCOMES = ("pass", "fail")
# Ids fit a signed 64-bit column; larger ones cannot name a row (and SQLite
# refuses to even bind them).
MAX_ID = 2**63 - 1
TASK_FIELDS = ("name", "payload", "priority", "deadline", "external_id")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: the databases' JSON cannot store it
        raise ValueError(f"number out of range: {text}")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def json_body(required: bool = True):
    """The request's JSON body; {} when optional and absent. 400 when not
    JSON; 415 when the body is not declared as JSON (`application/json` or
    `application/*+json`): a form, a text or no Content-Type at all means a
    client that does not speak this API, and guessing would hide its bug."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            raise BadRequest("a JSON body is required", code="missing_body")
        return {}
    if not request.is_json:
        declared = request.mimetype or "no Content-Type"
        raise UnsupportedMediaType(f"send the body as JSON with Content-Type: "
                                   f"application/json (not {declared})")
    try:
        return strict_json(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("the body is not valid JSON", code="invalid_json") from None


def strict_json(text):
    """Parse JSON as the API accepts it. NaN and Infinity are not JSON (RFC
    8259); Python would accept them, echo them back unparseable, and MySQL's
    JSON columns refuse them. Raises ValueError (or RecursionError)."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)


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


# What text may hold. Control characters (Unicode category Cc: U+0000-U+001F,
# U+007F-U+009F) cut strings short in C code, forge lines in logs and CSV
# exports, and drive terminals; the bidirectional embedding, override and
# isolate controls (U+202A-U+202E, U+2066-U+2069) make text read differently
# from what it is. Both are refused. One line of text (names, ids) refuses
# line breaks too, U+2028/U+2029 included; several lines (notes) keep tab,
# line feed and carriage return. Other format characters (category Cf) stay:
# zero-width joiners build emoji and Persian words, marks like U+200E are
# needed in right-to-left text.
ONE_LINE, LINES, ANY_TEXT = "one line", "lines", "any text"
_BIDI_CONTROLS = r"\u202a-\u202e\u2066-\u2069"
_FORBIDDEN = {
    ONE_LINE: re.compile(rf"[\x00-\x1f\x7f-\x9f\u2028\u2029{_BIDI_CONTROLS}]"),
    LINES: re.compile(rf"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{_BIDI_CONTROLS}]"),
}


def describe_character(char: str) -> str:
    """U+202E (RIGHT-TO-LEFT OVERRIDE); control characters have no name."""
    return f"U+{ord(char):04X} ({unicodedata.name(char, 'a control character')})"


def string(data: dict, name: str, required: bool = True, max_length: int = 255,
           allow_empty: bool = False, strip: bool = False, text: str = ONE_LINE):
    """A string field. `strip` removes surrounding blanks first; `text` says
    which characters it may hold: ONE_LINE (the default), LINES, or ANY_TEXT
    (passwords, and names only looked up)."""
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
    if strip:
        value = value.strip()
    if not allow_empty and not value.strip():
        raise Invalid(f"'{name}' must not be empty", code="empty")
    if len(value) > max_length:
        raise Invalid(f"'{name}' is longer than {max_length} characters", code="too_long")
    if text != ANY_TEXT:
        bad = _FORBIDDEN[text].search(value)
        if bad:
            allowed = ("control characters and line breaks are not allowed" if text == ONE_LINE
                       else "control characters other than tab and line breaks are not "
                       "allowed")
            raise Invalid(f"'{name}' contains {describe_character(bad[0])} at character "
                          f"{bad.start() + 1}: {allowed}", code="control_character")
    return value


def check_username(value: str) -> str:
    """A username as stored: without surrounding blanks, at most 80
    characters, printable only (str.isprintable: no control, format,
    separator other than the space, private-use or unassigned characters).
    Raises Invalid. Uniqueness ignoring case: models.username_key, a
    UNIQUE column."""
    value = value.strip()
    if not value:
        raise Invalid("'username' must not be empty", code="empty")
    if len(value) > MAX_USERNAME:
        raise Invalid(f"'username' is longer than {MAX_USERNAME} characters", code="too_long")
    for position, char in enumerate(value, 1):
        if not char.isprintable():
            raise Invalid(f"'username' contains {describe_character(char)} at character "
                          f"{position}: a username is printable characters only",
                          code="invalid_username")
    if len(username_key(value)) > MAX_USERNAME_KEY:  # NFKC can lengthen a name 18-fold
        raise Invalid("'username' is too long once normalised for comparison",
                      code="too_long")
    return value


def username_field(data: dict, required: bool = True) -> str | None:
    """The `username` field of a body that creates or renames an account."""
    value = string(data, "username", required=required, max_length=MAX_USERNAME, strip=True,
                   text=ANY_TEXT)
    return None if value is None else check_username(value)


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


def task_name(data: dict) -> str:
    return string(data, "name", max_length=MAX_NAME, strip=True)


def task_payload(data: dict, max_payload_bytes: int) -> dict:
    """The payload object; absent or null is {}."""
    payload = data.get("payload")
    if payload is None:
        return {}
    if not isinstance(payload, dict):
        raise BadRequest("'payload' must be a JSON object", code="wrong_type")
    try:
        size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
                   .encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: MariaDB's JSON check refuses it
        raise BadRequest("'payload' contains text that is not valid Unicode",
                         code="invalid_text") from None
    if size > max_payload_bytes:
        raise Invalid(f"'payload' is larger than {max_payload_bytes} bytes",
                      code="payload_too_large")
    return payload


def task_priority(data: dict) -> int | None:
    return integer(data, "priority", required=False, low=PRIORITY_RANGE[0],
                   high=PRIORITY_RANGE[1])


def task_deadline(data: dict):
    """A naive UTC datetime, or None when absent or null."""
    deadline = data.get("deadline")
    if deadline is None:
        return None
    if not isinstance(deadline, str):
        raise BadRequest("'deadline' must be an ISO-8601 string", code="wrong_type")
    # OverflowError: an offset can push 9999-12-31 past year 9999 in UTC.
    try:
        return parse_iso(deadline)
    except (ValueError, OverflowError):
        raise Invalid("'deadline' is not an ISO-8601 date-time", code="bad_datetime") \
            from None


def task_external_id(data: dict) -> str | None:
    return string(data, "external_id", required=False, max_length=MAX_EXTERNAL_ID)


def task_spec(data, max_payload_bytes: int) -> TaskSpec:
    data = json_object(data, set(TASK_FIELDS), "task")
    return TaskSpec(name=task_name(data), payload=task_payload(data, max_payload_bytes),
                    priority=task_priority(data) or 0, deadline=task_deadline(data),
                    external_id=task_external_id(data))


def task_specs(data, max_payload_bytes: int, max_count: int, pause=None) -> list[TaskSpec]:
    """One task or a list of them. All or nothing: any bad row refuses the request,
    and the error lists every bad row with its index. `pause` is called every
    1,000 rows (the server yields to the event loop)."""
    rows = data if isinstance(data, list) else [data]
    if not rows:
        raise BadRequest("no tasks given", code="empty_list")
    if len(rows) > max_count:
        raise Invalid(f"at most {max_count} tasks per request", code="too_many")
    specs, problems = [], []
    for index, row in enumerate(rows):
        if pause is not None and index % 1000 == 999:
            pause()
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
    note = string(data, "note", required=False, max_length=MAX_NOTE, allow_empty=True,
                  text=LINES)
    user_id = integer(data, "user_id", required=False, low=1, high=MAX_ID)
    return task_id, outcome, note or None, user_id


# --- query strings -------------------------------------------------------------

LIST_LIMIT = (1, 500)
DEFAULT_LIST_LIMIT = 50
_INTEGER = re.compile(r"[+-]?[0-9]{1,20}")


def query_params(args, allowed: set[str], repeatable: frozenset = frozenset()) -> dict:
    """The query string as {name: value} (a list for `repeatable` names).
    Unknown names are refused, like unknown body fields; so is a repeated
    name that takes one value."""
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise BadRequest(f"unknown query parameter(s): {', '.join(unknown)}",
                         code="unknown_field")
    params = {}
    for name in args:
        values = args.getlist(name)
        if name in repeatable:
            params[name] = values
        elif len(values) > 1:
            raise BadRequest(f"'{name}' is given more than once", code="repeated_parameter")
        else:
            params[name] = values[0]
    return params


def query_integer(params: dict, name: str, low: int, high: int, default=None):
    text = params.get(name)
    if text is None:
        return default
    if not _INTEGER.fullmatch(text.strip()):
        raise BadRequest(f"'{name}' must be an integer", code="wrong_type")
    value = int(text)
    if not low <= value <= high:
        raise Invalid(f"'{name}' must be between {low} and {high}", code="out_of_range")
    return value


def query_flag(params: dict, name: str) -> bool:
    text = params.get(name)
    if text is None:
        return False
    value = text.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no", ""):
        return False
    raise BadRequest(f"'{name}' must be 1 or 0", code="wrong_type")


def task_query(args) -> TaskQuery:
    """GET /tasks: status (one, a comma list, or repeated), assignee_id,
    priority, order_by, limit, cursor."""
    params = query_params(args, {"status", "assignee_id", "priority", "order_by", "limit",
                                 "cursor"}, repeatable=frozenset({"status"}))
    statuses = []
    for value in params.get("status", []):
        for name in value.split(","):
            name = name.strip()
            if name not in STATUSES:
                raise Invalid(f"'status' must be one or more of {', '.join(STATUSES)} "
                              f"(comma-separated), not {name!r}", code="bad_status")
            if name not in statuses:
                statuses.append(name)
    order_by = params.get("order_by", DEFAULT_ORDER).strip()
    if order_by not in ORDERS:
        raise Invalid(f"'order_by' must be one of {', '.join(ORDERS)}", code="bad_order")
    cursor = params.get("cursor")
    return TaskQuery(
        statuses=tuple(statuses),
        assignee_id=query_integer(params, "assignee_id", 1, MAX_ID),
        priority=query_integer(params, "priority", *PRIORITY_RANGE),
        order_by=order_by,
        limit=query_integer(params, "limit", *LIST_LIMIT, default=DEFAULT_LIST_LIMIT),
        after=decode_cursor(cursor, order_by) if cursor else None,
    )


# --- PATCH bodies --------------------------------------------------------------

def no_nulls(data: dict, names) -> None:
    for name in names:
        if name in data and data[name] is None:
            raise BadRequest(f"'{name}' cannot be null", code="wrong_type")


def task_changes(data, max_payload_bytes: int) -> dict:
    """PATCH /tasks/<id>: the fields to change, or {"status": "cancelled"}.

    Cancelling goes alone (there is nothing left to edit on a cancelled task).
    Only `deadline` may be null (it clears the deadline)."""
    data = json_object(data, {"name", "payload", "priority", "deadline", "status"})
    if not data:
        raise BadRequest("nothing to change: give name, payload, priority, deadline or "
                         "status", code="empty_patch")
    if "status" in data:
        status = data["status"]
        if not isinstance(status, str):
            raise BadRequest("'status' must be a string", code="wrong_type")
        if status != "cancelled":
            raise Invalid("'status' can only be set to \"cancelled\"; the other statuses "
                          "follow from dispatch (assign, release, complete)",
                          code="bad_status")
        if len(data) > 1:
            raise BadRequest("cancel on its own: a cancelled task has nothing left to edit",
                             code="cancel_with_changes")
        return {"status": "cancelled"}
    no_nulls(data, ("name", "payload", "priority"))
    changes = {}
    if "name" in data:
        changes["name"] = task_name(data)
    if "payload" in data:
        changes["payload"] = task_payload(data, max_payload_bytes)
    if "priority" in data:
        changes["priority"] = task_priority(data)
    if "deadline" in data:
        changes["deadline"] = task_deadline(data)
    return changes
