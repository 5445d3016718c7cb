"""The field types of the request models, each with its rules and what they
mean in the document."""
import json
import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .. import forms
from ..clock import parse_iso
from ..errors import BadRequest, Invalid, QCError
from ..listing import STATUSES
from ..models import LEVELS, MAX_ID, QUEUE_NAME_LENGTH, Role
from ..text import (ANY_TEXT, LINES, MAX_USERNAME, MIN_PASSWORD, check_new_password,
                    check_username)
from .base import Check, one_of, problem, text

MAX_NAME = 255
MAX_EXTERNAL_ID = 191
MAX_NOTE = 4000
MAX_PASSWORD = 1024
PRIORITY_RANGE = (-1_000_000, 1_000_000)
OUTCOMES = ("pass", "fail")
ROLES = tuple(role.value for role in Role)
LIST_LIMIT = (1, 500)
DEFAULT_LIST_LIMIT = 50


def _zero_or_one(value, name, _context):
    """true/false, or 1/0 as the original portal API sent them."""
    if isinstance(value, int) and not isinstance(value, bool):
        if value not in (0, 1):
            raise Invalid(f"'{name}' must be 0 or 1", code="out_of_range")
        return bool(value)
    return value


def _payload(payload, name, context):
    """At most the validation context's max_payload_bytes (Config) as stored:
    compact UTF-8 JSON."""
    try:
        size = len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
                   .encode("utf-8"))
    except UnicodeEncodeError:  # a lone surrogate: MariaDB's JSON check refuses it
        raise BadRequest(f"'{name}' contains text that is not valid Unicode",
                         code="invalid_text") from None
    limit = context["max_payload_bytes"]
    if size > limit:
        raise Invalid(f"'{name}' is larger than {limit} bytes", code="payload_too_large")
    return payload


def _deadline(value, name, _context):
    """A naive UTC datetime. OverflowError: an offset can push 9999-12-31
    past year 9999 in UTC."""
    if not isinstance(value, str):
        raise BadRequest(f"'{name}' must be an ISO-8601 string", code="wrong_type")
    try:
        return parse_iso(value)
    except (ValueError, OverflowError):
        raise Invalid(f"'{name}' is not an ISO-8601 date-time", code="bad_datetime") from None


def _username(value, _name, _context):
    return check_username(value)


def _role(value, name, _context):
    try:
        return Role(value)
    except ValueError:
        raise Invalid(f"'{name}' must be reviewer, supervisor or admin", code="bad_role") \
            from None


def strong_password(value: str, name: str) -> None:
    try:
        check_new_password(value, name)
    except QCError as error:
        raise problem(error) from None


_QUEUE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]*")


def _queue_name(value, name, _context):
    if not _QUEUE_NAME.fullmatch(value):
        raise Invalid(f"'{name}' must be letters, digits and _ . : - (starting with a letter "
                      f"or digit), at most {QUEUE_NAME_LENGTH} characters",
                      code="invalid_queue_name")
    return value


def _skills(value, name, _context):
    """{queue: level}: each name a queue name, each level 1..10 (known queues
    are checked against the database by the route: unknown_queue)."""
    for queue, level in value.items():
        _queue_name(queue, f"{name}.{queue}", _context)
        if isinstance(level, bool) or not isinstance(level, int):
            raise BadRequest(f"'{name}': the level for {queue!r} must be an integer",
                             code="wrong_type")
        if not LEVELS[0] <= level <= LEVELS[1]:
            raise Invalid(f"'{name}': the level for {queue!r} must be from {LEVELS[0]} to "
                          f"{LEVELS[1]}", code="bad_level")
    return value


def _form(value, _name, _context):
    return value if value is None else forms.check_form(value)


def _reasons(value, name, _context):
    """A list of codes; checked against the queue's form at completion
    (forms.check_verdict): here only its size, so a huge list is refused cheaply."""
    if not isinstance(value, list):
        raise BadRequest(f"'{name}' must be a list of reason codes", code="wrong_type")
    if len(value) > forms.MAX_ITEMS:
        raise Invalid(f"'{name}': at most {forms.MAX_ITEMS} reasons", code="invalid_verdict")
    return value


def _checklist(value, name, _context):
    if not isinstance(value, dict):
        raise BadRequest(f"'{name}' must be an object of item id -> true/false",
                         code="wrong_type")
    if len(value) > forms.MAX_ITEMS:
        raise Invalid(f"'{name}': at most {forms.MAX_ITEMS} items", code="invalid_verdict")
    return value


def _empty_is_none(value, _name, _context):
    return value or None


_INTEGER = re.compile(r"[+-]?[0-9]{1,20}")


def _query_integer(value, name, _context):
    if not _INTEGER.fullmatch(value.strip()):
        raise BadRequest(f"'{name}' must be an integer", code="wrong_type")
    return int(value)


def _query_flag(value, name, _context):
    value = value.strip().lower()
    if value in ("1", "true", "yes"):
        return True
    if value in ("0", "false", "no", ""):
        return False
    raise BadRequest(f"'{name}' must be 1 or 0", code="wrong_type")


def check_statuses(values, name, _context):
    """Each value one status or a comma list; repeats dropped."""
    statuses = []
    for value in values:
        for status in value.split(","):
            status = status.strip()
            if status not in STATUSES:
                raise Invalid(f"'{name}' must be one or more of {', '.join(STATUSES)} "
                              f"(comma-separated), not {status!r}", code="bad_status")
            if status not in statuses:
                statuses.append(status)
    return statuses


