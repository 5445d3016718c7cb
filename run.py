"""Start qc_live: `python run.py` (PORT, HOST, DATABASE_URL... from the environment).

The async mode is chosen before anything else is imported, because eventlet and
gevent must monkey-patch the standard library first. This is the only place
that patches; it and serving.py (the web server) are the only modules that
import either of them. The port is bound before the process announces itself
or takes its lease, so a busy port stops it with one line and nothing started.
"""
import errno
import os
import sys

ASYNC_MODE = os.environ.get("QC_ASYNC_MODE", "gevent")  # Config.async_mode's default too
if ASYNC_MODE == "eventlet":
    import warnings

    # Known and documented (docs/deploy.md): gevent is the default.
    warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated", category=Warning)
    import eventlet

    eventlet.monkey_patch()
elif ASYNC_MODE == "gevent":
    from gevent import monkey

    monkey.patch_all()
elif ASYNC_MODE != "threading":
    sys.exit(f"QC_ASYNC_MODE must be eventlet, gevent or threading, not {ASYNC_MODE!r}")

from qc_live import create_app, prepare_database  # noqa: E402
from qc_live.config import ConfigError  # noqa: E402
from qc_live.schema import SchemaError  # noqa: E402

import serving  # noqa: E402


def main() -> int:
    try:
        app = create_app(async_mode=ASYNC_MODE)
        prepare_database(app)
    except (ConfigError, SchemaError) as error:
        print(f"qc_live: {error}", file=sys.stderr)
        return 2
    config = app.extensions["qc_config"]
    try:
        listener = serving.bind(config)
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            print(f"qc_live: port {config.port} is already in use on {config.host} (another "
                  f"qc_live?); stop it, or pick another port: PORT={config.port + 1} "
                  "python run.py", file=sys.stderr)
        else:
            print(f"qc_live: cannot listen on {config.host}:{config.port}: "
                  f"{error.strerror or error} (see HOST and PORT)", file=sys.stderr)
        return 2
    app.extensions["qc_runtime"].start()
    database = "SQLite" if config.is_sqlite else "MySQL/MariaDB"
    print(f"qc_live listening on http://{config.host}:{config.port} "
          f"({config.async_mode}, {database}, process {app.extensions['qc_runtime'].process_id})",
          flush=True)
    serving.serve(app, config, listener)
    return 0


if __name__ == "__main__":
    sys.exit(main())
