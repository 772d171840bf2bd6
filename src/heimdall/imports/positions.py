"""Receiver positions for imported recordings: YAML, CSV or kiwirecorder's station files.

* kiwirecorder (``gnss_pos/<station>.txt``; any file that is neither YAML nor CSV):
  one line per station, ``d.<NAME> = struct('coord', [<lat>,<lon>], 'host', '<host>',
  'port', <port>);``, spaces around the numbers optional; blank lines and ``%`` or
  ``#`` comments are skipped. kiwirecorder writes the station's ``-`` as ``_`` there
  (``NAME`` is an Octave variable), so stations match whatever their case, ``-`` or ``_``.
* YAML: the station registry's form (``stations: [{id, name, latitude, longitude,
  altitude_m, url}]``) or a mapping ``<name>: {latitude, longitude, altitude_m}``.
* CSV with a header row: ``name`` (or ``id``, ``station``), ``latitude`` (``lat``),
  ``longitude`` (``lon``), optionally ``altitude_m`` (``alt``) and ``url``.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml


class PositionsError(ValueError):
    """A positions file that cannot be read; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class StationPosition:
    name: str
    latitude: float
    longitude: float
    altitude_m: float = 0.0
    #: Where the receiver can be reached (``ws://host:port``), when the file says.
    url: str = ""


def station_key(name: str) -> str:
    """What stations are matched by: case, ``-`` and ``_`` do not matter.

    >>> station_key("DF0KL-2") == station_key("df0kl_2")
    True
    """
    return name.strip().lower().replace("-", "_")


_KIWI_LINE = re.compile(
    r"^d\.(?P<name>[A-Za-z0-9_]+)\s*=\s*struct\(\s*'coord'\s*,\s*"
    r"\[\s*(?P<lat>[-+0-9.eE]+)\s*,\s*(?P<lon>[-+0-9.eE]+)\s*\]\s*,\s*"
    r"'host'\s*,\s*'(?P<host>[^']*)'\s*,\s*'port'\s*,\s*(?P<port>\d+)\s*\)\s*;?$"
)
_ALIASES = {
    "name": ("name", "id", "station"),
    "latitude": ("latitude", "lat"),
    "longitude": ("longitude", "lon", "lng"),
    "altitude_m": ("altitude_m", "alt", "altitude"),
    "url": ("url",),
}


def kiwirecorder_position_line(
    name: str, latitude: float, longitude: float, host: str = "", port: int = 8073
) -> str:
    """The line kiwirecorder writes into ``gnss_pos/<station>.txt``.

    >>> kiwirecorder_position_line("DF0KL-2", 50.5, 7.25, "kiwi.example", 8073)
    "d.DF0KL_2 = struct('coord', [50.500000,7.250000], 'host', 'kiwi.example', 'port', 8073);"
    """
    variable = name.replace("-", "_")
    return (
        f"d.{variable} = struct('coord', [{latitude:f},{longitude:f}], "
        f"'host', '{host}', 'port', {port});"
    )


def _position(fields: dict[str, Any], where: str) -> StationPosition:
    values: dict[str, Any] = {}
    for key, aliases in _ALIASES.items():
        found = [fields[a] for a in aliases if fields.get(a) not in (None, "")]
        if found:
            values[key] = found[0]
    missing = [k for k in ("name", "latitude", "longitude") if k not in values]
    if missing:
        raise PositionsError(f"{where}: no {' and no '.join(missing)}")
    try:
        latitude = float(values["latitude"])
        longitude = float(values["longitude"])
        altitude_m = float(values.get("altitude_m", 0.0))
    except (TypeError, ValueError) as exc:
        raise PositionsError(f"{where}: not a number ({exc})") from exc
    if not (math.isfinite(altitude_m) and -90 <= latitude <= 90 and -180 <= longitude <= 180):
        raise PositionsError(f"{where}: impossible position {latitude}, {longitude}, {altitude_m}")
    return StationPosition(
        str(values["name"]).strip(), latitude, longitude, altitude_m, str(values.get("url", ""))
    )


def _kiwirecorder(text: str, filename: str) -> list[StationPosition]:
    positions = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith(("%", "#")):
            continue
        match = _KIWI_LINE.match(line)
        if match is None:
            raise PositionsError(
                f"{filename} line {number}: not a kiwirecorder position line "
                "(d.<NAME> = struct('coord', [<lat>,<lon>], 'host', '<host>', 'port', <port>);)"
            )
        host, port = match["host"], int(match["port"])
        fields = {"name": match["name"], "latitude": match["lat"], "longitude": match["lon"]}
        if host:
            fields["url"] = f"ws://{host}:{port}"
        positions.append(_position(fields, f"{filename} line {number}"))
    return positions


def _yaml(text: str, filename: str) -> list[StationPosition]:
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PositionsError(f"{filename}: not valid YAML ({exc})") from exc
    if isinstance(document, dict) and isinstance(document.get("stations"), list):
        entries = document["stations"]
    elif isinstance(document, dict):
        entries = [
            {"name": name, **fields} if isinstance(fields, dict) else {"name": name}
            for name, fields in document.items()
        ]
    else:
        raise PositionsError(f"{filename}: expected a 'stations' list or a mapping of stations")
    return [
        _position(entry if isinstance(entry, dict) else {}, f"{filename} station {i + 1}")
        for i, entry in enumerate(entries)
    ]


def _csv(text: str, filename: str) -> list[StationPosition]:
    rows = csv.DictReader(io.StringIO(text))
    if rows.fieldnames is None:
        raise PositionsError(f"{filename}: empty CSV file")
    rows.fieldnames = [f.strip().lower() for f in rows.fieldnames]
    return [_position(row, f"{filename} line {rows.line_num}") for row in rows]


def parse_positions(text: str, filename: str) -> dict[str, StationPosition]:
    """The stations of one positions file, by :func:`station_key`.

    >>> found = parse_positions("d.DF0KL_2 = struct('coord', [50.5,7.25], 'host', 'h', 'port', 8073);", "df0kl.txt")
    >>> found["df0kl_2"].latitude, found["df0kl_2"].url
    (50.5, 'ws://h:8073')
    """
    lower = filename.lower()
    if lower.endswith((".yaml", ".yml")):
        positions = _yaml(text, filename)
    elif lower.endswith(".csv"):
        positions = _csv(text, filename)
    else:
        positions = _kiwirecorder(text, filename)
    found: dict[str, StationPosition] = {}
    for position in positions:
        key = station_key(position.name)
        if key in found:
            raise PositionsError(f"{filename}: station {position.name!r} is given twice")
        found[key] = position
    if not found:
        raise PositionsError(f"{filename}: no station positions in it")
    return found
