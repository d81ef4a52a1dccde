"""POST /websub: subscription requests, checked now, verified with the subscriber later.

A valid request is answered 202 at once; a worker greenlet then asks the callback to
echo a random challenge, and only an exact echo stores (or removes) the subscription.
Anything wrong with the request is a 4xx with a one-line reason, before any callback
is called.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass

from flask import Blueprint, Response
from werkzeug.exceptions import (
    BadRequest,
    NotFound,
    ServiceUnavailable,
    TooManyRequests,
)

from feeds.http.body import read_form
from feeds.http.routes import base_url
from feeds.http.served import current, current_site
from feeds.publish.urls import HUB_PATH
from feeds.settings import Settings
from feeds.stores import STORE_ERRORS
from feeds.websub import client
from feeds.websub.store import Limits, Subscription, SubscriptionStore
from feeds.websub.topics import UnknownTopic, topic_feed

log = logging.getLogger("feeds.websub")
blueprint = Blueprint("websub", __name__)

DEFAULT_LEASE_SECONDS = 10 * 86400
MAX_LEASE_SECONDS = 30 * 86400
MAX_SECRET_BYTES = 199  # the Recommendation: less than 200 bytes
MAX_REQUEST_BYTES = 8192  # declared or chunked: no more is ever read
MAX_VERIFICATIONS = 256  # under way at once, per worker
VERIFICATIONS_PER_HOST = 4  # under way at once with one callback host, per worker
RETRY_AFTER_SECONDS = 30

_verifications = client.HostSlots(VERIFICATIONS_PER_HOST, MAX_VERIFICATIONS)


@dataclass(frozen=True, slots=True)
class Intent:
    mode: str  # subscribe or unsubscribe
    callback: str
    topic: str
    lease_seconds: int
    secret: str


@blueprint.route(HUB_PATH, methods=["POST"])
def hub() -> Response:
    site = current_site()
    settings = site.settings
    if settings.websub_hub_url:
        raise NotFound(f"this server's hub is {settings.websub_hub_url}")
    intent = parse_intent(settings)
    base = base_url(site)  # FEEDS_BASE_URL, else the origin this request came to
    try:
        topic_feed(site, intent.topic, base)  # ForeignTopic for a URL of another origin
    except UnknownTopic as unknown:
        raise BadRequest(str(unknown)) from None
    try:
        callback = client.resolve(intent.callback, settings.websub_allow_private_callbacks)
    except client.CallbackRefused as refused:
        raise BadRequest(str(refused)) from None
    host = client.host_key(callback)
    try:
        store = current().runtime.hub.get()
        check_store(store, intent, Limits.from_settings(settings), host)
    except STORE_ERRORS as error:
        log.warning("websub store unavailable: %s: %s", error.__class__.__name__, error)
        raise ServiceUnavailable(
            "the hub cannot store subscriptions right now; try again later",
            retry_after=RETRY_AFTER_SECONDS,
        ) from None
    if not _verifications.acquire(host):
        raise TooManyRequests(
            "too many verifications under way for this callback's host; try again later",
            retry_after=RETRY_AFTER_SECONDS,
        )
    threading.Thread(
        target=_verify_then_release, args=(store, intent, callback, host, settings), daemon=True
    ).start()
    return Response("202 Accepted: verification of intent follows\n", 202, mimetype="text/plain")


def check_store(store: SubscriptionStore, intent: Intent, limits: Limits, host: str) -> None:
    """Refuse now what the store would refuse after verification (a quota: the hub's, the
    callback host's, the topic's); a store that is down, locked or read-only raises one of
    STORE_ERRORS."""
    store.check_writable()
    if intent.mode == "subscribe":
        refused = store.refusal(intent.callback, intent.topic, host, limits)
        if refused:
            raise TooManyRequests(refused, retry_after=RETRY_AFTER_SECONDS)
    elif store.get(intent.callback, intent.topic) is None:
        raise BadRequest("no subscription of this hub.callback to this hub.topic")


def parse_intent(settings: Settings) -> Intent:
    fields = {}
    posted = read_form(MAX_REQUEST_BYTES)
    for name in ("hub.mode", "hub.callback", "hub.topic", "hub.lease_seconds", "hub.secret"):
        values = posted.getlist(name)
        if len(values) > 1:
            raise BadRequest(f"{name} is given more than once")
        fields[name] = values[0] if values else ""
    mode = fields["hub.mode"]
    if mode not in ("subscribe", "unsubscribe"):
        raise BadRequest("hub.mode must be subscribe or unsubscribe")
    for name in ("hub.callback", "hub.topic"):
        if not fields[name]:
            raise BadRequest(f"{name} is required")
    secret = fields["hub.secret"]
    if len(secret.encode("utf-8")) > MAX_SECRET_BYTES:
        raise BadRequest("hub.secret must be less than 200 bytes")
    return Intent(
        mode, fields["hub.callback"], fields["hub.topic"], lease(fields, settings), secret
    )


def lease(fields: dict[str, str], settings: Settings) -> int:
    """The asked lease, within [minimum, 30 days]; 10 days when none is asked."""
    text = fields["hub.lease_seconds"]
    if not text:
        return DEFAULT_LEASE_SECONDS
    if not re.fullmatch(r"[0-9]{1,12}", text):  # isdigit() accepts "²" and "١٢٣"
        raise BadRequest("hub.lease_seconds must be a whole number of seconds")
    return max(settings.websub_min_lease_seconds, min(int(text), MAX_LEASE_SECONDS))


def _verify_then_release(
    store: SubscriptionStore,
    intent: Intent,
    callback: client.Callback,
    host: str,
    settings: Settings,
) -> None:
    try:
        verify(store, intent, callback, host, settings)
    except STORE_ERRORS as error:
        log.warning("verified %s but the store failed: %s", intent.callback, error)
    except Exception:  # a greenlet must not die silently
        log.exception("verification of %s for %s failed", intent.callback, intent.topic)
    finally:
        _verifications.release(host)


def verify(
    store: SubscriptionStore,
    intent: Intent,
    callback: client.Callback,
    host: str,
    settings: Settings,
) -> bool:
    """Ask the callback to echo a challenge; only an exact echo changes the store."""
    challenge = secrets.token_urlsafe(32)
    params = {"hub.mode": intent.mode, "hub.topic": intent.topic, "hub.challenge": challenge}
    if intent.mode == "subscribe":
        params["hub.lease_seconds"] = str(intent.lease_seconds)
    path = client.with_query(callback.path, params)
    try:
        reply = client.call(
            callback, "GET", path, None, {}, total_seconds=settings.websub_timeout_seconds
        )
    except client.CALL_ERRORS as error:
        log.info("not verified: %s %s: %s", intent.mode, intent.callback, error)
        return False
    if not 200 <= reply.status < 300 or reply.body != challenge.encode():
        log.info("not verified: %s %s answered %d", intent.mode, intent.callback, reply.status)
        return False
    if intent.mode == "unsubscribe":
        store.remove(intent.callback, intent.topic)
        log.info("unsubscribed %s from %s", intent.callback, intent.topic)
        return True
    expires_at = time.time() + intent.lease_seconds
    subscription = Subscription(intent.callback, intent.topic, intent.secret, expires_at, host)
    refused = store.put(subscription, Limits.from_settings(settings))
    if refused:
        log.warning("subscription of %s refused: %s", intent.callback, refused)
        return False
    log.info("subscribed %s to %s for %ds", intent.callback, intent.topic, intent.lease_seconds)
    return True
