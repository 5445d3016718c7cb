"""qc_live: real-time task dispatch for manual quality-check teams."""
import logging

from flask import Flask
from sqlalchemy.exc import OperationalError

from . import database, errors
from .config import Config, from_env
from .extensions import db, jwt, socketio

__all__ = ["create_app", "socketio"]


def create_app(test_config: Config | dict | None = None) -> Flask:
    """Build the application. Without arguments the configuration comes from
    the environment; tests pass a Config (or a dict of Config fields)."""
    if test_config is None:
        config = from_env()
    elif isinstance(test_config, Config):
        config = test_config
    else:
        config = Config(**test_config)

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
    if config.proxy_hops:
        from werkzeug.middleware.proxy_fix import ProxyFix
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.proxy_hops,
                                x_proto=config.proxy_hops)
    app.extensions["qc_config"] = config

    from .auth import bootstrap_admin, configure_jwt
    configure_jwt(app, config)
    db.init_app(app)
    jwt.init_app(app)
    _quiet_transport_loggers()
    socketio.init_app(
        app,
        async_mode=config.async_mode,
        message_queue=config.message_queue,
        channel=config.message_queue_channel,
        cors_allowed_origins=list(config.cors_origins) or None,
        max_http_buffer_size=1_000_000,
        logger=False,
        engineio_logger=False,
    )
    database.backoff_sleep = socketio.sleep

    from . import (api_board, api_health, api_reviewer, api_stats, api_tasks, api_users, auth,
                   cli, openapi, pages, sockets)  # noqa: F401
    for blueprint in (auth.bp, api_tasks.bp, api_reviewer.bp, api_users.bp, api_board.bp,
                      api_health.bp, cli.bp, pages.bp, api_stats.bp, openapi.bp):
        app.register_blueprint(blueprint)
    errors.register(app)

    with app.app_context():
        database.configure_engine(db.engine, config)
        _create_schema()
        bootstrap_admin(db.session, config)
        db.session.remove()

    from .board import broadcaster
    from .runtime import Runtime
    app.extensions["qc_runtime"] = Runtime(app, config)
    broadcaster.init_app(app, config)
    from . import notify
    notify.init_app(app)
    return app


def _quiet_transport_loggers() -> None:
    """Engine.IO and Socket.IO log errors only (as with logger=False), through
    the root handler once (with a level set, they add no handler of their own),
    and a client repeating a malformed packet makes one line per 10 s."""
    from .log_limits import limit_repeats
    for name in ("engineio.server", "socketio.server"):
        logging.getLogger(name).setLevel(logging.ERROR)
        limit_repeats(name)


def _create_schema() -> None:
    """Create missing tables. Several processes may start at once: a lost race
    ("table exists") is fine, so try again once."""
    try:
        db.create_all()
    except OperationalError:
        db.session.rollback()
        db.create_all()
