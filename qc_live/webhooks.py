"""Webhook delivery: the courier every server process runs, the signature,
and the checks on a target.

The courier (one background task per process, started by Runtime.start)
looks for due outbox rows every QC_WEBHOOK_POLL_SECONDS, claims a few under
a lease (outbox.claim: a short transaction of its own, committed before any
request goes out), and POSTs each from a background task of its own, so a
slow receiver holds up neither the event loop (the stdlib's sockets are
green under gevent and eventlet), nor another delivery, nor any completion.
Each outcome is written back in another short transaction (outbox.settle).

A delivery is `POST <url>` with the JSON body stored in the outbox and
headers X-QC-Event, X-QC-Delivery (the event_id) and X-QC-Signature:
`sha256=` + the hex HMAC-SHA256 of the raw body with the subscription's
secret. Any 2xx is success. Redirects are not followed (a 3xx is a failure),
so a target cannot send the request elsewhere.

With QC_WEBHOOK_REFUSE_PRIVATE (production's default) a target is refused
when its host resolves to a private, loopback, link-local or otherwise
non-public address, at subscription and at every delivery; the connection
then goes to the very address that was checked, so a DNS answer that
changes in between cannot point it inward.
"""
import hashlib
import hmac
import http.client
import ipaddress
import logging
import socket
import ssl
from urllib.parse import urlsplit

from . import metrics, outbox
from .database import is_unavailable, run_write
from .errors import Invalid
from .extensions import db, socketio

log = logging.getLogger(__name__)

# Deliveries one process has in flight at once.
MAX_IN_FLIGHT = 16
MAX_URL = 2048
USER_AGENT = "qc_live-webhooks/1"


def signature(secret: str, body: bytes) -> str:
    """X-QC-Signature: sha256=<hex HMAC-SHA256 of the raw body with the secret>."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


# --- targets ---------------------------------------------------------------------

def check_url(url: str) -> str:
    """An http(s) URL with a host, or Invalid (422 invalid_url)."""
    if len(url) > MAX_URL:
        raise Invalid(f"'url' is longer than {MAX_URL} characters", code="invalid_url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        raise Invalid("'url' is not a valid URL", code="invalid_url") from None
    if parts.scheme not in ("http", "https"):
        raise Invalid("'url' must be an http or https URL", code="invalid_url")
    if not parts.hostname:
        raise Invalid("'url' has no host", code="invalid_url")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise Invalid("'url' must not contain spaces or control characters",
                      code="invalid_url")
    return url


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve(host: str, port: int, refuse_private: bool) -> list[tuple]:
    """The addresses to connect to (getaddrinfo's), each checked when
    `refuse_private`. Invalid (private_target, unresolvable_host)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise Invalid(f"the host {host!r} does not resolve ({error})",
                      code="unresolvable_host") from None
    if refuse_private:
        private = sorted({info[4][0] for info in found if not _is_public(info[4][0])})
        if private:
            raise Invalid(f"the host {host!r} resolves to a private or loopback address "
                          f"({', '.join(private)}), which this server refuses "
                          "(QC_WEBHOOK_REFUSE_PRIVATE)", code="private_target")
    return found


def check_target(url: str, refuse_private: bool) -> str:
    """POST /webhooks: the URL is well formed and, when private targets are
    refused, resolves to public addresses only."""
    check_url(url)
    if refuse_private:
        parts = urlsplit(url)
        resolve(parts.hostname, parts.port or _default_port(parts.scheme), True)
    return url


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


# --- one delivery ----------------------------------------------------------------

class _Pinned(http.client.HTTPConnection):
    """An HTTP(S) connection to an address already resolved and checked; TLS
    still verifies the certificate against the URL's host name."""

    def __init__(self, host, port, address, timeout, tls: bool):
        super().__init__(host, port, timeout=timeout)
        self.address, self.tls = address, tls
        self.default_port = _default_port("https" if tls else "http")  # for the Host header

    def connect(self):
        family, kind, proto, _, sockaddr = self.address
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(self.timeout)
            sock.connect(sockaddr)
            if self.tls:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def post(url: str, secret: str, event_id: str, kind: str, body: str, timeout: float,
         refuse_private: bool) -> str | None:
    """Send one delivery. None when the receiver answered 2xx, else what went
    wrong (for last_error). `timeout` bounds each network step."""
    raw = body.encode("utf-8")
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    port = parts.port or _default_port(parts.scheme)
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-QC-Event": kind, "X-QC-Delivery": event_id,
               "X-QC-Signature": signature(secret, raw)}
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        addresses = resolve(parts.hostname, port, refuse_private)
    except Invalid as refusal:
        return refusal.message
    error = "no address to connect to"
    for address in addresses:
        connection = _Pinned(parts.hostname, port, address, timeout, tls)
        try:
            connection.request("POST", path, body=raw, headers=headers)
            response = connection.getresponse()
            if 200 <= response.status < 300:
                return None
            return f"HTTP {response.status} {response.reason}"[:outbox.MAX_ERROR]
        except (OSError, http.client.HTTPException) as failure:
            error = f"{type(failure).__name__}: {failure}"
            if not isinstance(failure, ConnectionRefusedError):
                return error  # sent, perhaps: another address would send it twice
        finally:
            connection.close()
    return error


