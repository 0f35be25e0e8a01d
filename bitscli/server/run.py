"""Bind the socket, say where the server listens, and run the app on uvicorn with the h11 protocol."""

from __future__ import annotations

import logging
import socket
import sys

from bitscli import libc
from bitscli.errors import ConfigError, NotSupported
from bitscli.server.settings import ServerSettings


def serve(settings: ServerSettings, access_log: bool = False) -> None:
    try:
        import uvicorn

        from bitscli.server import connections, logs
        from bitscli.server.app import create_app
    except ImportError:
        raise NotSupported(
            "bitscli serve needs the server extra (Starlette and uvicorn)", hint="pip install 'bitscli[server]'"
        ) from None
    libc.keep_io_buffers()
    sock = _bind(settings.host, settings.port, connections.BACKLOG)
    host, port = sock.getsockname()[:2]
    scheme = "https" if settings.certfile else "http"
    shown = f"[{host}]" if ":" in host else host
    uploads = ", ".join(settings.upload_dirs) if settings.upload_dirs else "disabled (enable with --uploads /)"
    sys.stdout.write(f"Serving {settings.root} at {scheme}://{shown}:{port}/ (uploads: {uploads})\n")
    sys.stdout.flush()
    logs.configure(access_log)
    cap = connections.connection_cap(settings.max_connections)
    if cap < settings.max_connections:
        logging.getLogger("bitscli.serve").warning(
            "the open-file limit allows %d connections, not %d (raise it with ulimit -n)", cap, settings.max_connections
        )
    limits = connections.Limits(settings.header_timeout, settings.body_timeout, settings.min_body_rate, cap)
    config = uvicorn.Config(
        create_app(settings),
        http=connections.protocol_class(limits),  # h11: the httptools parser rejects BITS_POST (design.md)
        timeout_keep_alive=settings.header_timeout,
        log_config=None,  # logs.configure: one handler, rate-limited
        backlog=connections.BACKLOG,
        ssl_certfile=str(settings.certfile) if settings.certfile else None,
        ssl_keyfile=str(settings.keyfile) if settings.keyfile else None,
        access_log=access_log,
        log_level="info" if access_log else "warning",
        server_header=False,
        lifespan="on",
    )
    uvicorn.Server(config).run(sockets=[sock])


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror}",
            hint="pick another --port (0 takes a free one), or stop what uses it",
        ) from None
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock
