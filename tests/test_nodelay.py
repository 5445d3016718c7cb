"""TCP_NODELAY on every socket the server accepts (eventlet and gevent).

Without it, a push that follows a reply (the next `task-assigned` right after
the ack of `task-complete`) waits ~40 ms in Nagle's buffer. A socket option
cannot be seen from the client side, so the first test borrows the running
server's sockets (pidfd_getfd, Linux 5.6+) and reads the option on them.
"""
import ctypes
import errno
import os
import socket
import subprocess
import sys

import pytest

from live import ROOT, Reviewer

SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture

PATCH = {
    "eventlet": "import eventlet; eventlet.monkey_patch()",
    "gevent": "from gevent import monkey; monkey.patch_all()",
    "threading": "",
}


def _accepted_sockets(pid: int, port: int) -> list[tuple]:
    """(peer address, TCP_NODELAY) of each connection the process accepted on port."""
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError) as exc:
        pytest.skip(f"pidfd_open unavailable: {exc}")
    found = []
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
            if fd < 0:
                code = ctypes.get_errno()
                if code in (errno.EPERM, errno.ENOSYS, errno.EACCES):
                    pytest.skip(f"pidfd_getfd not allowed here: {os.strerror(code)}")
                continue  # closed in the meantime
            try:
                sock = socket.socket(fileno=fd)
            except OSError:
                os.close(fd)  # not a socket
                continue
            with sock:
                if sock.family not in (socket.AF_INET, socket.AF_INET6) \
                        or sock.type != socket.SOCK_STREAM or sock.getsockname()[1] != port:
                    continue
                try:
                    peer = sock.getpeername()
                except OSError:
                    continue  # the listening socket
                found.append((peer, sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)))
    finally:
        os.close(pidfd)
    return found


@pytest.mark.parametrize("mode", ["eventlet", "gevent"])
def test_server_sets_tcp_nodelay_on_every_accepted_socket(start_server, mode):
    server = start_server(QC_ASYNC_MODE=mode)
    alice = server.reviewer("alice")
    server.add_tasks([{"name": "one"}])
    sock = Reviewer(server, alice["token"]).connect()
    try:
        assert sock.task()["name"] == "one"  # the websocket is up and has carried a push
        accepted = _accepted_sockets(server.process.pid, server.port)
        assert accepted, "the server holds no accepted connection on its port"
        assert all(nodelay for _, nodelay in accepted), accepted
    finally:
        sock.disconnect()


@pytest.mark.parametrize("mode", ["eventlet", "gevent", "threading"])
def test_listening_socket_hands_tcp_nodelay_to_accepted_sockets(mode):
    # In a fresh process, as run.py does: patch first, then make the socket.
    script = f"""
{PATCH[mode]}
import socket
from qc_live.listener import listening_socket
listener = listening_socket("127.0.0.1", 0)
client = socket.create_connection(listener.getsockname()[:2])
accepted, _ = listener.accept()
print(type(listener).__module__, accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
"""
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", script], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    module, nodelay = result.stdout.split()
    assert nodelay != "0"
    if mode != "threading":  # the socket is the async mode's green one
        assert mode in module, module
