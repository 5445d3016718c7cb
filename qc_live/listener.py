"""The server's listening socket, made here rather than by eventlet or gevent.

Neither eventlet.wsgi nor gevent.pywsgi sets TCP_NODELAY, and qc_live's
traffic is what Nagle's algorithm delays most: the ack of `task-complete`,
then at once the `task-assigned` push, two small frames. Without TCP_NODELAY
the push waits for the client's delayed ACK of the first (~40 ms on Linux;
docs/benchmarks.md). Linux hands the option down from the listening socket to
every socket it accepts, so setting it here covers every connection.

Standard library only: `run.py` calls this after monkey-patching, so the
socket is the green one of the async mode in use.
"""
import socket


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port and listening, with TCP_NODELAY set."""
    family, _, _, _, address = socket.getaddrinfo(
        host, port, 0, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # A restart must not wait for the last run's TIME_WAIT connections.
        # No SO_REUSEPORT (eventlet.listen would set it): a second server on
        # the same port must fail to start, not silently take half the sockets.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(address)
        # As deep an accept queue as the system allows (net.core.somaxconn):
        # after a restart every reviewer reconnects at once, and a short queue
        # turns the overflow into 1 s SYN retransmits.
        sock.listen(socket.SOMAXCONN)
    except BaseException:
        sock.close()
        raise
    return sock
