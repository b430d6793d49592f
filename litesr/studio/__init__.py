"""``litesr studio``: a local web app to upscale images, compare evaluation runs and collect MOS ratings.

Needs the ``studio`` extra (FastAPI, uvicorn). :func:`create_app` builds the ASGI application for a session folder;
``litesr studio`` serves it with uvicorn on 127.0.0.1.
"""

from __future__ import annotations

from .app import StudioConfig, create_app

__all__ = ["StudioConfig", "create_app"]
