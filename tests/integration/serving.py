"""The API under uvicorn on a free port of 127.0.0.1, in a thread: for the tests that need a
real HTTP connection (the transition stream, the dashboard in a browser)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn

from api.main import create_app
from shopstream.settings import Settings

#: Long enough for an app that reads its dashboard caches at start-up (``warm_dashboard``).
START_S = 15.0


@contextmanager
def serving(settings: Settings, **app_options: Any) -> Iterator[str]:
    """``create_app(settings, **app_options)`` under uvicorn; yields its base URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings, **app_options), log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + START_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start on 127.0.0.1", pytrace=False)
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
