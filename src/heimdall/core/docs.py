"""Swagger UI at ``/docs`` from assets served by the service itself (no CDN).

FastAPI's default page loads its script, style and icon from public CDNs, which
an operator's offline network cannot reach. The assets come from the
``swagger-ui-dist`` npm package, copied into the package by the web build
(``make install``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

SWAGGER_DIR = Path(__file__).resolve().parent.parent / "web" / "static" / "vendor" / "swagger-ui"
ASSETS = frozenset({"swagger-ui-bundle.js", "swagger-ui.css"})


def docs_router(title: str, openapi_url: str = "/openapi.json") -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/docs")
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - API",
            swagger_js_url="/docs/swagger-ui-bundle.js",
            swagger_css_url="/docs/swagger-ui.css",
            swagger_favicon_url="data:,",
        )

    @router.get("/docs/{asset}")
    async def asset(asset: str) -> FileResponse:
        if asset not in ASSETS or not (SWAGGER_DIR / asset).is_file():
            raise HTTPException(404, f"no documentation asset {asset} (run make install)")
        return FileResponse(SWAGGER_DIR / asset)

    return router
