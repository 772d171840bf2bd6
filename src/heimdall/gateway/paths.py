"""Normalise a request path before it is forwarded, and refuse what would leave its prefix.

The gateway works on the raw path as the client sent it, not on the decoded
one: an upstream decodes ``%2f`` and ``%2e%2e`` itself, so a check on the
decoded path alone would miss ``..%2f`` walks. Each segment is decoded once,
checked, and encoded again, so that the upstream receives exactly the path
that was checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, unquote

# RFC 3986 pchar minus "%": what may stay unencoded inside a segment.
_SEGMENT_SAFE = "!$&'()*+,;=:@-._~"
# A segment still carrying an encoded dot, slash or backslash after one decode was
# encoded twice: some component on the way could decode it again.
_DOUBLE_ENCODED = re.compile(r"%(2e|2f|5c)", re.IGNORECASE)


class PathRefused(ValueError):
    """The path leaves its service's prefix or hides separators; answered with 400."""


def _decode(segment: str) -> str:
    try:
        decoded = unquote(segment, errors="strict")
    except UnicodeDecodeError as exc:
        raise PathRefused("path segment is not valid percent-encoded UTF-8") from exc
    if "/" in decoded:
        raise PathRefused("encoded '/' inside a path segment")
    if "\\" in decoded:
        raise PathRefused("backslash in the path")
    if any(ord(char) < 0x20 or ord(char) == 0x7F for char in decoded):
        raise PathRefused("control character in the path")
    if _DOUBLE_ENCODED.search(decoded):
        raise PathRefused("doubly encoded '.', '/' or '\\' in the path")
    return decoded


@dataclass(frozen=True, slots=True)
class ResolvedPath:
    """Decoded segments after dot resolution; ``floor`` is the shallowest depth a
    ``..`` climbed back to (None: the path had no ``..``)."""

    segments: tuple[str, ...]
    floor: int | None

    def under(self, prefix: str) -> str:
        """The encoded path, refused unless it stayed inside ``prefix`` all along.

        >>> resolve("/api/v1/acquisition/x/../stations").under("/api/v1/acquisition")
        '/api/v1/acquisition/stations'
        >>> resolve("/api/v1/acquisition//status/./a%20b").under("/api/v1/acquisition")
        '/api/v1/acquisition/status/a%20b'
        >>> try:
        ...     resolve("/api/v1/acquisition/%2E%2e/training").under("/api/v1/acquisition")
        ... except PathRefused as refused:
        ...     print(refused)
        path leaves /api/v1/acquisition
        """
        prefix_segments = tuple(s for s in prefix.split("/") if s)
        depth = len(prefix_segments)
        climbed_out = self.floor is not None and self.floor < depth
        if self.segments[:depth] != prefix_segments or climbed_out:
            raise PathRefused(f"path leaves {prefix}")
        return "/" + "/".join(quote(segment, safe=_SEGMENT_SAFE) for segment in self.segments)


def resolve(raw_path: str) -> ResolvedPath:
    """Decode every segment once, drop empty and ``.`` segments, apply ``..``.

    A trailing slash is kept (it can route differently upstream).

    >>> resolve("/a//b/./c/../d/").segments
    ('a', 'b', 'd', '')
    """
    resolved: list[str] = []
    floor: int | None = None
    raw_segments = raw_path.split("/")
    for index, segment in enumerate(raw_segments):
        decoded = _decode(segment)
        if decoded == "..":
            if not resolved:
                raise PathRefused("path climbs above the root")
            resolved.pop()
            floor = len(resolved) if floor is None else min(floor, len(resolved))
        elif decoded == "." or (decoded == "" and index < len(raw_segments) - 1):
            continue
        else:
            resolved.append(decoded)
    return ResolvedPath(tuple(resolved), floor)
