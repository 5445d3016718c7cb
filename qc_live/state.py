"""One app's state, kept in `app.extensions` by create_app: nothing in the
package is a module global that the last app built in a process would
overwrite (tests build one app per test). Each accessor needs an app context.
"""
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:  # for the annotations only: these modules import this one
    from .board import Broadcaster
    from .clock import Clock
    from .config import Config
    from .dispatch import Dispatcher
    from .limits import Limits
    from .notify import Notifier
    from .runtime import Runtime
    from .webhooks import Courier


def config() -> "Config":
    return current_app.extensions["qc_config"]


def clock() -> "Clock":
    return current_app.extensions["qc_clock"]


def dispatcher() -> "Dispatcher":
    return current_app.extensions["qc_dispatcher"]


def notifier() -> "Notifier":
    return current_app.extensions["qc_notifier"]


def runtime() -> "Runtime":
    return current_app.extensions["qc_runtime"]


def board() -> "Broadcaster":
    return current_app.extensions["qc_board"]


def limits() -> "Limits":
    return current_app.extensions["qc_limits"]


def courier() -> "Courier":
    return current_app.extensions["qc_courier"]
