from pathlib import Path

import pytest

from heimdall.core.settings import PACKAGE_DATA
from heimdall.stations.service import RegistryFileError, load_registry_file

SHARED_SITES = {"giaveno", "montanaro", "torino", "coazze", "giovi", "genova", "milano"}


def test_simulated_network_is_the_seven_sites_on_loopback() -> None:
    stations = load_registry_file(PACKAGE_DATA / "stations-simulated.yaml")
    assert {s.id for s in stations} == SHARED_SITES
    ports = sorted(int(s.url.rsplit(":", 1)[1]) for s in stations)
    assert ports == list(range(8073, 8080))
    assert all(s.url.startswith("ws://127.0.0.1:") and s.protocol == "kiwisdr" for s in stations)
    assert all(any(lo <= 145.5 <= hi for lo, hi in s.frequency_ranges_mhz) for s in stations)


def test_real_network_ships_alongside() -> None:
    stations = load_registry_file(PACKAGE_DATA / "stations-nw-italy.yaml")
    assert {s.id for s in stations} == SHARED_SITES
    assert all(s.protocol == "openwebrx" for s in stations)


def test_duplicate_ids_are_refused(tmp_path: Path) -> None:
    entry = (
        "  - {id: a, name: A, url: 'ws://127.0.0.1:1', protocol: kiwisdr, latitude: 45, "
        "longitude: 7, frequency_ranges_mhz: [[144, 146]]}\n"
    )
    path = tmp_path / "stations.yaml"
    path.write_text("stations:\n" + entry + entry)
    with pytest.raises(RegistryFileError, match="duplicate station ids: a"):
        load_registry_file(path)


def test_unreadable_yaml_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("stations: [")
    with pytest.raises(RegistryFileError, match="cannot read station registry"):
        load_registry_file(path)
