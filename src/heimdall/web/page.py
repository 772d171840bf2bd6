"""``/`` (the page), ``/config.json`` (what the page may load) and ``/static/...``.

The page is plain ES modules under ``static/``; its libraries and map data are
copied under ``static/vendor/`` by the web build. A Content-Security-Policy
keeps every request of the page on its own origin, except map tiles when an
operator configured a tile server.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

from heimdall import __version__
from heimdall.core.settings import Settings

STATIC_DIR = Path(__file__).resolve().parent / "static"


def content_security_policy(settings: Settings) -> str:
    images = "'self' data:"
    if settings.map_tile_url:
        # "{s}" is Leaflet's subdomain placeholder: any subdomain of the tile host.
        parts = urlsplit(settings.map_tile_url)
        images += f" {parts.scheme}://{parts.netloc.replace('{s}', '*')}"
    return "; ".join(
        [
            "default-src 'self'",
            f"img-src {images}",
            # Leaflet positions its panes with inline styles.
            "style-src 'self' 'unsafe-inline'",
            "script-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )


def page_router(settings: Settings) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    headers = {
        "Content-Security-Policy": content_security_policy(settings),
        "Cache-Control": "no-cache",
        "X-Content-Type-Options": "nosniff",
    }

    @router.get("/")
    async def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=headers)

    @router.get("/config.json")
    async def config() -> dict[str, str]:
        return {
            "version": __version__,
            "tile_url": settings.map_tile_url,
            "tile_attribution": settings.map_tile_attribution,
        }

    return router


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
