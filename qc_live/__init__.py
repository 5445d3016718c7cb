"""qc_live: real-time task dispatch for manual quality-check teams."""
import logging

from flask import Flask
from flask_migrate import Migrate

from . import access_log, database, delivery, errors, group_commit, metrics, schema
from .board import Broadcaster
from .clock import Clock
from .config import Config, from_env
from .dispatch import Dispatcher
from .extensions import db, jwt, socketio
from .limits import Limits
from .notify import Notifier
from .runtime import Runtime
from .sweep import Sweep
from .webhooks import Courier

__all__ = ["create_app", "prepare_database", "socketio"]


def create_app(test_config: Config | dict | None = None,
               async_mode: str | None = None) -> Flask:
    """Build the application. Without arguments the configuration comes from
    the environment; tests pass a Config (or a dict of Config fields).

    `async_mode` is run.py's, which has monkey-patched for it; without it the
    app runs in "threading" mode (the CLI, tests, scripts)."""
    if test_config is None:
        config = from_env()
    elif isinstance(test_config, Config):
        config = test_config
    else:
        config = Config(**test_config)
    if async_mode is not None:
        config = config.with_overrides(async_mode=async_mode)

    logging.basicConfig(level=config.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Flask(__name__, instance_path=config.instance_path,
                static_folder="../static", template_folder="../templates")
    app.config.update(
        SECRET_KEY=config.secret_key,
        SQLALCHEMY_DATABASE_URI=config.database_url,
        SQLALCHEMY_ENGINE_OPTIONS=database.engine_options(config),
        MAX_CONTENT_LENGTH=config.max_request_bytes,
    )
    app.json.sort_keys = False
    app.extensions["qc_config"] = config
    app.extensions["qc_clock"] = Clock()
    app.extensions["qc_limits"] = Limits()

    from .auth import configure_jwt
    configure_jwt(app, config)
    db.init_app(app)
    Migrate(app, db, directory=str(schema.MIGRATIONS))
    jwt.init_app(app)
    # Several processes: python-socketio's manager for the queue, aware of offers.
    manager = delivery.queue_manager(config.message_queue, config.message_queue_channel) \
        if config.message_queue else None
    _quiet_transport_loggers()
    socketio.init_app(
        app,
        async_mode=config.async_mode,
        **({"client_manager": manager} if manager else {}),
        cors_allowed_origins=list(config.cors_origins) or None,
        max_http_buffer_size=1_000_000,
        logger=False,
        engineio_logger=False,
    )
    # Around Socket.IO's middleware: its requests too get the client's address
    # and a request id, and are logged.
    if config.proxy_hops:
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.proxy_hops,
                                x_proto=config.proxy_hops)
    access_log.init_app(app, config, sessions=lambda sid: socketio.server.environ.get(sid))
    app.wsgi_app = _nosniff(app.wsgi_app)  # outside Socket.IO's, to cover its answers too

    from . import (api_auth, api_board, api_health, api_queues, api_reviewer, api_stats,
                   api_tasks, api_users, api_webhooks, cli, openapi, pages, sockets)  # noqa: F401
    for blueprint in (api_auth.bp, api_tasks.bp, api_queues.bp, api_reviewer.bp, api_users.bp,
                      api_board.bp, api_health.bp, cli.bp, pages.bp, api_stats.bp, openapi.bp,
                      metrics.bp, api_webhooks.bp):
        app.register_blueprint(blueprint)
    metrics.init_app(app)
    errors.register(app)

    with app.app_context():
        database.configure_engine(db.engine, config)
        group_commit.enable(db.engine)

    # This app's state (state.py): the dispatch rules bound to the settings,
    # the outbound side, the live board, this process and its sweep.
    board = Broadcaster(app, config)
    dispatcher = Dispatcher(config)
    notifier = Notifier(app, config, board)
    runtime = Runtime(app, config, app.extensions["qc_clock"], board)
    runtime.sweeper = Sweep(config, dispatcher, notifier, runtime)
    runtime.courier = Courier(app, config, runtime.process_id)
    if manager is not None:
        manager.offers = notifier.offers
    app.extensions.update(qc_board=board, qc_dispatcher=dispatcher, qc_notifier=notifier,
                          qc_runtime=runtime, qc_courier=runtime.courier)
    return app


def prepare_database(app: Flask) -> None:
    """Make the app's database ready before serving or writing to it: upgraded
    to the newest schema under the migration lock (unless `auto_migrate` is
    off), refused when not at it (`schema.SchemaError`), and with its first
    admin. `run.py` calls this before it serves, the CLI before it writes."""
    from .accounts import bootstrap_admin
    config = app.extensions["qc_config"]
    with app.app_context():
        if config.auto_migrate:
            schema.upgrade()
        schema.require_current(db.engine)
        bootstrap_admin(db.session, config)
        db.session.remove()


def _nosniff(wsgi_app):
    """X-Content-Type-Options: nosniff on every answer of the app, Flask's
    (pages, JSON, errors, static files) and Engine.IO's alike: a browser must
    never take a JSON error or a polling payload that echoes someone's task
    name for HTML or script."""
    def app(environ, start_response):
        def start(status, headers, exc_info=None):
            if not any(name.lower() == "x-content-type-options" for name, _ in headers):
                headers = [*headers, ("X-Content-Type-Options", "nosniff")]
            return start_response(status, headers, exc_info)
        return wsgi_app(environ, start)
    return app


def _quiet_transport_loggers() -> None:
    """Engine.IO and Socket.IO log errors only (as with logger=False), through
    the root handler once (with a level set, they add no handler of their own),
    and a client repeating a malformed packet makes one line per 10 s."""
    from .log_limits import limit_repeats
    for name in ("engineio.server", "socketio.server"):
        logging.getLogger(name).setLevel(logging.ERROR)
        limit_repeats(name)

