"""Robust fit of the power model from sessions of known sources (pure numpy).

For known source positions the log-distance model of ``localization.rss`` is linear in
its unknowns. Reading ``k`` (session ``s``, receiver ``i``, distance ``d``):

    P_k = P0_s - n D_k + g_i + e_k,   D_k = 10 log10(max(d, d0) / d0),
    e_k ~ N(0, sigma^2 + m_k^2)

(minus ``A h1_k + B h2_k`` when the data carry horizon features: the loss past the radio
horizon, ``localization.horizon``, linear in its step ``A`` and slope ``B``)

with ``P0_s = EIRP_s - L0`` when the session's EIRP is known (``L0`` the path loss at
``d0``, the reference loss), else a free per-session power. Gains are known only up to
a common constant (``P0`` or ``L0`` absorbs it): they are fitted with mean zero over
the fitted receivers (``gauge_basis``), and ``L0`` is then the loss relative to the
network's mean gain.

The free ``P0_s`` are eliminated exactly by weighted centring within each session
(Frisch-Waugh-Lovell), leaving a regression on ``R - 1 + 1 (+1)`` columns. Robustness:
Huber IRLS with the residual scale re-estimated each pass (median absolute residual),
then bisquare from there with the scale fixed (an MM-type estimate), and a session weight
from each session's weighted chi-square. ``sigma`` is the robust, dof-corrected scale.
Standard errors are the larger of the model-based and the site-clustered sandwich ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from heimdall.training.robust import (
    BISQUARE_LOG_SD_FACTOR,
    BoolArray,
    FloatArray,
    IntArray,
    bisquare_psi_derivative,
    bisquare_scale,
    bisquare_weights,
    cluster_covariance,
    gauge_basis,
    huber_weights,
    robust_sigma,
    session_weight,
)

_MAX_PASSES = 100
_TOLERANCE = 1e-7


@dataclass(frozen=True, slots=True)
class PowerData:
    """One row per power reading (already in dBm) of a fitted receiver."""

    session: IntArray  # index into the session arrays
    receiver: IntArray  # index into receiver_ids
    power_dbm: FloatArray
    measurement_sigma_db: FloatArray  # the reading's own error, 0 when unknown
    log_distance_db: FloatArray  # 10 log10(max(d, d0) / d0)
    eirp_dbm: FloatArray  # per session, NaN when unknown
    site: IntArray  # per session: sessions of one site are one cluster
    receiver_ids: tuple[str, ...]
    #: Per row, some of ``localization.horizon.horizon_features``' columns (0: the step,
    #: 1: the slope), named by ``horizon_terms``; None leaves the horizon loss out.
    horizon_features: FloatArray | None = None
    horizon_terms: tuple[int, ...] = (0, 1)


@dataclass(frozen=True, slots=True)
class PowerFit:
    gains_db: FloatArray  # mean zero over receiver_ids
    gain_se_db: FloatArray
    path_loss_exponent: float
    path_loss_exponent_se: float
    reference_loss_db: float | None  # relative to the mean gain; None without known EIRPs
    reference_loss_se_db: float | None
    shadowing_sigma_db: float
    shadowing_log_se: float  # standard error of log(sigma)
    source_power_dbm: FloatArray  # per session: fitted P0 (EIRP - L0 when known)
    residuals_db: FloatArray  # per row: observed - predicted
    observation_weights: FloatArray  # per row, bisquare
    session_weights: FloatArray  # per session
    session_chi_square: FloatArray  # per session, weighted
    session_dof: FloatArray
    dof: float
    #: Loss past the radio horizon: step (dB) and slope (dB per metre), a term left out
    #: of the fit being 0; with their standard errors. None without horizon features.
    beyond_horizon: tuple[float, float] | None = None
    beyond_horizon_se: tuple[float, float] | None = None


def _design(data: PowerData) -> tuple[FloatArray, FloatArray, BoolArray, bool]:
    """Columns (gauge gains, exponent, reference loss) and the response; rows of free sessions."""
    receivers = len(data.receiver_ids)
    basis = gauge_basis(receivers)
    known_eirp = np.isfinite(data.eirp_dbm)
    row_known = known_eirp[data.session]
    has_reference_loss = bool(row_known.any())
    columns = [basis[data.receiver], -data.log_distance_db[:, np.newaxis]]
    if has_reference_loss:
        columns.append(-row_known.astype(np.float64)[:, np.newaxis])
    if data.horizon_features is not None:
        columns.append(-data.horizon_features)
    design = np.hstack(columns)
    response = data.power_dbm - np.where(row_known, data.eirp_dbm[data.session], 0.0)
    return design, response, ~row_known, has_reference_loss


def _centre(
    values: FloatArray, weights: FloatArray, session: IntArray, free_rows: BoolArray, sessions: int
) -> FloatArray:
    """Subtract the weighted session mean from the rows of free-P0 sessions (FWL)."""
    values2 = values if values.ndim == 2 else values[:, np.newaxis]
    total = np.zeros((sessions, values2.shape[1]))
    weight_sum = np.zeros(sessions)
    np.add.at(total, session, weights[:, np.newaxis] * values2)
    np.add.at(weight_sum, session, weights)
    means = total / np.maximum(weight_sum, 1e-300)[:, np.newaxis]
    centred = values2 - np.where(free_rows[:, np.newaxis], means[session], 0.0)
    return centred if values.ndim == 2 else centred[:, 0]


@dataclass(frozen=True, slots=True)
class _Regression:
    """The centred regression of ``fit_power``: what every pass solves again."""

    data: PowerData
    design: FloatArray
    response: FloatArray
    free_rows: BoolArray
    measurement_var: FloatArray
    dof: int
    min_sigma_db: float

    @property
    def sessions(self) -> int:
        return len(self.data.eirp_dbm)

    def solve(self, weights: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Weighted least squares of the centred rows: coefficients, residuals, centred x."""
        data, sessions = self.data, self.sessions
        centred_x = _centre(self.design, weights, data.session, self.free_rows, sessions)
        centred_y = _centre(self.response, weights, data.session, self.free_rows, sessions)
        root = np.sqrt(weights)[:, np.newaxis]
        solution: FloatArray = np.linalg.lstsq(
            root * centred_x, root[:, 0] * centred_y, rcond=None
        )[0].astype(np.float64)
        return solution, centred_y - centred_x @ solution, centred_x

    def scale(
        self, residuals: FloatArray, session_w: FloatArray, estimator: Any = robust_sigma
    ) -> float:
        """The shadowing sigma from the residuals of sessions still weighted."""
        used = session_w[self.data.session] > 0.0
        rows = len(self.response)
        return float(
            estimator(
                residuals[used], self.measurement_var[used], self.dof / rows, self.min_sigma_db
            )
        )

    def session_weights(self, z: FloatArray, observation_w: FloatArray) -> FloatArray:
        chi_square, session_dof = _session_chi_square(
            self.data, z, observation_w, self.free_rows, self.sessions
        )
        return np.array(
            [session_weight(t, d) for t, d in zip(chi_square, session_dof, strict=True)]
        )


