"""Guards in front of the app: the request body size limit, the body's type and the bearer token.

The body limit is plain ASGI middleware, so an oversized body is refused (413) while it streams
in, before anything parses it, whether or not the client sent a Content-Length. The same pass
reads a POST body sent without a JSON content type (plain `curl -d` sends
`application/x-www-form-urlencoded`, some clients none at all) as JSON, since JSON is all the
API takes; a body declared as anything else is refused with 415.
"""

from __future__ import annotations

import secrets

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Content types a JSON body arrives with from clients that do not say JSON: read as JSON.
UNTYPED = ("", "application/x-www-form-urlencoded", "text/plain")


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Every 4xx/5xx of the server has this shape: {"error": "<what, where>"}."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


class BodyLimit:
    """Refuse request bodies larger than `max_bytes` with 413; pass everything else through."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and not declared.isdigit():
            await error_response(400, "Content-Length: not a number")(scope, receive, send)
            return
        if declared is not None and int(declared) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left: nothing to answer
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        if scope.get("method") == "POST":
            kind = (_header(scope, b"content-type") or "").split(";")[0].strip().lower()
            if kind in UNTYPED:
                headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-type"]
                scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
            elif not kind.endswith("json"):
                await error_response(415, f"Content-Type {kind}: the API takes JSON")(scope, receive, send)
                return
        await self.app(scope, _replay(bytes(body), receive), send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"request body larger than the server's limit of {self.max_bytes} bytes"
        await error_response(413, message)(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1").strip())
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that returns the body already read, then defers to the real one (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def token_ok(authorization: str | None, token: str) -> bool:
    """`Authorization: Bearer <token>`, compared in constant time."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(given.strip().encode(), token.encode())
