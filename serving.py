"""The web server `run.py` starts, and what qc_live needs of it at the transport.

Besides `run.py`, this is the only module that imports eventlet or gevent
(qc_live/ runs under every async mode, and in unit tests under none); `run.py`
imports it after monkey-patching. What it sets, under eventlet and gevent alike:

- **WebSocket messages** are held to Engine.IO's limit (`max_http_buffer_size`,
  1 MB) while they arrive, whole messages across continuation frames included,
  so a message over it costs at most 1 MB before its socket is closed (1009).
  A client sending without pause can neither keep the event loop for itself
  nor pile messages up: the reader gives the loop a turn after each frame
  (eventlet) or every 64 KiB of messages read back to back (gevent), and stops
  reading while messages wait for Engine.IO. gevent gets the limit from
  simple-websocket; under eventlet, its own frame reader is replaced: it
  checks each frame only, and unmasks byte by byte in Python (0.24 s of the
  loop per 1 MB frame here, 4 ms as one XOR). A WebSocket the server closes
  closes its connection too, whether or not the client answers the closing
  handshake.
- **Request line and headers** must arrive within `QC_HEADER_TIMEOUT` seconds
  of the connection's accept, or of the end of its previous response (idle
  keep-alive), or the connection is closed. A live WebSocket or a long-polling
  request is past its headers, so it is never cut by this.
- **Connections** beyond `QC_MAX_CONNECTIONS` wait in the kernel's accept queue
  until one closes.
- The server's own answers to requests it cannot parse (URI or header too
  long, malformed request line or headers) are the JSON error shape, and every
  response carries `X-Content-Type-Options: nosniff`; their log lines go to the
  logger `qc_live.http`, at most one per kind every 10 s (`qc_live.log_limits`).

docs/deploy.md ("Async mode") has the measurements behind these choices.
"""
import http.client
import json
import logging
import socket
import time
from http import HTTPStatus

from qc_live import socketio
from qc_live.listener import listening_socket
from qc_live.log_limits import limit_repeats

http_log = logging.getLogger("qc_live.http")
limit_repeats(http_log)

# The server's own refusals: (status, code, message).
URI_TOO_LONG = (414, "uri_too_long", "the request line is longer than 8,192 bytes")
HEADERS_TOO_LARGE = (431, "headers_too_large", "the request's headers are too large")
BAD_REQUEST = (400, "bad_request", "malformed HTTP request")


class HeaderTimeout(BaseException):
    """The request line and headers did not arrive in time. A BaseException, like
    the async libraries' own timeouts: the servers' `except Exception` clauses
    must not turn it into a 400 answer to a client that has stopped talking."""


def bind(config) -> socket.socket:
    """The listening socket, made before anything is announced or started."""
    return listening_socket(config.host, config.port)


def serve(app, config, listener: socket.socket) -> None:
    """Run the web server of the async mode on `listener` until the process stops."""
    wsgi_app = nosniff(app)
    max_message = int(socketio.server.eio.max_http_buffer_size)
    if config.async_mode == "eventlet":
        _serve_eventlet(wsgi_app, config, listener, max_message)
    elif config.async_mode == "gevent":
        _serve_gevent(wsgi_app, config, listener, max_message)
    else:
        _serve_threading(wsgi_app, listener, max_message)


def nosniff(app):
    """Every response says X-Content-Type-Options: nosniff, including those
    Engine.IO answers without Flask."""
    def wrapped(environ, start_response):
        def start(status, headers, exc_info=None):
            if not any(name.lower() == "x-content-type-options" for name, _ in headers):
                headers = [*headers, ("X-Content-Type-Options", "nosniff")]
            return start_response(status, headers, exc_info)
        return app(environ, start)
    return wrapped


def error_response(refusal) -> bytes:
    """A complete HTTP response for one of the server's own refusals."""
    status, code, message = refusal
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n"
            "X-Content-Type-Options: nosniff\r\n"
            "Connection: close\r\n\r\n")
    return head.encode("latin-1") + body


# --- eventlet ---------------------------------------------------------------

