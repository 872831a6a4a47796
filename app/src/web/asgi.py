"""ASGI entry point: ``uvicorn src.web.asgi:app``.

The one module that does work at import time: uvicorn needs ``app``.
"""

from asgiref.wsgi import WsgiToAsgi

from ..config import ConfigError
from . import create_app

try:
    app = WsgiToAsgi(create_app())
except ConfigError as exc:
    raise SystemExit(f"ctv-bookedbiz-db: {exc}") from None