def _robust_weights(
    regression: _Regression, start_sigma_db: float
) -> tuple[float, FloatArray, FloatArray]:
    """Huber IRLS with the scale re-estimated, from least squares, then bisquare; after
    each phase the sessions are weighted by their chi-square. The scale and the row and
    session weights."""
    rows, sessions = len(regression.response), regression.sessions
    measurement_var = regression.measurement_var
    sigma = start_sigma_db
    observation_w = np.ones(rows)
    session_w = np.ones(sessions)
    coefficients = np.zeros(regression.design.shape[1])
    for phase in ("huber", "bisquare"):
        for _ in range(_MAX_PASSES):
            total_var = sigma**2 + measurement_var
            weights = observation_w * session_w[regression.data.session] / total_var
            updated, residuals, _ = regression.solve(weights)
            z = residuals / np.sqrt(total_var)
            if phase == "huber":
                new_sigma = regression.scale(residuals, session_w)
                observation_w = huber_weights(residuals / np.sqrt(new_sigma**2 + measurement_var))
            else:
                new_sigma = regression.scale(residuals, session_w, bisquare_scale)
                observation_w = bisquare_weights(
                    residuals / np.sqrt(new_sigma**2 + measurement_var)
                )
            change = float(np.max(np.abs(updated - coefficients), initial=0.0))
            change = max(change, abs(new_sigma - sigma))
            coefficients, sigma = updated, new_sigma
            if change < _TOLERANCE:
                break
        session_w = regression.session_weights(z, observation_w)
        if phase == "huber":
            observation_w = bisquare_weights(z)
    return sigma, observation_w, session_w


