"""Review forms: what a queue's reviewers are shown and what their verdicts
may say (docs/api.md, "Review forms").

A queue's `form` (NULL: none) names the payload fields to display and how,
a checklist, the fail reasons and whether a fail needs a note. `check_form`
is the rule on a form as a supervisor sends it; `check_verdict` the rule on
a completion against the form of the task's queue, as it is when the
completion runs (lifecycle.finish reads it in the completing transaction).
`forms_of` reads the forms of some queues, for the offers (notify.py) and
the REST answers that carry one.
"""
import re

import sqlalchemy as sa

from . import sql
from .errors import BadRequest, Invalid
from .text import check_text

DISPLAY_AS = ("image", "link", "text", "json", "iframe")
MAX_ITEMS = 50  # display entries, checklist items, fail reasons: each
MAX_CODE = 64
MAX_LABEL = 200
MAX_FIELD = 255
CODE = re.compile(r"[A-Za-z0-9_.-]+")
KEYS = ("display", "checklist", "fail_reasons", "note_required_on_fail")


def _bad(message: str) -> Invalid:
    return Invalid(message, code="invalid_form")


def _text(value, where: str, max_length: int) -> str:
    if not isinstance(value, str):
        raise _bad(f"'form.{where}' must be a string")
    try:
        return check_text(value, f"form.{where}", max_length)
    except BadRequest as error:  # not valid Unicode: still the form's problem
        raise _bad(error.message) from None
    except Invalid as error:
        raise _bad(error.message) from None


def _items(form: dict, key: str, keys: tuple[str, ...]) -> list[dict]:
    items = form.get(key, [])
    if not isinstance(items, list):
        raise _bad(f"'form.{key}' must be a list")
    if len(items) > MAX_ITEMS:
        raise _bad(f"'form.{key}' has {len(items)} entries; at most {MAX_ITEMS}")
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _bad(f"'form.{key}[{index}]' must be an object with {' and '.join(keys)}")
        unknown = sorted(set(item) - set(keys))
        missing = [k for k in keys if k not in item]
        if unknown or missing:
            what = (f"unknown key(s) {', '.join(map(repr, unknown))}" if unknown
                    else f"{', '.join(map(repr, missing))} missing")
            raise _bad(f"'form.{key}[{index}]': {what} (give {' and '.join(keys)})")
    return items


def _coded(form: dict, key: str, code_key: str) -> list[dict]:
    """Checklist items ({id, label}) or fail reasons ({code, label}): codes
    short, of letters, digits and _ . -, unique; labels one line."""
    result, seen = [], set()
    for index, item in enumerate(_items(form, key, (code_key, "label"))):
        where = f"{key}[{index}]"
        code = item[code_key]
        if not isinstance(code, str) or not CODE.fullmatch(code) or len(code) > MAX_CODE:
            raise _bad(f"'form.{where}.{code_key}' must be 1 to {MAX_CODE} letters, digits and "
                       f"_ . -, not {str(code)[:80]!r}")
        if code in seen:
            raise _bad(f"'form.{where}.{code_key}': {code!r} is given twice; {code_key}s are "
                       "unique")
        seen.add(code)
        result.append({code_key: code,
                       "label": _text(item["label"], f"{where}.label", MAX_LABEL)})
    return result


def check_form(form) -> dict:
    """A form as stored: every key present (display, checklist and
    fail_reasons default to [], note_required_on_fail to false). Raises
    Invalid `invalid_form`, the message naming the first problem."""
    if not isinstance(form, dict):
        raise _bad("'form' must be an object (or null: no form)")
    unknown = sorted(set(form) - set(KEYS))
    if unknown:
        raise _bad(f"'form': unknown key(s) {', '.join(map(repr, unknown))}; a form has "
                   f"{', '.join(KEYS)}")
    display = []
    for index, item in enumerate(_items(form, "display", ("field", "as"))):
        field = _text(item["field"], f"display[{index}].field", MAX_FIELD)
        if item["as"] not in DISPLAY_AS:
            raise _bad(f"'form.display[{index}].as' must be one of {', '.join(DISPLAY_AS)}, "
                       f"not {str(item['as'])[:80]!r}")
        display.append({"field": field, "as": item["as"]})
    required = form.get("note_required_on_fail", False)
    if not isinstance(required, bool):
        raise _bad("'form.note_required_on_fail' must be true or false")
    return {"display": display, "checklist": _coded(form, "checklist", "id"),
            "fail_reasons": _coded(form, "fail_reasons", "code"),
            "note_required_on_fail": required}


# --- verdicts --------------------------------------------------------------------

def _refuse(message: str) -> Invalid:
    return Invalid(message, code="invalid_verdict")


def check_verdict(form: dict | None, outcome: str | None, note: str | None,
                  reasons: list | None, checklist: dict | None) -> None:
    """A completion's verdict against the form of its task's queue (None:
    the queue has none). Raises Invalid `invalid_verdict`, saying why:
    reasons with an outcome other than fail, twice the same reason, a
    reason not in the form; a fail without a reason when the form lists
    some, or without a note when the form requires one; a checklist id not
    in the form, or an answer that is not true or false."""
    form = form or {}
    if reasons:
        if outcome != "fail":
            raise _refuse(f"'reasons' go with outcome \"fail\" only, not "
                          f"{'no outcome' if outcome is None else repr(outcome)}")
        codes = {r["code"] for r in form.get("fail_reasons", ())}
        seen = set()
        for reason in reasons:
            if not isinstance(reason, str) or reason not in codes:
                known = (f"; the form's codes: {', '.join(sorted(codes))}" if codes
                         else "; this task's queue has no fail reasons")
                raise _refuse(f"'reasons': {str(reason)[:80]!r} is not a fail reason of "
                              f"the form{known}")
            if reason in seen:
                raise _refuse(f"'reasons': {reason!r} is given twice")
            seen.add(reason)
    if outcome == "fail":
        if form.get("fail_reasons") and not reasons:
            raise _refuse("a fail needs at least one of the form's reasons ('reasons')")
        if form.get("note_required_on_fail") and not (note or "").strip():
            raise _refuse("the form requires a note on a fail ('note')")
    if checklist:
        ids = {item["id"] for item in form.get("checklist", ())}
        for item, answer in checklist.items():
            if item not in ids:
                raise _refuse(f"'checklist': {item[:80]!r} is not an item of the form"
                              + ("" if ids else "; this task's queue has no checklist"))
            if not isinstance(answer, bool):
                raise _refuse(f"'checklist': the answer for {item!r} must be true or false")


def verdict_needs_form(outcome: str | None, reasons, checklist) -> bool:
    """Whether the form matters to this verdict: a pass (or no outcome)
    without reasons or checklist is valid whatever the form says, and the
    completion skips reading it."""
    return outcome == "fail" or bool(reasons) or bool(checklist)


# --- reading ------------------------------------------------------------------------

def forms_of(session_or_conn, queues) -> dict[str, dict | None]:
    """{queue name: its form or None} for these queue names (one read)."""
    names = sorted(set(queues))
    if not names:
        return {}
    rows = session_or_conn.execute(sa.select(sql.queues.c.name, sql.queues.c.form)
                                   .where(sql.queues.c.name.in_(names)))
    return {name: form for name, form in rows}


def form_of(session_or_conn, queue: str) -> dict | None:
    """The form of one queue (None: none, or no such queue)."""
    return session_or_conn.execute(sql.FORM_OF, {"queue": queue}).scalar()

