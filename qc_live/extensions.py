"""The extension objects, created unbound and wired up by `create_app`."""
from flask_jwt_extended import JWTManager
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


# expire_on_commit=False: dispatch commits before the socket layer emits, and
# objects read afterwards must not silently start a new transaction.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
socketio = SocketIO()
jwt = JWTManager()