# --- field types -----------------------------------------------------------------

Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Priority = Annotated[int, Field(ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1])]
TaskName = Annotated[str, text(MAX_NAME, strip=True), Field(
    description="surrounding blanks are removed; one line of text: no control characters "
    "or line breaks (422 control_character)")]
ExternalId = Annotated[str, text(MAX_EXTERNAL_ID), Field(
    description="idempotency key: the same external_id again gives the existing task; one "
    "line of text (422 control_character otherwise)")]
Payload = Annotated[dict[str, Any], Check(_payload), Field(
    description="a JSON object, at most 64 KiB as JSON")]
Deadline = Annotated[datetime, Check(_deadline, before=True), Field(
    description="ISO-8601; without an offset: UTC")]
Outcome = Annotated[str, one_of(OUTCOMES, "bad_outcome", "'outcome' must be \"pass\" or \"fail\"")]
Note = Annotated[str, text(MAX_NOTE, allow_empty=True, kind=LINES), Check(_empty_is_none),
                 Field(description="tab and line breaks allowed, other control characters not")]
Flag = Annotated[bool, Check(_zero_or_one, {"anyOf": [{"type": "boolean"}, {"enum": [0, 1]}]},
                             before=True, replace=True)]
Username = Annotated[str, text(MAX_USERNAME, strip=True, kind=ANY_TEXT), Check(_username), Field(
    description="surrounding blanks are removed; printable characters only (422 "
    "invalid_username); unique ignoring case (409 username_taken)")]
Password = Annotated[str, text(MAX_PASSWORD, allow_empty=True, kind=ANY_TEXT)]
NewPassword = Annotated[Password, Field(json_schema_extra={"minLength": MIN_PASSWORD},
                                        description=f"at least {MIN_PASSWORD} characters "
                                        "(422 weak_password)")]
CancelStatus = Annotated[str, one_of(("cancelled",), "bad_status",
                                     "'status' can only be set to \"cancelled\"; the other "
                                     "statuses follow from dispatch (assign, release, complete)")]
RoleName = Annotated[str, text(16), Check(_role, {"type": "string", "enum": list(ROLES)},
                                         replace=True)]


QueueName = Annotated[str, text(QUEUE_NAME_LENGTH), Check(_queue_name), Field(
    description="letters, digits and _ . : - (422 invalid_queue_name); a task's queue must "
    "exist (422 unknown_queue)")]
Level = Annotated[int, Field(ge=LEVELS[0], le=LEVELS[1])]
Skills = Annotated[dict[str, Any], Check(_skills, {
    "type": "object", "additionalProperties": {"type": "integer", "minimum": LEVELS[0],
                                               "maximum": LEVELS[1]}}, replace=True), Field(
    description="queue -> level 1..10 (422 bad_level); every queue must exist (422 "
    "unknown_queue); replaces the reviewer's skills")]
Reasons = Annotated[list[Any], Check(_reasons, {
    "type": "array", "maxItems": forms.MAX_ITEMS, "uniqueItems": True,
    "items": {"type": "string"}}, before=True, replace=True), Field(
    description="fail only: codes of the queue form's fail_reasons (422 invalid_verdict)")]
ChecklistAnswers = Annotated[dict[str, Any], Check(_checklist, {
    "type": "object", "maxProperties": forms.MAX_ITEMS,
    "additionalProperties": {"type": "boolean"}}, before=True, replace=True), Field(
    description="item id of the queue form's checklist -> true/false (422 invalid_verdict)")]
RelaxAfter = Annotated[int, Field(ge=0, le=10**7, description="seconds; null: never relax")]


def query_integer(low: int, high: int):
    """An integer in the query string: digits only (400), in range (422)."""
    return Annotated[int, Field(ge=low, le=high), Check(_query_integer, before=True)]


QueryFlag = Annotated[bool, Check(_query_flag, {"type": "boolean"}, before=True, replace=True)]


# --- review forms (forms.py) ------------------------------------------------------

_CODE = {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$", "maxLength": forms.MAX_CODE}
_LABEL = {"maxLength": forms.MAX_LABEL, "minLength": 1}


class _FormPart(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DisplayItem(_FormPart):
    field: Annotated[str, Field(min_length=1, max_length=forms.MAX_FIELD,
                                description="a key of the task's payload")]
    as_: Annotated[Literal[forms.DISPLAY_AS], Field(alias="as", description="how to show it")]


class ChecklistItem(_FormPart):
    id: Annotated[str, Field(json_schema_extra=_CODE, description="unique in the form")]
    label: Annotated[str, Field(json_schema_extra=_LABEL)]


class FailReason(_FormPart):
    code: Annotated[str, Field(json_schema_extra=_CODE, description="unique in the form")]
    label: Annotated[str, Field(json_schema_extra=_LABEL)]


class ReviewForm(_FormPart):
    """A queue's review form (docs/api.md, Review forms)."""
    display: Annotated[list[DisplayItem], Field(max_length=forms.MAX_ITEMS)] = []
    checklist: Annotated[list[ChecklistItem], Field(max_length=forms.MAX_ITEMS)] = []
    fail_reasons: Annotated[list[FailReason], Field(max_length=forms.MAX_ITEMS)] = []
    note_required_on_fail: bool = False


Form = Annotated[dict[str, Any] | None, Check(_form, {"anyOf": [
    {"$ref": "#/components/schemas/ReviewForm"}, {"type": "null"}]}, before=True,
    replace=True), Field(
    description="what reviewers are shown and what a verdict may say (422 invalid_form)")]
