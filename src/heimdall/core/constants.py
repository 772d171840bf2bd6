"""Physical and time constants: the one place every layer takes them from."""

from __future__ import annotations

#: Speed of light in vacuum (exact, SI), m/s. Radio propagation over the paths Heimdall
#: measures differs from it by < 0.03 % (air's refractive index), far below timing noise.
SPEED_OF_LIGHT_M_PER_S = 299_792_458.0

#: Thermal noise density kT at the standard reference temperature T0 = 290 K, dBm/Hz.
BOLTZMANN_DBM_PER_HZ = -174.0

NS_PER_S = 1_000_000_000

#: Radio bands by the ITU's decades (Hz, lower edge inclusive). Below 30 MHz the wave
#: that joins receivers 50-1000 km apart follows the ground; above it, line of sight.
LF_MIN_HZ = 30e3
MF_MIN_HZ = 300e3
HF_MIN_HZ = 3e6
VHF_MIN_HZ = 30e6

#: Ground-wave group delay beyond light time over average land, ns per km of path, per
#: band (below LF: the LF value). The secondary-phase factor of a ground wave grows with
#: frequency and with poorer ground: a fraction of a us per 100 km at LF over sea water
#: (Loran-C's ASF), 1-2 us per 100 km at MF and a few us per 100 km at HF over land.
#: The localization's ground-wave model adds this nominal rate to every path; the spread
#: of the real rate about it (ground, season, path) is what the per-band timing floor
#: below covers.
GROUND_WAVE_EXCESS_NS_PER_KM = {"lf": 5.0, "mf": 15.0, "hf": 30.0}

#: Per-receiver timing sigma of an uncalibrated receiver on a ground-wave band, ns: the
#: spread of one link's ground-wave delay about the nominal rate over a typical path of
#: a network 200-500 km across (~200 km), with a GPS receiver's own bias (a few hundred
#: ns). At HF the rate's spread is ~8 ns/km (the ground from wet to dry, +-10 ns/km, and
#: each path's own variation, ~6 ns/km): 1.7 us. Lower bands vary less. Above 30 MHz the
#: configured GPS timing sigma applies.
GROUND_WAVE_TIMING_FLOOR_NS = {"lf": 500.0, "mf": 1000.0, "hf": 1700.0}
