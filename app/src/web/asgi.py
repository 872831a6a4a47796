"""ASGI entry point: ``uvicorn src.web.asgi:app``.

The one module that does work at import time: uvicorn needs ``app``.
"""

import asyncio
import contextvars

from asgiref.wsgi import WsgiToAsgi

from ..config import ConfigError
from . import create_app

try:
    _wsgi = WsgiToAsgi(create_app())
except ConfigError as exc:
    raise SystemExit(f"ctv-bookedbiz-db: {exc}") from None


async def app(scope, receive, send):
    """Each request in a fresh context.  uvicorn starts the next request of
    a keep-alive connection from inside the previous request's task, whose
    context still holds asgiref's executor for a call that has finished:
    that request then failed with 500 ("CurrentThreadExecutor already quit
    or is broken")."""
    await asyncio.create_task(_wsgi(scope, receive, send), context=contextvars.Context())
