"""How a request is checked: strict pydantic models (`Body`, `Changes`,
`Query`), rules of our own on a field (`Check`), and pydantic's errors as the
contract's (`problems`)."""
import json
import math
from typing import Callable, ClassVar, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator
from pydantic_core import PydanticCustomError, core_schema

from ..errors import BadRequest, Invalid, QCError
from ..text import ONE_LINE, check_text


# --- JSON as the API accepts it -------------------------------------------------

def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400: the databases' JSON cannot store it
        raise ValueError(f"number out of range: {text}")
    return value


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def strict_json(text):
    """Parse JSON as the API accepts it. NaN and Infinity are not JSON (RFC
    8259); Python would accept them, echo them back unparseable, and MySQL's
    JSON columns refuse them. Raises ValueError (or RecursionError)."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)


# --- rules of our own on a field -------------------------------------------------

def problem(error: QCError) -> PydanticCustomError:
    """A refusal raised inside validation, carried with its status."""
    return PydanticCustomError(error.code, "{message}",
                               {"message": error.message, "status": error.status})


class Check:
    """A rule of our own on a field, run by pydantic after the field's type
    check (or before it with `before=True`, to convert a value first):
    `function(value, field name, validation context)` returns the value or
    raises a QCError. `schema` is what the rule means in the field's JSON
    schema: merged into the generated one, or in place of it (`replace`)."""

    def __init__(self, function: Callable, schema: dict | None = None, before: bool = False,
                 replace: bool = False):
        self.function, self.schema, self.before, self.replace = function, schema, before, replace

    def __get_pydantic_core_schema__(self, source, handler):
        wrap = (core_schema.with_info_before_validator_function if self.before
                else core_schema.with_info_after_validator_function)
        return wrap(self._run, handler(source))

    def _run(self, value, info):
        try:
            return self.function(value, info.field_name, info.context or {})
        except QCError as error:
            raise problem(error) from None

    def __get_pydantic_json_schema__(self, schema, handler):
        if self.replace:
            return dict(self.schema)
        return {**handler(schema), **(self.schema or {})}


def text(max_length: int = 255, allow_empty: bool = False, strip: bool = False,
         kind: str = ONE_LINE) -> Check:
    """A string's rules (text.check_text): Unicode, blank, length, characters."""
    def check(value, name, _context):
        return check_text(value, name, max_length, allow_empty, strip, kind)
    schema = {"maxLength": max_length, **({} if allow_empty else {"minLength": 1})}
    return Check(check, schema)


def one_of(values, code: str, message: str | None = None, strip: bool = False) -> Check:
    """A string that must be one of `values` (422 `code` otherwise)."""
    def check(value, name, _context):
        value = value.strip() if strip else value
        if value not in values:
            raise Invalid(message or f"'{name}' must be one of {', '.join(values)}", code=code)
        return value
    return Check(check, {"type": "string", "enum": list(values)}, replace=True)


# --- pydantic's errors as the contract's ----------------------------------------

# pydantic's error type -> status, code, and what follows the field's name.
_PYDANTIC_ERRORS = {
    "missing": (400, "missing_field", "is required"),
    "int_type": (400, "wrong_type", "must be an integer"),
    "string_type": (400, "wrong_type", "must be a string"),
    "bool_type": (400, "wrong_type", "must be a boolean or 0/1"),
    "dict_type": (400, "wrong_type", "must be a JSON object"),
    "list_type": (400, "wrong_type", "must be a list"),
    "greater_than_equal": (422, "out_of_range", "must be at least {ge}"),
    "less_than_equal": (422, "out_of_range", "must be at most {le}"),
}


def _error(status: int, code: str, message: str) -> QCError:
    return (BadRequest if status == 400 else Invalid)(message, code=code)


