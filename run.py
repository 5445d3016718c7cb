"""Start qc_live: `python run.py` (PORT, HOST, DATABASE_URL... from the environment).

The async mode is chosen before anything else is imported, because eventlet and
gevent must monkey-patch the standard library first. This is the only place
that imports either of them.
"""
import os
import sys

ASYNC_MODE = os.environ.get("QC_ASYNC_MODE", "eventlet")
if ASYNC_MODE == "eventlet":
    import warnings

    # Known and documented (docs/deploy.md): gevent is one setting away.
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)
    import eventlet

    eventlet.monkey_patch()
elif ASYNC_MODE == "gevent":
    from gevent import monkey

    monkey.patch_all()
elif ASYNC_MODE != "threading":
    sys.exit(f"QC_ASYNC_MODE must be eventlet, gevent or threading, not {ASYNC_MODE!r}")

from qc_live import create_app, prepare_database, socketio  # noqa: E402
from qc_live.config import ConfigError  # noqa: E402
from qc_live.listener import listening_socket  # noqa: E402
from qc_live.schema import SchemaError  # noqa: E402


def main() -> int:
    try:
        app = create_app(async_mode=ASYNC_MODE)
        prepare_database(app)
    except (ConfigError, SchemaError) as error:
        print(f"qc_live: {error}", file=sys.stderr)
        return 2
    config = app.extensions["qc_config"]
    app.extensions["qc_runtime"].start()
    database = "SQLite" if config.is_sqlite else "MySQL/MariaDB"
    print(f"qc_live listening on http://{config.host}:{config.port} "
          f"({config.async_mode}, {database}, process {app.extensions['qc_runtime'].process_id})",
          flush=True)
    serve(app, config)
    return 0


def serve(app, config) -> None:
    """Run the web server of the async mode until the process is stopped."""
    if config.async_mode == "threading":
        socketio.run(app, host=config.host, port=config.port, log_output=False,
                     allow_unsafe_werkzeug=True)
        return
    # Not socketio.run: it makes its own listening socket, without TCP_NODELAY.
    listener = listening_socket(config.host, config.port)
    if config.async_mode == "eventlet":
        import eventlet.wsgi

        # max_size: eventlet's own default serves only 1024 connections at once.
        eventlet.wsgi.server(listener, app, log_output=False, max_size=config.max_connections)
    else:
        from gevent import pywsgi

        options = {}
        try:
            # If gevent-websocket is installed, Engine.IO uses it, and then it
            # needs its handler (as socketio.run would pass); simple-websocket,
            # in requirements.txt, needs none.
            from geventwebsocket.handler import WebSocketHandler
            options["handler_class"] = WebSocketHandler
        except ImportError:
            pass
        pywsgi.WSGIServer(listener, app, log=None, **options).serve_forever()


if __name__ == "__main__":
    sys.exit(main())
