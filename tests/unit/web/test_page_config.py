"""What the page may load: its own origin only, plus a tile server when one is configured."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from heimdall.core.settings import Settings
from heimdall.web.page import STATIC_DIR, page_router

TILES = "https://{s}.tiles.example.org/{z}/{x}/{y}.png"


async def get(settings: Settings, path: str) -> httpx.Response:
    app = FastAPI()
    app.include_router(page_router(settings))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        return await c.get(path)


async def test_without_tiles_everything_stays_on_the_pages_origin() -> None:
    page = await get(Settings(map_tile_url=""), "/")
    assert page.status_code == 200
    policy = dict(
        part.strip().split(" ", 1) for part in page.headers["content-security-policy"].split(";")
    )
    assert policy["default-src"] == "'self'"
    assert policy["connect-src"] == "'self'"
    assert policy["script-src"] == "'self'"
    assert policy["img-src"] == "'self' data:"
    config = (await get(Settings(map_tile_url=""), "/config.json")).json()
    assert config["tile_url"] == ""


async def test_a_configured_tile_server_is_the_one_other_image_source() -> None:
    settings = Settings(map_tile_url=TILES, map_tile_attribution="© tiles")
    page = await get(settings, "/")
    assert (
        "img-src 'self' data: https://*.tiles.example.org;"
        in page.headers["content-security-policy"] + ";"
    )
    config = (await get(settings, "/config.json")).json()
    assert (config["tile_url"], config["tile_attribution"]) == (TILES, "© tiles")


@pytest.mark.parametrize(
    "url",
    [
        "tiles.example.org/{z}/{x}/{y}.png",
        "https://tiles.example.org/{z}.png",
        "javascript:{z}{x}{y}",
    ],
)
def test_tile_urls_must_be_http_templates(url: str) -> None:
    with pytest.raises(ValidationError, match="map_tile_url"):
        Settings(map_tile_url=url)


def test_the_page_references_only_files_it_ships() -> None:
    html = (STATIC_DIR / "index.html").read_text()
    for reference in (
        "/static/js/main.js",
        "/static/css/app.css",
        "/static/vendor/leaflet/leaflet.css",
    ):
        assert reference in html
        assert (STATIC_DIR / reference.removeprefix("/static/")).is_file(), reference
    assert "http://" not in html and "https://" not in html
