"""How far an unresolved echo can have moved a correlation peak, measured from the pair.

An echo a few microseconds late is far inside the correlation's main lobe at a 12 kHz
sample rate (one sample = 83 us): the peak cannot split, it moves. For a channel
``H(f) = 1 + a exp(j (phi - 2 pi f tau))`` (one echo of amplitude ``a < 1``, delay
``tau``) the peak lands on the channel's group delay, ``tau Re g`` with
``g = a e^{j theta} / (1 + a e^{j theta})``: from ``+a tau / (1 + a)`` (echo in phase) to
``-a tau / (1 - a)`` (in anti-phase), the same for the whole recording while the echo
fades slowly, so neither the correlation's noise sigma nor the windows' scatter shows it.

The bias is the slope of ``arg H``, indistinguishable from a true delay. What the pair
does show is the channel's curvature across the band: ``ln H`` is analytic in the echo
phase, and its second derivative over frequency is
``D = d2 ln H / df2 = -(2 pi tau)^2 a e^{j theta} / (1 + a e^{j theta})^2``, so
``|D| = (2 pi tau)^2 |g|^2 / a`` and the bias is bounded by the curvature:

    |bias| <= tau |g| = sqrt(a |D|) / (2 pi) <= sqrt(|D|) / (2 pi)        (a <= 1)

Both parts of ``D`` are measured: the real part is the curvature of ``ln |H_b / H_a|``
(from the two receivers' power spectra: the signal's own spectrum cancels in the ratio),
the imaginary part the curvature of the cross-spectrum's phase once the lag's slope is
taken out. A pair sees ``ln H_b - ln H_a``, the difference of its receivers' channels:
the bound then reads their combined curvature (two echoes that cancel in it would hide,
a coincidence, not the rule). The band is cut into ``ECHO_BANDS`` sub-bands whose powers
are summed before the logarithm (per-bin spectra are too noisy), each weighted by its
effective SNR from the pair's coherence; the curvature's own standard error (from the
fit's residuals) is taken out of it, so noise alone gives a bound near zero.

Valid while the echo is well inside the lobe (``f tau`` small across the band: a 20 us
echo at 12 kHz spans 0.24 cycles); a resolved echo is ``peak.choose_peak``'s business.
Only the main run of sub-bands counts (another run is another source), and the power
ratio is taken on the signal's powers, the receivers' noise floors fitted out
(``_signal_powers``).

Sensitivity, the catch: the bias is first order in ``tau`` and the curvature second, so
the bound goes as the square root of a small, noisy number. At 12 kHz a -10 dB echo
10 us late (a 4 us bound, a shift of 0.5-2 us) is seen in 7 of 10 broadband pairs at
20 dB and in none at 10 dB; on the realistic benchmark's pairs it flags about a third,
with bounds of 5-110 us, and those pairs err no more than the rest (the receivers'
spectra differ in ways one echo and a white floor do not describe). ``tdoa_lag(...,
echo_bound=True)`` carries it (``TdoaLag.echo_bias_bound_s``); the localization service
does not ask for it, nor add it to the pair's sigma (docs/localization.md, "Multipath
and the pair sigma": measured, no better).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

#: Sub-bands the spectrum is cut into: enough for a curvature (``MIN_BANDS`` must carry
#: signal), few enough that each sums hundreds of bins.
ECHO_BANDS = 32
#: A sub-band whose coherence is below this carries too little of the common signal
#: for its power ratio and phase to mean anything.
MIN_BAND_COHERENCE = 0.5
#: Fewer sub-bands than this (a narrowband signal) leave a curvature fit too few degrees
#: of freedom to judge its own error: no bound.
MIN_BANDS = 8
#: The curvature counts only when its magnitude exceeds this many of its standard errors
#: (|D|^2 / error^2 is chi-square with 2 degrees of freedom under noise alone: 2.45 lets
#: 5 % of echo-free pairs through). The bound goes as the square root of the curvature,
#: so an unchecked noise curvature would read as microseconds.
SIGNIFICANCE_SIGMAS = 2.45
#: Gauss-Newton steps for the two noise floors (converged in a handful).
NOISE_FIT_STEPS = 20


def _weighted_quadratic(
    x: npt.NDArray[np.float64], values: npt.NDArray[np.float64], weights: npt.NDArray[np.float64]
) -> tuple[float, float]:
    """Second derivative of the weighted least-squares parabola through ``values`` and its
    standard error (residuals scaled by their own reduced chi-square, never below 1)."""
    design = np.column_stack([np.ones_like(x), x, x**2])
    sqrt_w = np.sqrt(weights)
    a = design * sqrt_w[:, np.newaxis]
    coefficients, *_ = np.linalg.lstsq(a, values * sqrt_w, rcond=None)
    residuals = (values - design @ coefficients) * sqrt_w
    dof = max(len(x) - 3, 1)
    scale = max(float(residuals @ residuals) / dof, 1.0)
    covariance = np.linalg.pinv(a.T @ a) * scale
    return 2.0 * float(coefficients[2]), 2.0 * float(np.sqrt(max(covariance[2, 2], 0.0)))


def _main_run(
    usable: npt.NDArray[np.bool_], power: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """The contiguous run of usable sub-bands holding the most power: the signal itself.

    Another run is another source (an interferer, or the band wrapped round by the
    frequency compensation) on its own channel: fitted together they bend the fit.
    """
    runs: list[tuple[float, int, int]] = []
    start = None
    for k, ok in enumerate([*usable.tolist(), False]):
        if ok and start is None:
            start = k
        elif not ok and start is not None:
            runs.append((float(power[start:k].sum()), start, k))
            start = None
    main = np.zeros_like(usable)
    if runs:
        _, first, stop = max(runs)
        main[first:stop] = True
    return main


def _signal_powers(
    pxx: npt.NDArray[np.float64],
    pyy: npt.NDArray[np.float64],
    cross_magnitude: npt.NDArray[np.float64],
    bins: npt.NDArray[np.int_],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Each sub-band's signal power at either receiver, its white noise floor taken out.

    The raw ratio ``Pyy / Pxx`` is ``(B + Nb) / (A + Na)``: with receivers at different
    SNRs it follows the signal's own spectral shape (a pair at 30 and 10 dB bends by
    ``ln(1 + 1 / SNR_b(f))`` wherever the spectrum falls off), a curvature far above an
    echo's. The cross-spectrum carries no noise (``|Pxy|^2 = A B``), so the two noise
    floors (per bin, flat) are the ones that make ``(Pxx - na m)(Pyy - nb m) = |Pxy|^2``
    hold across the sub-bands (``m`` bins each): two numbers from many bands.
    """
    m = bins.astype(np.float64)
    scale = 1.0 / (pxx * pyy)
    target = np.square(cross_magnitude)
    upper = np.array([np.min(pxx / m), np.min(pyy / m)])  # no floor above a band's power
    noise = np.zeros(2)
    # Gauss-Newton on the two floors (residual ((Pxx - na m)(Pyy - nb m) - |Pxy|^2) scaled
    # by Pxx Pyy), kept inside their bounds: a few steps, each a 2x2 solve. The product
    # term is what makes the split identifiable when |H_b / H_a| is flat.
    for _ in range(NOISE_FIT_STEPS):
        signal_x, signal_y = pxx - noise[0] * m, pyy - noise[1] * m
        residual = (signal_x * signal_y - target) * scale
        jacobian = np.column_stack([-m * signal_y * scale, -m * signal_x * scale])
        step, *_ = np.linalg.lstsq(jacobian, -residual, rcond=None)
        noise = np.clip(noise + step, 0.0, upper)
        if np.all(np.abs(step) <= 1e-9 * np.maximum(upper, 1e-300)):
            break
    noise_x, noise_y = float(noise[0]), float(noise[1])
    floor = 1e-3  # never below a thousandth of the band's power: the log stays finite
    signal_x = np.maximum(pxx - noise_x * bins, floor * pxx)
    signal_y = np.maximum(pyy - noise_y * bins, floor * pyy)
    return signal_x, signal_y