def _serve_eventlet(app, config, listener, max_message: int) -> None:
    import eventlet
    import eventlet.wsgi
    import eventlet.websocket
    from engineio.async_drivers import eventlet as driver

    header_timeout = config.header_timeout or None

    class Protocol(eventlet.wsgi.HttpProtocol):
        deadline = None

        def handle_one_request(self):
            self.deadline = eventlet.Timeout(header_timeout, HeaderTimeout())
            try:
                super().handle_one_request()
            except HeaderTimeout:
                self.close_connection = 1
            finally:
                self.deadline.cancel()

        def get_environ(self):
            self.deadline.cancel()  # headers complete: the request may now take its time
            return super().get_environ()

        # eventlet answers these with a bare status line and an empty body.
        def _read_request_line(self):
            line = super()._read_request_line()
            if len(line) >= self.server.url_length_limit:
                self._refuse(URI_TOO_LONG)
                return b""
            return line

        def parse_request(self):
            try:
                if not super().parse_request():
                    return False
            except (eventlet.wsgi.HeaderLineTooLong, eventlet.wsgi.HeadersTooLarge):
                self._refuse(HEADERS_TOO_LARGE)
                return False
            # What eventlet checks next, answered here first.
            length = self.headers.get("content-length")
            if length is not None:
                try:
                    valid = int(length) >= 0 and self.headers.get("transfer-encoding") is None
                except ValueError:
                    valid = False
                if not valid:
                    self._refuse(BAD_REQUEST)
                    return False
            return True

        def send_error(self, code, message=None, explain=None):
            # http.server's HTML error page, for a malformed request line or headers.
            self._refuse(HEADERS_TOO_LARGE if code == 431 else BAD_REQUEST)

        def _refuse(self, refusal):
            self.close_connection = 1
            try:
                self.wfile.write(error_response(refusal))
                self.wfile.flush()
            except OSError:
                pass

    class BoundedWebSocket(eventlet.websocket.RFC6455WebSocket):
        # eventlet holds each frame to max_frame_length, but not the message
        # its continuation frames add up to.
        class Message(eventlet.websocket.RFC6455WebSocket.Message):
            size = 0

            def push(self, data, final=False):
                self.size += len(data)
                if self.size > self.max_frame_length:
                    raise eventlet.websocket.FailedConnectionError(
                        1009, f"message over {self.max_frame_length} bytes")
                super().push(data, final)

        @staticmethod
        def _apply_mask(data, mask, length=None, offset=0):
            length = len(data) if length is None else length
            key = bytes(mask[(offset + i) % 4] for i in range(4)) * (length // 4 + 1)
            return (int.from_bytes(data[:length], "big")
                    ^ int.from_bytes(key[:length], "big")).to_bytes(length, "big")

        def _recv_frame(self, message=None):
            frame = super()._recv_frame(message)
            eventlet.sleep(0)  # let the others run before this socket's next frame
            return frame

    class WebSocketWSGI(driver.WebSocketWSGI):
        # The handshake is eventlet's; the socket it hands over is ours.
        def _handle_hybi_request(self, environ):
            ws = super()._handle_hybi_request(environ)
            return BoundedWebSocket(ws.socket, ws.environ, ws.version, protocol=ws.protocol,
                                    extensions=ws.extensions,
                                    max_frame_length=ws.max_frame_length)

    socketio.server.eio._async["websocket"] = WebSocketWSGI
    # max_size: eventlet's own default serves only 1024 connections at once.
    # `protocol` is marked deprecated, but it is eventlet's only way in.
    eventlet.wsgi.server(listener, app, log_output=False, max_size=config.max_connections,
                         protocol=Protocol)


# --- gevent and threading: simple-websocket ----------------------------------

# How much a reader may take in one go before it gives the loop a turn: each
# message counts its bytes and 1 KiB more (it also costs Engine.IO a packet
# and a handler). A reader that found nothing to read for QUIET_SECONDS has
# waited on its socket, giving the loop its turn anyway.
TURN_BYTES = 64 * 1024
MESSAGE_COST = 1024
QUIET_SECONDS = 0.005


def _bounded_simple_websocket(max_message: int, pause=None, **classes):
    """Engine.IO's simple-websocket wrapper, with messages limited to
    `max_message` bytes. With `pause` (a short sleep of the async mode), a
    client sending without pause can neither keep the loop for itself nor
    pile messages up: the reader gives the loop a turn after TURN_BYTES worth
    of messages read back to back, and stops reading while two whole messages
    wait for Engine.IO. A reviewer's few small messages never pause (an ack
    and the next `task-complete`, sent together, would wait 1 ms for it).
    `classes`: simple-websocket's thread, event and selector classes."""
    import simple_websocket

    from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI

    event_class = classes.get("event_class")

    class Server(simple_websocket.Server):
        waiting = False
        spent = 0
        last_message = 0.0

        def __init__(self, *args, **kwargs):
            self.taken = event_class() if pause else None  # before the reader starts
            super().__init__(*args, **kwargs)

        def _handle_events(self):
            queued = len(self.input_buffer)
            keep_going = super()._handle_events()
            if pause and len(self.input_buffer) > queued:
                now = time.monotonic()
                if now - self.last_message > QUIET_SECONDS:
                    self.spent = 0
                self.last_message = now
                self.spent += sum(len(m) + MESSAGE_COST for m in self.input_buffer[queued:])
                if self.spent >= TURN_BYTES:
                    self.spent = 0
                    pause()
                while keep_going and self.connected and len(self.input_buffer) > 1:
                    self.taken.clear()
                    self.waiting = True
                    self.taken.wait(1)  # the timeout: in case Engine.IO stopped reading
                    self.waiting = False
            return keep_going

        def receive(self, timeout=None):
            message = super().receive(timeout)
            if self.waiting:
                self.taken.set()
            return message

        def close(self, reason=None, message=None):
            super().close(reason, message)
            # No waiting for the client's half of the closing handshake: one
            # that never sends it would hold the reader in recv() and Engine.IO
            # in receive() (which close() does not wake), and with them the
            # connection, for good.
            self.event.set()
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    class WebSocketWSGI(SimpleWebSocketWSGI):
        def __init__(self, handler, server):
            super().__init__(handler, server, max_message_size=max_message, **classes)

        def __call__(self, environ, start_response):
            self.ws = Server(environ, **self.server_args)
            self.app(self)
            if self.ws.mode == "werkzeug":
                raise ConnectionError()  # as the base class: werkzeug closes the socket
            return []

    return WebSocketWSGI


def _serve_gevent(app, config, listener, max_message: int) -> None:
    import gevent
    import gevent.event
    import gevent.pool
    import gevent.selectors
    from engineio.async_drivers import gevent as driver
    from gevent import pywsgi

    header_timeout = config.header_timeout or None

    class Handler(pywsgi.WSGIHandler):
        deadline = None
        refusal = None

        def handle_one_request(self):
            self.refusal = None
            self.deadline = gevent.Timeout(header_timeout, HeaderTimeout())
            self.deadline.start()
            try:
                result = super().handle_one_request()
            except HeaderTimeout:
                return None
            finally:
                self.deadline.close()
            if isinstance(result, tuple):  # gevent's own refusal: (status, bare response)
                status = result[0]
                refusal = URI_TOO_LONG if status == "414" else self.refusal or BAD_REQUEST
                return status, error_response(refusal)
            return result

        def get_environ(self):
            self.deadline.cancel()  # headers complete: the request may now take its time
            return super().get_environ()

        def run_application(self):
            super().run_application()
            if self.environ.get("HTTP_UPGRADE", "").lower() == "websocket":
                # No request follows a WebSocket on its connection. Kept open,
                # it made a client's closing handshake wait (websocket-client: 3 s).
                self.close_connection = True

        def _handle_client_error(self, ex):
            # gevent prints a traceback to stderr for some of these; one line is enough.
            too_large = isinstance(ex, http.client.HTTPException) \
                or "Line too long" in str(ex)
            self.refusal = HEADERS_TOO_LARGE if too_large else BAD_REQUEST
            self.log_error("bad request from %s: %s", self.client_address,
                           str(ex)[:200] or type(ex).__name__)
            return "400", b""

        def log_error(self, msg, *args):
            http_log.warning(msg, *args)

    # simple-websocket, as Engine.IO uses unless gevent-websocket is installed;
    # gevent's sleep(0) polls no sockets, hence the millisecond.
    socketio.server.eio._async["websocket"] = _bounded_simple_websocket(
        max_message, lambda: gevent.sleep(0.001), thread_class=driver.Thread,
        event_class=gevent.event.Event, selector_class=gevent.selectors.DefaultSelector)
    pywsgi.WSGIServer(listener, app, log=None, error_log=http_log, handler_class=Handler,
                      spawn=gevent.pool.Pool(config.max_connections)).serve_forever()


def _serve_threading(app, listener, max_message: int) -> None:
    """Werkzeug's development server (debugging only: no header timeout, one
    OS thread per connection)."""
    from werkzeug.serving import make_server

    # Threads take turns by themselves: no pause.
    socketio.server.eio._async["websocket"] = _bounded_simple_websocket(max_message)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    host, port = listener.getsockname()[:2]
    make_server(host, port, app, threaded=True, fd=listener.fileno()).serve_forever()
