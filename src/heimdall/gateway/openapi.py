"""The gateway's ``/openapi.json``: its own routes plus every service's public API.

Each upstream's document is fetched when asked for (so a restarted service shows
its current API), reduced to the paths the gateway forwards, and merged. Two
services may name different schemas alike: the later one is renamed with its
service's name and its references follow. A service that is down is listed in
the description instead of failing the whole document.
"""

from __future__ import annotations

import asyncio
import copy
import re
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from heimdall.gateway.proxy import Upstream

FETCH_TIMEOUT_S = 5.0
Document = dict[str, Any]


def _rewrite_refs(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        return {
            k: (new if k == "$ref" and v == old else _rewrite_refs(v, old, new))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_refs(v, old, new) for v in node]
    return node


# What the gateway itself may answer on any forwarded path (problem+json bodies).
GATEWAY_ANSWERS = {
    "400": "The path leaves its service's prefix or hides separators",
    "413": "Request body larger than HEIMDALL_GATEWAY_MAX_BODY_BYTES",
    "503": "The service behind this path is down or did not answer in time",
}


def _with_gateway_answers(item: dict[str, Any]) -> dict[str, Any]:
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operation in item.values():
        if isinstance(operation, dict) and "responses" in operation:
            for code, description in GATEWAY_ANSWERS.items():
                operation["responses"].setdefault(
                    code, {"description": description, "content": problem}
                )
    return item


def _slug(service: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", service)


def merge_documents(
    own: Document,
    documents: Mapping[str, Document],
    prefixes: Mapping[str, Sequence[str]],
    unavailable: Mapping[str, str],
) -> Document:
    """``own`` with the paths of each service's document under its ``prefixes``.

    >>> a = {"paths": {"/api/v1/a/x": {"get": {}}, "/health": {}},
    ...      "components": {"schemas": {"Item": {"type": "string"}}}}
    >>> b = {"paths": {"/api/v1/b/y": {"get": {"$ref": "#/components/schemas/Item"}}},
    ...      "components": {"schemas": {"Item": {"type": "integer"}}}}
    >>> doc = merge_documents({"info": {"title": "t"}}, {"svc-a": a, "svc-b": b},
    ...                       {"svc-a": ["/api/v1/a"], "svc-b": ["/api/v1/b"]}, {})
    >>> sorted(doc["paths"]), sorted(doc["components"]["schemas"])
    (['/api/v1/a/x', '/api/v1/b/y'], ['Item', 'svc_b__Item'])
    >>> doc["paths"]["/api/v1/b/y"]["get"]["$ref"]
    '#/components/schemas/svc_b__Item'
    """
    merged = copy.deepcopy(own)
    paths = merged.setdefault("paths", {})
    components = merged.setdefault("components", {})
    for service, document in documents.items():
        document = copy.deepcopy(document)
        for kind, entries in list(document.get("components", {}).items()):
            for name, entry in list(entries.items()):
                known = components.get(kind, {}).get(name)
                if known is not None and known != entry:
                    renamed = f"{_slug(service)}__{name}"
                    document = _rewrite_refs(
                        document, f"#/components/{kind}/{name}", f"#/components/{kind}/{renamed}"
                    )
                    document["components"][kind][renamed] = document["components"][kind].pop(name)
        for path, item in document.get("paths", {}).items():
            if any(path == p or path.startswith(p + "/") for p in prefixes[service]):
                paths[path] = _with_gateway_answers(item)
        for kind, entries in document.get("components", {}).items():
            components.setdefault(kind, {}).update(entries)
    info = merged.setdefault("info", {})
    lines = [info.get("description", "")]
    lines.append("Services merged here: " + ", ".join(sorted(documents)) + ".")
    if unavailable:
        down = ", ".join(f"{name} ({reason})" for name, reason in sorted(unavailable.items()))
        lines.append(f"Not included, not answering now: {down}.")
    info["description"] = "\n\n".join(line for line in lines if line)
    merged["x-heimdall-services"] = {
        **{name: "ok" for name in documents},
        **{name: f"unavailable: {reason}" for name, reason in unavailable.items()},
    }
    return merged


async def _fetch(client: httpx.AsyncClient, upstream: Upstream) -> Document | str:
    try:
        response = await client.get(f"{upstream.base_url}/openapi.json", timeout=FETCH_TIMEOUT_S)
        response.raise_for_status()
        document = response.json()
    except httpx.HTTPStatusError as exc:
        return f"HTTP {exc.response.status_code}"
    except (httpx.HTTPError, ValueError) as exc:
        return type(exc).__name__
    if not isinstance(document, dict):
        return "not an OpenAPI document"
    return document


async def merged_openapi(
    client: httpx.AsyncClient, own: Document, upstreams: Mapping[str, Upstream]
) -> Document:
    """Fetch every upstream's document concurrently and merge them into ``own``."""
    services: dict[str, Upstream] = {}
    prefixes: dict[str, list[str]] = {}
    for area, upstream in upstreams.items():
        services[upstream.name] = upstream
        prefixes.setdefault(upstream.name, []).append(f"/api/v1/{area}")
    names = sorted(services)
    fetched = await asyncio.gather(*(_fetch(client, services[name]) for name in names))
    documents = {n: d for n, d in zip(names, fetched, strict=True) if isinstance(d, dict)}
    unavailable = {n: d for n, d in zip(names, fetched, strict=True) if isinstance(d, str)}
    return merge_documents(own, documents, prefixes, unavailable)
