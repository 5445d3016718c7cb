"""The per-user socket cap holds when one user's connects all arrive at once."""
import threading

import pytest
import socketio

CAP = 10


@pytest.mark.parametrize("attempts", [20, 100])
def test_simultaneous_connects_of_one_user_accept_exactly_the_cap(start_server, attempts):
    server = start_server(QC_MAX_SOCKETS_PER_USER=str(CAP))
    alice = server.reviewer("alice")
    together = threading.Barrier(attempts)
    accepted, refused, failed = [], [], []

    def attempt():
        client = socketio.Client(reconnection=False)
        errors = []
        client.on("connect_error", errors.append, namespace="/reviewer")
        together.wait()
        try:
            client.connect(server.url, namespaces=["/reviewer"], auth={"token": alice["token"]},
                           transports=["websocket"], wait_timeout=30)
            accepted.append(client)
        except socketio.exceptions.ConnectionError as exc:
            codes = [e.get("code") for e in errors if isinstance(e, dict)]
            (refused if codes == ["too_many_connections"] else failed).append(codes or exc)

    threads = [threading.Thread(target=attempt) for _ in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert failed == []  # never internal_error, nor anything but the cap's own code
        assert len(accepted) == CAP and len(refused) == attempts - CAP
        assert server.database.query("SELECT COUNT(*) FROM connections WHERE user_id = %s",
                                     alice["id"])[0][0] == CAP
    finally:
        for client in accepted:
            client.disconnect()
