"""What a stranger can pile up on the HTTP port: half-sent requests, idle connections, more
connections than the cap, a body that trickles in — none of it stops the probes."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiohttp

from bots.http.connections import REQUEST_SECONDS
from tests.bots.http.conftest import Client, ServeFactory

HALF_SENT = b"GET /healthz HTTP/1.1\r\nHost: parley\r\nX-Slow: "  # the headers never end


async def open_raw(url: str, count: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    where = urlsplit(url)
    return [await asyncio.open_connection(where.hostname, where.port) for _ in range(count)]


async def closed_by_server(reader: asyncio.StreamReader) -> bool:
    return await reader.read() == b""  # EOF: the server hung up


async def test_half_sent_requests_do_not_stop_the_probes_and_are_closed(
    serve: ServeFactory, session: aiohttp.ClientSession
) -> None:
    served = await serve()
    connections = await open_raw(served.url, 200)
    for _, writer in connections:
        writer.write(HALF_SENT)
    await asyncio.gather(*(writer.drain() for _, writer in connections))
    probe = await Client(session, served).request("GET", "/healthz")
    assert probe.status == 200  # at once, beside 200 stalled connections
    ended = await asyncio.wait_for(
        asyncio.gather(*(closed_by_server(reader) for reader, _ in connections)),
        REQUEST_SECONDS * 3,
    )
    assert all(ended)
    for _, writer in connections:
        writer.close()


async def test_connections_past_the_cap_are_closed_at_once(
    serve: ServeFactory, session: aiohttp.ClientSession
) -> None:
    served = await serve(max_connections=20)
    kept = await open_raw(served.url, 20)
    extra = await open_raw(served.url, 5)
    assert await asyncio.wait_for(
        asyncio.gather(*(closed_by_server(reader) for reader, _ in extra)), REQUEST_SECONDS / 2
    )
    for _, writer in kept + extra:
        writer.close()
    await asyncio.wait_for(
        asyncio.gather(*(closed_by_server(reader) for reader, _ in kept)), REQUEST_SECONDS * 3
    )
    assert (await Client(session, served).request("GET", "/healthz")).status == 200


async def test_a_body_that_trickles_in_is_answered_408(serve: ServeFactory) -> None:
    served = await serve(api_token="t0ken-for-tests")
    reader, writer = (await open_raw(served.url, 1))[0]
    body = b'{"message": "hello"}'
    writer.write(
        b"POST /v1/chat HTTP/1.1\r\nHost: parley\r\nAuthorization: Bearer t0ken-for-tests\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:5]
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_SECONDS * 3)
    assert head.startswith(b"HTTP/1.1 408")
    length = int(
        next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[
            1
        ]
    )
    assert b"request_timeout" in await reader.readexactly(length)
    writer.close()
