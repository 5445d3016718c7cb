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

from qc_live import create_app, socketio  # noqa: E402
from qc_live.config import ConfigError  # noqa: E402


def main() -> int:
    try:
        app = create_app()
    except ConfigError as error:
        print(f"qc_live: {error}", file=sys.stderr)
        return 2
    config = app.extensions["qc_config"]
    app.extensions["qc_runtime"].start()
    database = "SQLite" if config.is_sqlite else "MySQL/MariaDB"
    print(f"qc_live listening on http://{config.host}:{config.port} "
          f"({config.async_mode}, {database}, process {app.extensions['qc_runtime'].process_id})",
          flush=True)
    options = {"log_output": False}
    if config.async_mode == "threading":
        options["allow_unsafe_werkzeug"] = True
    elif config.async_mode == "eventlet":
        options["max_size"] = config.max_connections  # eventlet's own default: 1024
    socketio.run(app, host=config.host, port=config.port, **options)
    return 0


if __name__ == "__main__":
    sys.exit(main())