def echo_bias_bound_samples(
    aligned_cross_spectrum: npt.NDArray[np.complexfloating],
    power_x: npt.NDArray[np.floating],
    power_y: npt.NDArray[np.floating],
    frequency_cycles: npt.NDArray[np.floating],
    *,
    bands: int = ECHO_BANDS,
) -> float:
    """Bound (samples) on the peak shift an unresolved echo can cause (module docstring).

    ``aligned_cross_spectrum`` is ``Y X*`` with the lag's phase slope removed;
    ``power_x``/``power_y`` are ``|X|^2``, ``|Y|^2`` on the same bins at
    ``frequency_cycles`` (cycles per sample, the FFT's order). 0 when too few sub-bands
    carry the common signal to measure a curvature.

    >>> import numpy as np
    >>> f = np.fft.fftfreq(4096)
    >>> flat = np.ones(4096)
    >>> echo = 1 + 0.5 * np.exp(-2j * np.pi * f * 0.2)  # in phase, 0.2 sample late
    >>> bound = echo_bias_bound_samples(echo * np.exp(2j * np.pi * f * 0.2 / 3), flat,
    ...                                 np.abs(echo) ** 2, f)
    >>> round(bound, 2), round(0.5 * 0.2 / 1.5, 2)  # bound and true shift a tau / (1 + a)
    (0.09, 0.07)
    """
    order = np.fft.fftshift(np.arange(len(frequency_cycles)))  # FFT order -> ascending
    edges = np.linspace(0, len(order), bands + 1).astype(int)
    cross = np.add.reduceat(aligned_cross_spectrum[order], edges[:-1])
    pxx = np.add.reduceat(np.asarray(power_x, np.float64)[order], edges[:-1])
    pyy = np.add.reduceat(np.asarray(power_y, np.float64)[order], edges[:-1])
    centres = np.add.reduceat(np.asarray(frequency_cycles, np.float64)[order], edges[:-1]) / (
        np.diff(edges)
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        coherence = np.abs(cross) ** 2 / (pxx * pyy)
    usable = _main_run(np.isfinite(coherence) & (coherence >= MIN_BAND_COHERENCE), pxx)
    if int(usable.sum()) < MIN_BANDS:
        return 0.0
    bins = np.diff(edges)[usable]
    signal_x, signal_y = _signal_powers(pxx[usable], pyy[usable], np.abs(cross[usable]), bins)
    coherence = np.minimum(coherence[usable], 1 - 1e-6)
    # Each sub-band's log ratio and phase have a variance ~ 1 / (bins x effective SNR).
    weights = bins * coherence / (1 - coherence)
    x = centres[usable] - float(np.average(centres[usable], weights=weights))
    log_ratio = 0.5 * np.log(signal_y / signal_x)  # ln |H_b / H_a|
    phase = np.unwrap(np.angle(cross[usable]))
    curvature_real, error_real = _weighted_quadratic(x, log_ratio, weights)
    curvature_imag, error_imag = _weighted_quadratic(x, phase, weights)
    curvature2 = curvature_real**2 + curvature_imag**2
    error2 = error_real**2 + error_imag**2
    if curvature2 <= SIGNIFICANCE_SIGMAS**2 * error2:
        return 0.0
    # |D|^2 less what the fits' noise alone gives it on average.
    return float(np.sqrt(np.sqrt(curvature2 - error2)) / (2 * np.pi))
