"""uvicorn's httptools protocol with bounds on a request: how long its headers and body take, how large and
how many its headers are, and how long a stopping server waits for it.

uvicorn bounds none of these with httptools (h11 bounds only the size): a connection may take forever to
send its headers, one byte at a time, because every byte received cancels the keep-alive timer and no
other timer runs while a request's headers arrive; and llhttp buffers a header of any size. Here:

- the headers of a request must be complete ``header_timeout`` seconds after its first byte (or after
  the connection opens), else the connection is closed; idle keep-alive connections are left to
  uvicorn's ``timeout_keep_alive`` as before;
- a request line and headers over ``max_header_bytes``, or more than ``max_header_count`` header lines,
  get ``431 Request Header Fields Too Large`` and the connection is closed. Counted as the parser hands
  them over, and, while headers are incomplete, as bytes arrive (llhttp hands a header over only once
  it ends, and buffers it until then): what is buffered stays within the bound plus one read;
- the body must be complete ``body_timeout`` seconds after the headers, else the client gets ``408 Request
  Timeout`` and the connection is closed: uvicorn gives a body all the time it takes, so a client sending
  one byte a second, or stalling after a megabyte, would hold its connection and buffer forever;
- once the server is stopping, a connection whose request is still unanswered ``grace_period`` seconds
  later gets ``503`` (if nothing was answered yet) and is closed, with one log line: the app sees a
  disconnect and returns, where uvicorn would cancel its task and log the ASGI traceback of that
  cancellation (uvicorn's own limit is set past this one, and stays as a backstop).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from reviewlens.serving.security import logger


class _HeadersTooLargeError(Exception):
    pass


class BoundedProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        header_timeout: float = 5.0,
        max_header_bytes: int = 64 * 1024,
        max_header_count: int = 100,
        body_timeout: float = 10.0,
        grace_period: float = 30.0,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.header_timeout = header_timeout
        self.max_header_bytes = max_header_bytes
        self.max_header_count = max_header_count
        self.body_timeout = body_timeout
        self.grace_period = grace_period
        self._body_due: asyncio.TimerHandle | None = None
        self._headers_due: asyncio.TimerHandle | None = None
        self._in_message = False  # between a request's first byte and its last
        self._headers_done = False
        self._header_bytes = 0  # received while headers were incomplete
        self._header_size = 0  # of the request line and headers parsed so far
        self._header_count = 0
        self._too_large: str | None = None  # why the request is refused

    @property
    def _reading_headers(self) -> bool:
        return not (self._in_message and self._headers_done)  # between requests, bytes start the next one

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._expect_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_arrived()
        self._body_arrived()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._reading_headers:
            self._expect_headers()
            self._header_bytes += len(data)
        super().data_received(data)
        if self._reading_headers and self._header_bytes > self.max_header_bytes and not self.transport.is_closing():
            self._refuse(self._size_refusal)

    @property
    def _size_refusal(self) -> str:
        return f"the request line and headers are larger than {self.max_header_bytes:,} bytes"

    def on_message_begin(self) -> None:
        self._in_message, self._headers_done = True, False
        self._header_size = self._header_count = 0
        self._expect_headers()
        super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        self._header_size += len(url)
        self._check_headers()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._header_size += len(name) + len(value) + 4
        self._check_headers()
        super().on_header(name, value)

    def _check_headers(self) -> None:
        if self._header_size > self.max_header_bytes:
            self._too_large = self._size_refusal
        elif self._header_count > self.max_header_count:
            self._too_large = f"the request has more than {self.max_header_count} header lines"
        if self._too_large is not None:
            raise _HeadersTooLargeError  # the parser stops, and uvicorn calls send_400_response

    def on_headers_complete(self) -> None:
        self._headers_done = True
        self._header_bytes = 0  # the next request's count starts with the bytes after this one's body
        self._headers_arrived()
        self._body_due = self.loop.call_later(self.body_timeout, self._body_late)
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_message = False
        self._body_arrived()
        super().on_message_complete()

    def shutdown(self) -> None:
        super().shutdown()  # closes the connection if idle, else lets the request finish
        if not self.transport.is_closing():
            self.loop.call_later(self.grace_period, self._grace_over)

    def send_400_response(self, msg: str) -> None:
        if self._too_large is not None:
            self._refuse(self._too_large)
        else:
            super().send_400_response(msg)

    def _expect_headers(self) -> None:
        if self._headers_due is None:
            self._headers_due = self.loop.call_later(self.header_timeout, self._headers_late)

    def _headers_arrived(self) -> None:
        if self._headers_due is not None:
            self._headers_due.cancel()
            self._headers_due = None

    def _headers_late(self) -> None:
        self._headers_due = None
        if self._reading_headers and not self.transport.is_closing():
            self.transport.close()

    def _body_arrived(self) -> None:
        if self._body_due is not None:
            self._body_due.cancel()
            self._body_due = None

    def _body_late(self) -> None:
        self._body_due = None
        if self._in_message and not self.transport.is_closing():
            self._end_request(408, f"the request body did not arrive within {self.body_timeout:g} s")

    def _grace_over(self) -> None:
        if self.transport.is_closing():
            return
        client = "{}:{}".format(*self.client) if self.client else "a client"
        logger.warning(
            "stopping: closed the connection from %s, its request still unanswered after the %g s grace period",
            client,
            self.grace_period,
        )
        self._end_request(503, f"the server stopped after waiting {self.grace_period:g} s for this request")

    def _end_request(self, status: int, detail: str) -> None:
        """Close the connection of the request under way, answering ``status`` first unless it has an answer."""
        if self.cycle is not None and self.cycle.response_started:
            self.transport.close()
        else:
            self._refuse(detail, status)

    def _refuse(self, detail: str, status: int = 431) -> None:
        """``status`` with ``detail`` as plain text, then close the connection (the parser cannot go on)."""
        self._headers_arrived()
        self._body_arrived()
        body = detail.encode()
        defaults = self.server_state.default_headers
        head = [STATUS_LINE[status], *(name + b": " + value + b"\r\n" for name, value in defaults)]
        head += [b"content-type: text/plain; charset=utf-8\r\n", b"content-length: %d\r\n" % len(body)]
        self.transport.write(b"".join([*head, b"connection: close\r\n\r\n", body]))
        self.transport.close()
