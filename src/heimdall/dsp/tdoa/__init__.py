"""Time difference of arrival between two GPS-timestamped captures.

Sign convention: a positive lag means the signal reached ``b`` (``y``) later
than ``a`` (``x``): ``y[n] ~ x[n - lag]``.

Split by concern (issue 15): ``peak`` (phasors, peak refinement and choice),
``carrier`` (carrier fits, the notch, the frequency search), ``drift`` (sample-clock
drift between receivers), ``correlation`` (cross-correlations), ``pair``
(a pair's cut and lag), ``lags`` (``tdoa_lags`` of a reference's partners, batched), ``windows`` (sliding-window lags and their statistics).
"""

from heimdall.dsp.tdoa.carrier import (
    CARRIER_NOTCH_HZ,
    MAX_FREQUENCY_OFFSET_HZ,
    AmbiguityPeak,
    cross_ambiguity_peak,
    shift_frequency,
)
from heimdall.dsp.tdoa.correlation import (
    MIN_TDOA_QUALITY_DB,
    CorrelationLag,
    cross_correlation_lag,
)
from heimdall.dsp.tdoa.drift import MAX_SERIES_DRIFT_SAMPLES, resample_to_rate
from heimdall.dsp.tdoa.lags import tdoa_lag, tdoa_lags
from heimdall.dsp.tdoa.pair import PreparedCapture, TdoaLag, capture_start_time_ns
from heimdall.dsp.tdoa.peak import _newton_peak

__all__ = [
    "CARRIER_NOTCH_HZ",
    "MAX_FREQUENCY_OFFSET_HZ",
    "MAX_SERIES_DRIFT_SAMPLES",
    "MIN_TDOA_QUALITY_DB",
    "AmbiguityPeak",
    "CorrelationLag",
    "PreparedCapture",
    "TdoaLag",
    "_newton_peak",
    "capture_start_time_ns",
    "cross_ambiguity_peak",
    "cross_correlation_lag",
    "resample_to_rate",
    "shift_frequency",
    "tdoa_lag",
    "tdoa_lags",
]