def problems(error: ValidationError, shape) -> list[tuple[str | None, QCError]]:
    """(field, error) for each problem pydantic found in `shape`'s input, the
    one to report first first: not an object; unknown fields (all named in
    one); then the rest in the order the fields are declared."""
    unknown, found = [], []
    for item in error.errors(include_url=False):
        loc, kind, context = item["loc"], item["type"], item.get("ctx") or {}
        name = loc[0] if loc and isinstance(loc[0], str) else None
        if kind == "model_type":
            return [(None, BadRequest(f"the {shape.where} must be a JSON object",
                                      code="not_an_object"))]
        if kind == "extra_forbidden":
            unknown.append(name)
        elif "status" in context and "message" in context:  # one of ours (problem)
            found.append((name, _error(context["status"], kind, context["message"])))
        elif kind in _PYDANTIC_ERRORS:
            status, code, tail = _PYDANTIC_ERRORS[kind]
            found.append((name, _error(status, code, f"'{name}' {tail.format(**context)}")))
        else:  # a type error of a kind no field here produces yet
            found.append((name, BadRequest(f"'{name}': {item['msg']}", code="wrong_type")))
    if unknown:
        found.insert(0, (None, BadRequest(shape.unknown_message(sorted(unknown)),
                                          code="unknown_field")))
    return found


# --- what clients send -------------------------------------------------------------

class Shape(BaseModel):
    """Something a client sends, checked strictly."""
    model_config = ConfigDict(strict=True, extra="forbid")
    where: ClassVar[str] = "body"

    @classmethod
    def unknown_message(cls, names: list[str]) -> str:
        return f"unknown field(s) in the {cls.where}: {', '.join(names)}"

    @classmethod
    def parse(cls, data, context: dict | None = None):
        """The model of `data`, or the first problem raised as a QCError."""
        try:
            return cls.model_validate(data, context=context)
        except ValidationError as error:
            raise problems(error, cls)[0][1] from None


class Body(Shape):
    """A JSON object. null stands for an absent field."""

    @model_validator(mode="before")
    @classmethod
    def _whole(cls, data):
        if isinstance(data, dict) and None in data.values():
            return {key: value for key, value in data.items()
                    if value is not None or key not in cls.model_fields}
        return data

    @classmethod
    def from_request(cls, data, context: dict):
        return cls.parse(data, context)


class Changes(Body):
    """A PATCH body: the fields to change, at least one. null is refused
    except for the fields in `nullable` (where it clears the value); read
    what was sent with `model_fields_set`."""
    model_config = ConfigDict(json_schema_extra={"minProperties": 1})
    nullable: ClassVar[frozenset] = frozenset()

    @model_validator(mode="before")
    @classmethod
    def _whole(cls, data):
        if isinstance(data, dict) and set(data) <= cls.model_fields.keys():
            if not data:
                names = list(cls.model_fields)
                raise problem(BadRequest(f"nothing to change: give {', '.join(names[:-1])} "
                                         f"or {names[-1]}", code="empty_patch"))
            cls.check_whole(data)
        return data

    @classmethod
    def check_whole(cls, data: dict) -> None:
        """Rules on the body as a whole, once its fields are all known ones."""
        for name in cls.model_fields:
            if data.get(name, ...) is None and name not in cls.nullable:
                raise problem(BadRequest(f"'{name}' cannot be null", code="wrong_type"))


class Query(Shape):
    """A query string. Unknown parameters are refused like unknown fields, and
    so is a parameter given twice unless its type is a list."""
    where: ClassVar[str] = "query"

    @classmethod
    def unknown_message(cls, names: list[str]) -> str:
        return f"unknown query parameter(s): {', '.join(names)}"

    @classmethod
    def from_args(cls, args):
        unknown = sorted(set(args) - cls.model_fields.keys())
        if unknown:
            raise BadRequest(cls.unknown_message(unknown), code="unknown_field")
        params = {}
        for name in args:
            values = args.getlist(name)
            if get_origin(cls.model_fields[name].annotation) is list:
                params[name] = values
            elif len(values) > 1:
                raise BadRequest(f"'{name}' is given more than once",
                                 code="repeated_parameter")
            else:
                params[name] = values[0]
        return cls.parse(params)
