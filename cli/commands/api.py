"""`shopstream api serve | key | hash-key`: the low-stock alert API (FastAPI under uvicorn)."""

from __future__ import annotations

import signal
import socket
import sys

import typer

from alerts.ops_db import ensure_ops_database
from api.auth import ensure_local_key, load_keys, local_key_path
from api.auth import hash_key as sha256
from cli.commands._say import say
from shopstream.errors import ShopstreamError
from shopstream.observability import register_target, unregister_target
from shopstream.settings import ApiSettings, get_settings

app = typer.Typer(no_args_is_help=True, help="The low-stock alert API.")

#: uvicorn's factory: each worker builds its app from the environment's settings.
FACTORY = "api.main:app_from_environment"
MAX_WORKERS = 64
#: On SIGTERM/SIGINT, open requests (SSE streams never end) get this long to finish.
GRACEFUL_SHUTDOWN_S = 5


def _bind(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so a taken port is a one-line error, not a log."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ShopstreamError(f"cannot resolve --host {host}: {exc.strerror}", 2) from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ShopstreamError(
            f"cannot listen on {host}:{port}: {exc.strerror} (is another API running? "
            "pick another --port)",
            1,
        ) from exc
    sock.set_inheritable(True)  # the uvicorn workers (spawned processes) accept on it
    return sock


@app.command("serve")
def serve(
    host: str = typer.Option(None, help="Address to listen on [default: SHOPSTREAM_API_HOST]"),
    port: int = typer.Option(None, help="Port to listen on [default: SHOPSTREAM_API_PORT]"),
    workers: int = typer.Option(1, help="uvicorn worker processes (each has its own pool)."),
    access_log: bool = typer.Option(True, help="Log every request (costs throughput)."),
) -> None:
    """Serve the API until SIGTERM/SIGINT; the ops database is created first if missing."""
    # Lazy on purpose: only `api serve` needs the server; the other commands start faster.
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    settings = get_settings(ApiSettings)
    host = host or settings.api_host
    port = settings.api_port if port is None else port
    if not 1 <= port <= 65535:
        raise ShopstreamError(f"--port must be 1-65535, not {port}", 2)
    if not 1 <= workers <= MAX_WORKERS:
        raise ShopstreamError(f"--workers must be 1-{MAX_WORKERS}, not {workers}", 2)
    keys = load_keys(settings)  # fail on malformed SHOPSTREAM_API_KEYS before anything starts
    ensure_ops_database(settings)
    sock = _bind(host, port)
    # The local Prometheus scrapes /metrics (file service discovery); a crash keeps the
    # target, so the missing API pages.
    target = register_target(settings, "api", port)
    shown = f"[{host}]" if ":" in host else host
    say(f"API on http://{shown}:{port} ({workers} worker(s))")
    say(f"docs: http://{shown}:{port}/docs  (OpenAPI: /openapi.json)")
    if settings.api_keys.strip():
        say(f"keys: {', '.join(k.name for k in keys)} (SHOPSTREAM_API_KEYS); send X-API-Key")
    else:
        say(f"key: `shopstream api key` prints it ({local_key_path(settings)}); send X-API-Key")
    config = uvicorn.Config(
        FACTORY,
        factory=True,
        workers=workers,
        access_log=access_log,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again for the
    # previous handler; this one notes it, so a requested stop exits 0 instead of dying.
    received: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda number, _: received.append(number))
        for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        if workers == 1:
            server.run(sockets=[sock])
            if not server.started and not received:
                raise ShopstreamError("the API did not start; see the log above", 3)
        else:
            Multiprocess(config, sockets=[sock]).run()
        unregister_target(target)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sock.close()
    say("API stopped")


@app.command("key")
def key() -> None:
    """Print the local profile's API key (generated on first use)."""
    settings = get_settings(ApiSettings)
    if settings.api_keys.strip():
        raise ShopstreamError(
            "SHOPSTREAM_API_KEYS is set, and only hashes are configured: the keys cannot be "
            "shown; use a key you were given",
            2,
        )
    typer.echo(ensure_local_key(settings))


@app.command("hash-key")
def hash_key() -> None:
    """Read a key on stdin and print its SHA-256, for SHOPSTREAM_API_KEYS."""
    secret = sys.stdin.readline().rstrip("\r\n")
    if not secret:
        raise ShopstreamError(
            "no key on stdin (try: shopstream api key | shopstream api hash-key)", 2
        )
    typer.echo(sha256(secret))
