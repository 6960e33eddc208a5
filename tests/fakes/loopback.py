"""Serving a fake platform on 127.0.0.1: the one bit of set-up every fake shares."""

from __future__ import annotations

import socket

from aiohttp import web


async def serve(app: web.Application, port: int = 0) -> tuple[web.AppRunner, int]:
    """Start `app` on 127.0.0.1 (`port` 0: a free one); returns its runner and port.

    handler_cancellation: a handler stalled on purpose ends when its client goes away.
    """
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    await web.SockSite(runner, sock).start()
    return runner, sock.getsockname()[1]
