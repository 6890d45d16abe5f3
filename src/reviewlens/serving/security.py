"""Who may call the service, and what its logs may hold.

``BearerAuthMiddleware`` asks for ``Authorization: Bearer KEY`` before anything reads the body;
``ErrorLogMiddleware`` answers an unexpected failure with a 500 and logs it without the exception's
message, which may quote a review, unless the server was started with ``--log-texts``.
"""

from __future__ import annotations

import hmac
import logging
import traceback
from collections.abc import Collection
from typing import Any

from reviewlens.serving.limits import reply

logger = logging.getLogger("reviewlens.serving")


class BearerAuthMiddleware:
    """Pure ASGI middleware: every HTTP request but those for ``open_paths`` needs the key (RFC 6750)."""

    def __init__(self, app: Any, key: str, open_paths: Collection[str]):
        self.app = app
        self.key = key.encode()
        self.open_paths = frozenset(open_paths)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        token = self.token(scope["headers"])
        # Compared in constant time: how long a refusal takes says nothing about how much of the key matched.
        if token is not None and hmac.compare_digest(token, self.key):
            await self.app(scope, receive, send)
            return
        if token is None:
            detail = "this server needs an API key: send the header Authorization: Bearer KEY"
            challenge = b'Bearer realm="reviewlens"'
        else:
            detail = "the API key is wrong; send the key the server was started with"
            challenge = b'Bearer realm="reviewlens", error="invalid_token"'
        await reply(send, 401, detail, [(b"www-authenticate", challenge)])

    @staticmethod
    def token(headers: list[tuple[bytes, bytes]]) -> bytes | None:
        """The bearer token of the request's Authorization header, if it has one."""
        for name, value in headers:
            if name == b"authorization":
                scheme, _, token = value.strip().partition(b" ")
                if scheme.lower() == b"bearer" and token.strip():
                    return token.strip()
        return None


def describe(error: BaseException, log_texts: bool) -> str:
    """The traceback of ``error``; without ``log_texts``, its message (and any chained one) left out."""
    if log_texts:
        return "".join(traceback.format_exception(error)).rstrip()
    frames = "".join(traceback.format_tb(error.__traceback__))
    withheld = "message withheld, it may quote a review; --log-texts shows it"
    return f"Traceback (most recent call last):\n{frames}{type(error).__qualname__} ({withheld})"


class ErrorLogMiddleware:
    """Pure ASGI middleware: an exception from the app becomes a 500 and one log record, and goes no further
    (the server would log it again, message and all)."""

    def __init__(self, app: Any, log_texts: bool):
        self.app = app
        self.log_texts = log_texts

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception as error:
            logger.error("%s %s failed: %s", scope["method"], scope["path"], describe(error, self.log_texts))
            if not started:
                await reply(send, 500, "the server failed to answer; its log says why")
