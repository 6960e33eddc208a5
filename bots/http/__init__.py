"""The HTTP front door: health, readiness, metrics, and the chat API on one aiohttp server."""

from bots.http.server import HttpServer

__all__ = ["HttpServer"]
