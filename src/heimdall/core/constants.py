"""Physical and time constants: the one place every layer takes them from."""

from __future__ import annotations

#: Speed of light in vacuum (exact, SI), m/s. Radio propagation over the paths Heimdall
#: measures differs from it by < 0.03 % (air's refractive index), far below timing noise.
SPEED_OF_LIGHT_M_PER_S = 299_792_458.0

#: Thermal noise density kT at the standard reference temperature T0 = 290 K, dBm/Hz.
BOLTZMANN_DBM_PER_HZ = -174.0

NS_PER_S = 1_000_000_000

#: Mean Earth radius (IUGG R1), m: the smooth-Earth radio horizon scales it by 4/3.
EARTH_MEAN_RADIUS_M = 6_371_008.8