def _sandwich_covariances(
    centred_x: FloatArray,
    total_sd: FloatArray,
    z: FloatArray,
    row_w: FloatArray,
    observation_w: FloatArray,
    sites: IntArray,
    n_parameters: int,
    dof: int,
) -> tuple[FloatArray, FloatArray]:
    """M-estimator sandwich: bread from psi'(z), meat from psi(z)^2 (rows independent) or
    from psi summed over each site's rows (clustered); x scaled by each row's sigma."""
    rows = len(z)
    scaled_x = centred_x / total_sd[:, np.newaxis]
    psi = bisquare_weights(z) * z
    information = scaled_x.T @ ((row_w * bisquare_psi_derivative(z))[:, np.newaxis] * scaled_x)
    if np.any(np.linalg.eigvalsh(information) <= 0.0):
        information = scaled_x.T @ ((row_w * observation_w)[:, np.newaxis] * scaled_x)
    bread: FloatArray = np.linalg.pinv(information).astype(np.float64)
    scores = scaled_x * (row_w * psi)[:, np.newaxis]
    small_sample = rows / max(dof, 1.0)
    model_cov = small_sample * bread @ (scores.T @ scores) @ bread
    return model_cov, cluster_covariance(bread, scores, sites, n_parameters)


def _source_powers_dbm(
    data: PowerData, leftover: FloatArray, weights: FloatArray, reference_loss: float | None
) -> FloatArray:
    """P0 of each session: EIRP - L0 when known, else the weighted mean of what the
    model leaves of its readings."""
    sessions = len(data.eirp_dbm)
    weight_sum = np.zeros(sessions)
    total = np.zeros(sessions)
    np.add.at(weight_sum, data.session, weights)
    np.add.at(total, data.session, weights * leftover)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray(
            np.where(
                np.isfinite(data.eirp_dbm),
                data.eirp_dbm - (reference_loss or 0.0),
                total / weight_sum,
            ),
            dtype=np.float64,
        )


