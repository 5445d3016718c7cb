"""A webhook receiver on loopback for the tests and the benchmark: a real HTTP
server (http.server, one thread per request) that records every request and
answers as told."""
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver:
    """POSTs to http://127.0.0.1:<port>/<anything>. `answer` decides each
    response: a status code, or ("hang", seconds) to say nothing for that
    long, or ("slow", seconds, status) to answer after a while."""

    def __init__(self, answer=200):
        self.answer = answer
        self.requests = []  # {"path", "headers", "body" (bytes), "at"}
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                              "body": raw, "at": time.monotonic()})
                    answer = receiver.answer
                    receiver.arrived.notify_all()
                if callable(answer):
                    answer = answer(raw)
                if isinstance(answer, tuple) and answer[0] == "hang":
                    time.sleep(answer[1])
                    return  # never answers: the client times out
                if isinstance(answer, tuple) and answer[0] == "slow":
                    time.sleep(answer[1])
                    answer = answer[2]
                self.send_response(answer)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a sender that went away mid-request (a killed server): expected

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()

    def events(self) -> list[dict]:
        """The JSON bodies received, in arrival order."""
        with self.lock:
            return [json.loads(r["body"]) for r in self.requests]

    def wait_for(self, condition, timeout: float = 30, what: str = "requests"):
        """Wait until condition(list of requests) is true; returns the list."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not condition(self.requests):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"receiver: timed out waiting for {what}; got "
                                         f"{len(self.requests)} request(s)")
                self.arrived.wait(min(left, 0.5))
            return list(self.requests)


def verify(request: dict, secret: str) -> bool:
    """The request's X-QC-Signature is the HMAC-SHA256 of its raw body."""
    expected = "sha256=" + hmac.new(secret.encode(), request["body"],
                                    hashlib.sha256).hexdigest()
    return hmac.compare_digest(request["headers"].get("X-QC-Signature", ""), expected)
