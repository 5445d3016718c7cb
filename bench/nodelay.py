"""TCP_NODELAY on the server's listening socket (Linux hands it down to every
accepted socket). Neither eventlet.wsgi nor gevent.pywsgi sets it, so by
default a small frame written right after another one (the `task-assigned`
push after the ack of `task-complete`) waits in Nagle's buffer until the
client's delayed ACK of the first (~40 ms on Linux).

Benchmarks only: `install(mode)` after monkey-patching, before socketio.run.
"""
import socket


def _nodelay(sock):
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def install(mode: str) -> None:
    if mode == "eventlet":
        import eventlet
        listen = eventlet.listen

        def listen_nodelay(*args, **kwargs):
            return _nodelay(listen(*args, **kwargs))

        eventlet.listen = listen_nodelay  # flask_socketio.run calls eventlet.listen
    elif mode == "gevent":
        from gevent import pywsgi
        init_socket = pywsgi.WSGIServer.init_socket

        def init_socket_nodelay(self):
            init_socket(self)
            _nodelay(self.socket)

        pywsgi.WSGIServer.init_socket = init_socket_nodelay