def fit_power(data: PowerData, *, start_sigma_db: float, min_sigma_db: float) -> PowerFit:
    """Robust estimate of gains, exponent, reference loss and shadowing sigma."""
    sessions = len(data.eirp_dbm)
    design, response, free_rows, has_reference_loss = _design(data)
    free_sessions = int(np.unique(data.session[free_rows]).size)
    n_parameters = design.shape[1] + free_sessions
    rows = len(response)
    dof = rows - n_parameters
    if dof < 1:
        raise ValueError(f"{rows} power readings cannot fit {n_parameters} parameters")
    centred_design = _centre(design, np.ones(rows), data.session, free_rows, sessions)
    if np.linalg.matrix_rank(centred_design) < design.shape[1]:
        raise ValueError(
            "the sessions cannot separate the path-loss exponent from the gains "
            "(too few distinct source-receiver distances)"
        )
    measurement_var = np.square(data.measurement_sigma_db)
    regression = _Regression(data, design, response, free_rows, measurement_var, dof, min_sigma_db)
    sigma, observation_w, session_w = _robust_weights(regression, start_sigma_db)

    # Final pass with the final weights: residuals, scale and covariance agree.
    total_var = sigma**2 + measurement_var
    weights = observation_w * session_w[data.session] / total_var
    coefficients, residuals, centred_x = regression.solve(weights)
    sigma = regression.scale(residuals, session_w, bisquare_scale)
    total_sd = np.sqrt(sigma**2 + measurement_var)
    z = residuals / total_sd
    chi_square, session_dof = _session_chi_square(data, z, observation_w, free_rows, sessions)
    row_w = session_w[data.session]
    model_cov, clustered_cov = _sandwich_covariances(
        centred_x, total_sd, z, row_w, observation_w, data.site[data.session], n_parameters, dof
    )

    receivers = len(data.receiver_ids)
    basis = gauge_basis(receivers)
    to_gains = np.zeros((receivers, design.shape[1]))
    to_gains[:, : receivers - 1] = basis

    def standard_errors(transform: FloatArray) -> FloatArray:
        variances = [
            np.einsum("ij,jk,ik->i", transform, covariance, transform)
            for covariance in (model_cov, clustered_cov)
        ]
        return np.asarray(np.sqrt(np.maximum(*variances)), dtype=np.float64)

    gains = basis @ coefficients[: receivers - 1]
    exponent_index = receivers - 1
    unit = np.eye(design.shape[1])
    gain_se = standard_errors(to_gains)
    exponent_se = float(standard_errors(unit[[exponent_index]])[0])
    reference_loss = reference_se = None
    if has_reference_loss:
        reference_loss = float(coefficients[exponent_index + 1])
        reference_se = float(standard_errors(unit[[exponent_index + 1]])[0])
    beyond_horizon = beyond_horizon_se = None
    if data.horizon_features is not None:
        terms = len(data.horizon_terms)
        values, errors = [0.0, 0.0], [0.0, 0.0]
        for k, term in enumerate(data.horizon_terms):
            index = design.shape[1] - terms + k
            values[term] = float(coefficients[index])
            errors[term] = float(standard_errors(unit[[index]])[0])
        beyond_horizon = (values[0], values[1])
        beyond_horizon_se = (errors[0], errors[1])
    return PowerFit(
        gains_db=gains,
        gain_se_db=gain_se,
        path_loss_exponent=float(coefficients[exponent_index]),
        path_loss_exponent_se=exponent_se,
        reference_loss_db=reference_loss,
        reference_loss_se_db=reference_se,
        shadowing_sigma_db=sigma,
        shadowing_log_se=BISQUARE_LOG_SD_FACTOR / np.sqrt(dof),
        source_power_dbm=_source_powers_dbm(
            data,
            response - design @ coefficients,
            observation_w * row_w / total_sd**2,
            reference_loss,
        ),
        residuals_db=residuals,
        observation_weights=observation_w,
        session_weights=session_w,
        session_chi_square=chi_square,
        session_dof=session_dof,
        dof=float(dof),
        beyond_horizon=beyond_horizon,
        beyond_horizon_se=beyond_horizon_se,
    )


def _session_chi_square(
    data: PowerData,
    z: FloatArray,
    observation_w: FloatArray,
    free_rows: BoolArray,
    sessions: int,
) -> tuple[FloatArray, FloatArray]:
    """Per session: sum of w z^2 over its readings, and its dof (sum of w, minus a free P0)."""
    chi_square = np.zeros(sessions)
    dof = np.zeros(sessions)
    np.add.at(chi_square, data.session, observation_w * z**2)
    np.add.at(dof, data.session, observation_w)
    has_free = np.zeros(sessions, dtype=bool)
    has_free[data.session[free_rows]] = True
    return chi_square, dof - has_free
