"""REST for webhook subscriptions (admins): subscribe, list, delete, read a
subscription's delivery log, redeliver an event. Delivery itself is the
courier's (webhooks.py); the events come from the outbox (outbox.py)."""
import sqlalchemy as sa
from flask import Blueprint, jsonify

from . import outbox, state, webhooks
from .api import api
from .auth import role_required
from .clock import iso
from .database import run_write
from .errors import Conflict, NotFound
from .extensions import db
from .models import MAX_ID, Role, Webhook
from .schemas.answers import Deliveries, Delivery, Webhooks
from .schemas.answers import Webhook as WebhookAnswer
from .schemas.requests import DeliveryListing, NewWebhook

bp = Blueprint("webhooks", __name__)


def webhook_dict(webhook: Webhook) -> dict:
    """A subscription as the API shows it: never its secret."""
    return {"id": webhook.id, "url": webhook.url, "events": list(webhook.events),
            "created_at": iso(webhook.created_at)}


def _webhook(webhook_id: int, active: bool = False) -> Webhook:
    webhook = db.session.get(Webhook, webhook_id) if webhook_id <= MAX_ID else None
    if webhook is None or (active and not webhook.active):
        raise NotFound(f"webhook {webhook_id} does not exist", code="webhook_not_found")
    return webhook


@bp.post("/webhooks")
@role_required(Role.ADMIN)
@api("Subscribe a URL to task events", "an admin", body=NewWebhook,
     answers={201: (WebhookAnswer, "the subscription (its secret is never shown again)")},
     errors=(401, 403),
     description="Each event is POSTed to `url` as JSON {event_id, type, at, task} with the "
     "headers X-QC-Event, X-QC-Delivery (the event_id) and X-QC-Signature: sha256=<hex "
     "HMAC-SHA256 of the raw body with the secret>. At least once: receivers deduplicate by "
     "event_id. Any 2xx is success; anything else (a redirect too) is retried with "
     "exponential back-off and jitter for 24 hours, then marked failed.")
def create_webhook(body: NewWebhook):
    webhooks.check_target(body.url, state.config().webhook_refuse_private)

    def add(session):
        webhook = Webhook(url=body.url, events=list(body.events), secret=body.secret,
                          active=True)
        session.add(webhook)
        session.flush()
        return webhook_dict(webhook)
    return jsonify(run_write(db.session, add)), 201


@bp.get("/webhooks")
@role_required(Role.ADMIN)
@api("List webhook subscriptions", "an admin", errors=(401, 403),
     answers={200: (Webhooks, "the active subscriptions, oldest first")})
def list_webhooks():
    found = db.session.scalars(sa.select(Webhook).where(Webhook.active.is_(True))
                               .order_by(Webhook.id)).all()
    answer = [webhook_dict(w) for w in found]
    db.session.rollback()
    return jsonify({"webhooks": answer})


@bp.delete("/webhooks/<int:webhook_id>")
@role_required(Role.ADMIN)
@api("Delete a webhook subscription", "an admin", errors=(401, 403, 404),
     answers={204: (None, "deleted: no new events; what was still pending is marked failed")},
     description="Its delivery log stays readable.")
def delete_webhook(webhook_id: int):
    if webhook_id > MAX_ID or not run_write(db.session, outbox.stop_subscription, webhook_id):
        raise NotFound(f"webhook {webhook_id} does not exist", code="webhook_not_found")
    return "", 204


@bp.get("/webhooks/<int:webhook_id>/deliveries")
@role_required(Role.ADMIN)
@api("A subscription's delivery log", "an admin", query=DeliveryListing,
     answers={200: (Deliveries, "its deliveries, newest first")}, errors=(401, 403, 404))
def list_deliveries(webhook_id: int, query: DeliveryListing):
    _webhook(webhook_id)
    return jsonify({"deliveries": outbox.delivery_log(db.session, webhook_id, query.status,
                                                      query.limit)})


@bp.post("/webhooks/<int:webhook_id>/deliveries/<event_id>/redeliver")
@role_required(Role.ADMIN)
@api("Send an event again", "an admin", errors=(401, 403, 404, 409),
     answers={202: (Delivery, "pending again, sent at once (same event_id and body) and "
                    "retried for another 24 hours")})
def redeliver(webhook_id: int, event_id: str):
    if not _webhook(webhook_id).active:
        raise Conflict(f"webhook {webhook_id} was deleted", code="webhook_deleted")
    give_up = state.config().webhook_give_up_seconds
    # No event_id is longer than 36 characters: a longer one names nothing.
    found = run_write(db.session, outbox.redeliver, webhook_id, event_id, give_up) \
        if len(event_id) <= 36 else None
    if found is None:
        raise NotFound(f"webhook {webhook_id} has no event {event_id!r}",
                       code="delivery_not_found")
    return jsonify(found), 202
