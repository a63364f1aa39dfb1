"""Deadlines for idle and slow HTTP clients, where uvicorn reads requests.

BentoML 1.4 runs each worker on uvicorn with its defaults and passes it only `timeout_keep_alive`
(5 s, from `bentoml serve --timeout-keep-alive`; no service configuration sets it). That timer is
armed only after a response, and any byte received cancels it: a connection that never sends a
request, or sends its headers or body a byte at a time, is held for ever, and httptools sets no
bound on the size of a request head. BentoML's `traffic.timeout` cannot help: it starts once the
headers are complete, and after its 504 a trickling client still holds the socket. No ASGI
middleware can see a request before its headers are complete, so the deadlines live in uvicorn's
HTTP protocol: `GuardedHttpToolsProtocol` closes

- an idle connection (new, or between requests) after `keep_alive_s`;
- a connection whose request (head and body) is not fully received `read_timeout_s` after its
  first byte: 408 when no response has started yet;
- a connection whose request line and headers exceed `max_head_bytes`: 431.

`install` makes uvicorn use it: BentoML builds uvicorn's Config after it has imported the service
(`serving.service.build_service` calls `install`), and uvicorn looks the protocol class up by name
in `uvicorn.config.HTTP_PROTOCOLS` only when the server starts.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from serving.settings import DEFAULT_KEEP_ALIVE_S, DEFAULT_READ_TIMEOUT_S

# The request line plus all headers: far above any client of ours (a JWT is about 1 KiB).
DEFAULT_MAX_HEAD_BYTES = 64 * 1024
_CLOSE = b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"


def _response(status: bytes, text: bytes) -> bytes:
    return b"HTTP/1.1 " + status + b"\r\n" + _CLOSE + b"content-length: %d\r\n\r\n" % len(text) + text


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a keep-alive timer from the first byte, a deadline on
    reading each request and a bound on the request head (see the module docstring)."""

    keep_alive_s: float = DEFAULT_KEEP_ALIVE_S
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S
    max_head_bytes: int = DEFAULT_MAX_HEAD_BYTES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = self.keep_alive_s  # type: ignore[assignment]
        self._read_deadline: asyncio.TimerHandle | None = None
        self._head_bytes = 0
        self._head_too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn arms its keep-alive timer only after a response: a connection that never sends a
        # byte would otherwise be held for ever.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # The first byte of a request (even stray line breaks before it) starts its deadline; uvicorn
        # cancels the keep-alive timer on any byte.
        if self._read_deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        if self._read_deadline is None:  # a pipelined request: its own deadline
            self._arm()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._disarm()

    def send_400_response(self, msg: str) -> None:
        if self._head_too_large:
            # _count_head raised inside the parser, which uvicorn reports as a malformed request.
            self.transport.write(_response(b"431 Request Header Fields Too Large", b"Request head too large"))
            self.transport.close()
            return
        super().send_400_response(msg)

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_head_bytes:
            self._head_too_large = True
            raise ValueError("request head too large")  # stops the parser: see send_400_response

    def _arm(self) -> None:
        self._read_deadline = self.loop.call_later(self.read_timeout_s, self._read_timed_out)

    def _disarm(self) -> None:
        if self._read_deadline is not None:
            self._read_deadline.cancel()
            self._read_deadline = None

    def _read_timed_out(self) -> None:
        self._read_deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            # Nothing of an answer is on the wire: say why before closing. A route still waiting
            # for this body then receives http.disconnect, and whatever it sends is dropped.
            self.transport.write(_response(b"408 Request Timeout", b"Request not received in time"))
        self.transport.close()


def install(keep_alive_s: float, read_timeout_s: float) -> None:
    """Make uvicorn servers started after this call in this process use GuardedHttpToolsProtocol
    with these deadlines ("auto", uvicorn's default, and "httptools")."""
    from uvicorn import config

    GuardedHttpToolsProtocol.keep_alive_s = keep_alive_s
    GuardedHttpToolsProtocol.read_timeout_s = read_timeout_s
    name = f"{__name__}:{GuardedHttpToolsProtocol.__name__}"
    config.HTTP_PROTOCOLS["auto"] = name
    config.HTTP_PROTOCOLS["httptools"] = name
