"""The app's optional login (``SOFIA_QA_AUTH=user:password``): parsing it and a deny-by-default ASGI middleware.

Gradio checks the login on its data routes but not on all of its routes, and its login page embeds the full
API description; ``LoginRequired`` closes both gaps.
"""

from __future__ import annotations

import re

from starlette.middleware import Middleware
from starlette.requests import HTTPConnection

# What a caller without a login may fetch when SOFIA_QA_AUTH is set: the login page, its static assets, the
# login and logout routes, the login check and the startup trigger that ``launch`` itself calls (it answers
# true or false). Everything else answers 401 (see ``LoginRequired``).
PUBLIC_PATHS = {"/", "/login", "/login/", "/logout", "/favicon.ico", "/theme.css", "/gradio_api/theme.css",
                "/robots.txt", "/manifest.json", "/gradio_api/login_check", "/gradio_api/login_check/",
                "/gradio_api/startup-events"}
PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/")
_API_INFO = re.compile(rb"(<script>window\.gradio_api_info = ).*?(;</script>)", re.S)
_NO_API_INFO = rb'\1{"named_endpoints":{},"unnamed_endpoints":{}}\2'


def parse_auth(value: str | None) -> tuple[str, str] | None:
    """``"user:password"`` as a pair for ``demo.launch(auth=...)``; None when no login is asked for."""
    if not value:
        return None
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise ValueError("SOFIA_QA_AUTH must look like user:password")
    return user, password


def middleware(auth: tuple[str, str] | None) -> list[Middleware] | None:
    """The ``app_kwargs["middleware"]`` of ``demo.launch``: ``LoginRequired`` when a login is set, else none."""
    return [Middleware(LoginRequired)] if auth else None


class LoginRequired:
    """ASGI middleware added when ``SOFIA_QA_AUTH`` is set: deny by default.

    Gradio checks the login on its data routes (config, info, queue, call, upload, file=) but not on all of
    its routes (run history, cancel, heartbeat, stream, startup events, FastAPI's /openapi.json, and whatever
    a later Gradio version adds), and its login page embeds the full API description. Here a request without
    a valid session cookie reaches only ``PUBLIC_PATHS``, and the login page loses its API description. If a
    Gradio upgrade renames the session attributes, every request is refused (fail closed), never let through.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket") or self.logged_in(scope):
            await self.app(scope, receive, send)
            return
        path = scope.get("path") or "/"
        method = scope.get("method", "GET")
        if scope["type"] == "http" and (path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)):
            if path == "/" and method == "GET":
                await self.app(scope, receive, self._without_api_info(send))
            else:
                await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = b'{"detail":{"error":"Not authenticated"}}'
        await send({"type": "http.response.start", "status": 401,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"www-authenticate", b"Cookie")]})
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})

    @staticmethod
    def logged_in(scope) -> bool:
        app = scope.get("app")
        try:
            cookies = HTTPConnection(scope).cookies
            tokens, cookie_id = app.tokens, app.cookie_id
        except (AttributeError, KeyError, TypeError):
            return False
        token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
        return bool(token) and token in tokens

    @staticmethod
    def _without_api_info(send):
        start: dict = {}
        chunks: list[bytes] = []

        async def send_filtered(message):
            if message["type"] == "http.response.start":
                start.update(message)
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            body = _API_INFO.sub(_NO_API_INFO, b"".join(chunks))
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        return send_filtered