# --- the courier -------------------------------------------------------------------

class Courier:
    """One process's webhook deliveries (see the module docstring)."""

    def __init__(self, app, config, process_id: str):
        self.app = app
        self.config = config
        self.process_id = process_id
        # A lease outlives a delivery's slowest honest course (connect, send,
        # wait for the answer: each up to the timeout), so while this process
        # lives nobody else takes the row.
        self.lease_seconds = max(3 * config.webhook_timeout, config.webhook_timeout + 5)
        self.in_flight = 0
        self._running = False

    def start(self) -> None:
        if not self._running:
            self._running = True
            socketio.start_background_task(self._loop)

    def stop(self) -> None:
        self._running = False

    def _loop(self) -> None:
        failures = 0
        while self._running:
            socketio.sleep(self.config.webhook_poll_seconds)
            with self.app.app_context():
                try:
                    self.run_once()
                    failures = 0
                except Exception as exc:
                    db.session.rollback()
                    failures += 1
                    if failures == 1 or failures % 60 == 0:
                        log.log(logging.WARNING if is_unavailable(exc) else logging.ERROR,
                                "webhook courier failed (%d time(s)): %s", failures, exc)
                finally:
                    db.session.remove()

    def run_once(self, wait: bool = False) -> int:
        """Claim what is due (as much as there is room for in flight) and send
        each from a background task of its own (`wait`: here, one after the
        other: tests). Needs an app context. Returns how many were claimed."""
        room = MAX_IN_FLIGHT - self.in_flight
        if room <= 0 or not outbox.anything_due(db.session):
            return 0
        claimed = run_write(db.session, outbox.claim, self.process_id, self.lease_seconds, room)
        for delivery in claimed:
            self.in_flight += 1
            if wait:
                self._deliver(delivery)
            else:
                socketio.start_background_task(self._deliver, delivery)
        return len(claimed)

    def _deliver(self, delivery: dict) -> None:
        cfg = self.config
        try:
            error = post(delivery["url"], delivery["secret"], delivery["event_id"],
                         delivery["type"], delivery["body"], cfg.webhook_timeout,
                         cfg.webhook_refuse_private)
            with self.app.app_context():
                try:
                    status = run_write(db.session, outbox.settle, delivery["id"],
                                       self.process_id, error, cfg.webhook_retry_seconds)
                finally:
                    db.session.remove()
            metrics.webhook_attempt(status)
            if error is not None:
                log.info("webhook delivery %s (attempt %d) to %s: %s; %s",
                         delivery["event_id"], delivery["attempts"], delivery["url"], error,
                         status or "lease lost")
        except Exception:
            # Its lease runs out and the row is claimed again: at least once.
            log.exception("webhook delivery %s could not be settled", delivery["event_id"])
        finally:
            self.in_flight -= 1
