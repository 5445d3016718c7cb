"""The reviewer's REST fallback (and the original portal's endpoints).

Everything a socket does, over plain HTTP, each call one transaction. A
reviewer with no socket who calls these is "seen" now: its grace period
restarts (presence.seen_over_rest), so a REST-only client keeps its task by
calling at least every QC_GRACE_SECONDS (GET /me/task is enough). A task in
an answer has reached the reviewer: that is its acknowledgement.
"""
from flask import Blueprint, jsonify
from flask_jwt_extended import current_user

from . import forms, metrics, presence, state
from .auth import role_required
from .errors import Forbidden
from .extensions import db
from .api import api
from .models import Role
from .schemas.answers import AvailabilitySet, Completed, HeldTask
from .schemas.requests import Availability, Completion

bp = Blueprint("reviewer_api", __name__)


@bp.get("/me/task")
@role_required(Role.REVIEWER, exact=True)
@api("The task you hold", "a reviewer",
     answers={200: (HeldTask, "the task or null, and the form of its queue")},
     errors=(401, 403))
def my_task():
    return jsonify(state.dispatcher().my_task(db.session, current_user.id))


@bp.post("/complete_task")
@role_required(Role.REVIEWER, exact=True)
@api("Complete your task", "a reviewer, for its own task", body=Completion,
     answers={200: (Completed, "the completed and the next task, and the next task's form")},
     errors=(401, 403, 404, 409, 422),
     description="reasons and checklist are checked against the form of the task's queue as "
     "it is at completion: 422 invalid_verdict, and nothing changes (the task stays yours).")
def complete_task(body: Completion):
    started = metrics.clock()
    task_id, outcome, note, user_id = body.task_id, body.outcome, body.note, body.user_id
    if user_id is not None and user_id != current_user.id:
        raise Forbidden("reviewers complete their own tasks only", code="not_your_task")
    result = state.dispatcher().complete(db.session, current_user.id, task_id, outcome, note,
                                         over_rest=True, reasons=body.reasons,
                                         checklist=body.checklist)
    metrics.completed("rest", outcome, result, started)
    state.notifier().push(result)
    nxt = result.value["next_task"]
    message = (f"task {task_id} completed; next task {nxt['id']} assigned" if nxt
               else f"task {task_id} completed; no task is pending")
    try:
        next_form = forms.form_of(db.session, nxt["queue"]) if nxt else None
    finally:
        db.session.rollback()
    return jsonify({"message": message, **result.value, "next_form": next_form})


@bp.put("/availability")
@role_required(Role.REVIEWER)
@api("Pause or resume a reviewer", "a reviewer for itself; a supervisor for any reviewer",
     body=Availability, answers={200: (AvailabilitySet, "the new state")},
     errors=(401, 403, 404))
def availability(body: Availability):
    available, target = body.availability, body.user_id
    me = current_user.id
    dispatcher = state.dispatcher()
    if target is None or target == me:
        if current_user.role != Role.REVIEWER.value:
            raise Forbidden("give the user_id of the reviewer to pause or resume",
                            code="not_a_reviewer")
        outcome = dispatcher.set_availability(db.session, me, available, claim=True,
                                              over_rest=True)
        target = me
    else:
        if Role(current_user.role).rank < Role.SUPERVISOR.rank:
            raise Forbidden("reviewers set their own availability only")
        online = presence.is_online(db.session, target, dispatcher.lease_seconds)
        outcome = dispatcher.set_availability(db.session, target, available, claim=online)
    state.notifier().push(outcome)
    word = "available" if available else "paused"
    return jsonify({"message": f"reviewer {target} is {word}",
                    "availability": int(available), "user_id": target,
                    "task": outcome.value["task"]})
