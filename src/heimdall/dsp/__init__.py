"""Signal measurement on complex IQ: pure functions, numpy in and out, no I/O.

Full scale is a complex amplitude of 1.0 (a full-scale complex exponential is
0 dBFS). See ``docs/dsp.md`` for the definitions of every figure.
"""

from heimdall.dsp.detection import SignalBand, detect_signal_band
from heimdall.dsp.measurement import (
    Measurement,
    mean_instantaneous_frequency_hz,
    measure,
    tone_frequency_offset_hz,
)
from heimdall.dsp.noise import noise_floor_fs2_per_hz
from heimdall.dsp.spectrum import PowerSpectrum, validate_iq, welch_psd
from heimdall.dsp.tdoa import (
    MIN_TDOA_QUALITY_DB,
    CorrelationLag,
    TdoaLag,
    cross_correlation_lag,
    tdoa_lag,
)

__all__ = [
    "MIN_TDOA_QUALITY_DB",
    "CorrelationLag",
    "Measurement",
    "PowerSpectrum",
    "SignalBand",
    "TdoaLag",
    "cross_correlation_lag",
    "detect_signal_band",
    "mean_instantaneous_frequency_hz",
    "measure",
    "noise_floor_fs2_per_hz",
    "tdoa_lag",
    "tone_frequency_offset_hz",
    "validate_iq",
    "welch_psd",
]
