"""Which problem a refusal reports when a request has several, as plain
functions (the REST tests pin each problem alone through a server): not an
object, then unknown fields, then the fields in the order they are declared,
then the rules on the body as a whole."""
import pytest
from werkzeug.datastructures import MultiDict

from qc_live.errors import QCError
from qc_live.schemas.requests import (Completion, NewTasks, NewUser, TaskChanges, TaskListing,
                                      UserChanges)

CONTEXT = {"max_payload_bytes": 100, "max_tasks": 10, "pause": lambda: None}


def refused(parse, data) -> tuple[int, str, str]:
    with pytest.raises(QCError) as error:
        parse(data)
    return error.value.status, error.value.code, error.value.message


def test_unknown_fields_come_first_all_named_in_one_error():
    status, code, message = refused(lambda d: Completion.parse(d), {
        "task_id": 0, "outcome": "maybe", "zeta": 1, "alpha": None})
    assert (status, code) == (400, "unknown_field")
    assert message.endswith("alpha, zeta")
    assert refused(lambda d: Completion.parse(d), [1])[:2] == (400, "not_an_object")


def test_the_first_field_declared_wins_whatever_its_status():
    # task_id before outcome before note: a 422 before a 400 stays a 422.
    assert refused(Completion.parse, {"note": 7, "outcome": "maybe", "task_id": 0})[:2] == \
        (422, "out_of_range")
    assert refused(Completion.parse, {"note": 7, "outcome": "maybe", "task_id": 1})[:2] == \
        (422, "bad_outcome")
    # null is an absent field: a required one is missing, an optional one is not given.
    assert refused(Completion.parse, {"task_id": None})[:2] == (400, "missing_field")
    assert Completion.parse({"task_id": 1, "note": None, "outcome": None}).note is None
    assert Completion.parse({"task_id": 1, "note": ""}).note is None


def test_a_list_reports_each_rows_first_problem_and_is_400_if_any_is():
    def parse(data):
        return NewTasks.from_request(data, CONTEXT)
    with pytest.raises(QCError) as error:
        parse([{"name": "ok"}, {"name": "", "priority": "1"}, {"name": "x", "priority": 10**9},
               {"name": "x", "payload": {"k": "v" * 200}}])
    assert (error.value.status, error.value.code) == (422, "invalid_tasks")
    assert [(row["index"], row["code"]) for row in error.value.extra["rows"]] == \
        [(1, "empty"), (2, "out_of_range"), (3, "payload_too_large")]
    assert refused(parse, [{"name": "ok"}, {"name": 1}, {"name": ""}])[:2] == \
        (400, "invalid_tasks")
    assert refused(parse, {"name": "", "priority": "1"})[:2] == (422, "empty")  # one object
    assert refused(parse, [{"name": "x"}] * 11)[:2] == (422, "too_many")


def test_patch_bodies_check_the_status_then_the_whole_then_the_fields():
    def parse(data):
        return TaskChanges.parse(data, CONTEXT)
    assert refused(parse, {})[:2] == (400, "empty_patch")
    assert refused(parse, {"status": "done", "name": None})[:2] == (422, "bad_status")
    assert refused(parse, {"status": 5, "name": ""})[:2] == (400, "wrong_type")
    assert refused(parse, {"status": "cancelled", "name": ""})[:2] == \
        (400, "cancel_with_changes")
    assert refused(parse, {"status": "cancelled", "colour": 1})[:2] == (400, "unknown_field")
    assert refused(parse, {"name": "", "priority": None})[:2] == (400, "wrong_type")
    assert parse({"status": "cancelled"}).changes() == {"status": "cancelled"}
    assert parse({"deadline": None, "name": " n "}).changes() == {"deadline": None, "name": "n"}


def test_a_weak_password_is_reported_after_every_other_field():
    body = {"username": "u1", "password": "short12"}
    assert refused(NewUser.parse, {**body, "role": "boss"})[:2] == (422, "bad_role")
    assert refused(NewUser.parse, {**body, "role": 1})[:2] == (400, "wrong_type")
    assert refused(NewUser.parse, body)[:2] == (422, "weak_password")
    assert refused(UserChanges.parse, {"username": "", "password": "short"})[:2] == \
        (422, "empty")
    assert refused(UserChanges.parse, {"active": 2})[:2] == (422, "out_of_range")
    assert UserChanges.parse({"active": 0}).active is False


def test_query_strings_unknown_then_repeated_then_values_in_order_then_the_cursor():
    def parse(*pairs):
        return TaskListing.from_args(MultiDict(pairs))
    assert refused(lambda p: parse(*p), [("limit", "0"), ("sort", "x"), ("order_by", "a"),
                                         ("order_by", "b")])[:2] == (400, "unknown_field")
    assert refused(lambda p: parse(*p), [("limit", "x"), ("order_by", "a"),
                                         ("order_by", "b")])[:2] == (400, "repeated_parameter")
    assert refused(lambda p: parse(*p), [("limit", "x"), ("order_by", "a"),
                                         ("status", "nope")])[:2] == (422, "bad_status")
    assert refused(lambda p: parse(*p), [("limit", "x"), ("order_by", "a")])[:2] == \
        (422, "bad_order")
    assert refused(lambda p: parse(*p), [("cursor", "x"), ("limit", "0")])[:2] == \
        (422, "out_of_range")
    assert refused(lambda p: parse(*p), [("cursor", "x")])[:2] == (400, "bad_cursor")
    query = parse(("status", "pending, assigned"), ("status", "pending"), ("limit", " +7 "))
    assert query.task_query().statuses == ("pending", "assigned")
    assert query.task_query().limit == 7
