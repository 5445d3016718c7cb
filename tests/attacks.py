"""What one anonymous client can throw at the transport: raw WebSocket frames,
half-open HTTP connections, malformed packets. Used by tests/test_transport_abuse.py
and by bench/transport_abuse.py (which measures the same attacks at full size)."""
import socket
import threading
import time

import requests
import websocket

from live import Reviewer

ENGINEIO_PATH = "/socket.io/?EIO=4&transport=websocket"


def rss_kib(pid: int) -> int:
    """Resident memory of a process, in KiB (VmRSS)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def raw_websocket(url: str, timeout: float = 10) -> websocket.WebSocket:
    """An Engine.IO WebSocket with no Socket.IO namespace and no token: the
    server has sent its open packet, nothing else has happened."""
    ws = websocket.create_connection(url.replace("http://", "ws://") + ENGINEIO_PATH,
                                     timeout=timeout)
    opening = ws.recv()
    assert opening.startswith("0{"), opening
    return ws


class Attack(threading.Thread):
    """Runs `step(ws)` on a fresh raw WebSocket in a loop until stopped,
    reconnecting whenever the server drops it; counts both."""

    def __init__(self, url: str, step, name: str = "attack"):
        super().__init__(daemon=True, name=name)
        self.url = url
        self.step = step
        self.stopping = threading.Event()
        self.sent = 0
        self.dropped = 0
        self.error = None

    def run(self):
        ws = None
        while not self.stopping.is_set():
            try:
                if ws is None:
                    ws = raw_websocket(self.url)
                self.step(ws)
                self.sent += 1
            except (OSError, websocket.WebSocketException):
                self.dropped += 1
                if ws is not None:
                    ws.shutdown()  # an attacker does not wait for closing handshakes
                ws = None
                time.sleep(0.05)
            except Exception as exc:  # noqa: BLE001 - reported by stop()
                self.error = exc
                break
        if ws is not None:
            ws.shutdown()

    def stop(self) -> "Attack":
        self.stopping.set()
        self.join(30)
        if self.error is not None:
            raise self.error
        return self


def big_frames(size: int = 990_000):
    """One text frame just under the 1 MB message limit per step: an Engine.IO
    message whose Socket.IO packet is garbage."""
    frame = "4" + "x" * (size - 1)
    return lambda ws: ws.send(frame)


def fragmented_message(fragments: int = 220, fragment_size: int = 900_000):
    """One message sent as `fragments` frames (first + continuations) of
    `fragment_size` bytes each: every frame is under the limit, the message is
    far over it. One step = one whole message."""
    chunk = b"x" * fragment_size

    def step(ws):
        ws.send_frame(websocket.ABNF.create_frame(b"4" + chunk[1:], websocket.ABNF.OPCODE_TEXT,
                                                  fin=0))
        for i in range(1, fragments):
            ws.send_frame(websocket.ABNF.create_frame(chunk, websocket.ABNF.OPCODE_CONT,
                                                      fin=int(i == fragments - 1)))
    return step


def malformed_packets(count: int = 5000):
    """`count` tiny Engine.IO messages whose Socket.IO packet does not parse."""
    def step(ws):
        for _ in range(count):
            ws.send("4x")
    return step


def half_open(port: int, count: int, host: str = "127.0.0.1") -> list[socket.socket]:
    """`count` connections that each sent part of a request header and stop."""
    sockets = []
    for i in range(count):
        sock = socket.create_connection((host, port), timeout=10)
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow-" + str(i).encode())
        sockets.append(sock)
    return sockets


def closed_by_server(sock: socket.socket) -> bool:
    """True if the server has closed this connection (EOF or reset); any
    answer it sent before closing is read and ignored."""
    sock.setblocking(False)
    try:
        while sock.recv(65536):
            pass
        return True
    except BlockingIOError:
        return False
    except OSError:
        return True


class PeakMemory(threading.Thread):
    """Samples a process's VmRSS every 50 ms; keeps the highest."""

    def __init__(self, pid: int):
        super().__init__(daemon=True, name="memory")
        self.pid = pid
        self.peak = rss_kib(pid)
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except (OSError, RuntimeError):
                return
            self.stopping.wait(0.05)

    def stop(self) -> "PeakMemory":
        self.stopping.set()
        self.join(5)
        return self


class Probe(threading.Thread):
    """Calls GET /healthz back to back; keeps the slowest answer and failures."""

    def __init__(self, url: str, interval: float = 0.1, timeout: float = 60):
        super().__init__(daemon=True, name="probe")
        self.url, self.interval, self.timeout = url, interval, timeout
        self.stopping = threading.Event()
        self.times = []
        self.failures = []

    def run(self):
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                status = requests.get(self.url + "/healthz", timeout=self.timeout).status_code
                if status != 200:
                    self.failures.append(status)
            except requests.RequestException as exc:
                self.failures.append(repr(exc))
            self.times.append(time.monotonic() - started)
            self.stopping.wait(self.interval)

    def stop(self) -> "Probe":
        self.stopping.set()
        self.join(self.timeout + 5)
        return self

    @property
    def slowest(self) -> float:
        return max(self.times, default=0.0)


class Worker(threading.Thread):
    """A reviewer completing tasks back to back (complete -> next task); keeps
    the time of each cycle. The server needs enough pending tasks."""

    def __init__(self, server, token: str, timeout: float = 30):
        super().__init__(daemon=True, name="worker")
        self.reviewer = Reviewer(server, token)
        self.timeout = timeout
        self.stopping = threading.Event()
        self.cycles = []
        self.error = None

    def run(self):
        try:
            task = self.reviewer.connect(transports=["websocket"]).task(self.timeout)
            while not self.stopping.is_set():
                started = time.monotonic()
                reply = self.reviewer.call("task-complete",
                                           {"task_id": task["id"], "outcome": "pass"},
                                           timeout=self.timeout)
                assert reply["ok"] is True, reply
                task = self.reviewer.task(self.timeout)
                self.cycles.append(time.monotonic() - started)
                # A person, not a benchmark: stays under the per-socket event limit.
                self.stopping.wait(0.15)
        except Exception as exc:  # noqa: BLE001 - reported by stop()
            self.error = exc
        finally:
            self.reviewer.disconnect()

    def stop(self) -> "Worker":
        self.stopping.set()
        self.join(self.timeout + 5)
        if self.error is not None:
            raise self.error
        return self

    @property
    def slowest(self) -> float:
        return max(self.cycles, default=0.0)
