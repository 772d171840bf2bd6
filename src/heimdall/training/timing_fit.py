"""Per-receiver timing bias and timing sigma from TDOA lags of known sources (pure numpy).

Pair ``p = (i, j)`` of session ``s`` reports the raw lag ``dt_p`` (no clock correction);
with the known source position its residual is

    r_p = dt_p - (d_i - d_j) / c = b_i - b_j + u_is - u_js + e_p

``b`` the receivers' fixed timing biases, ``u_is ~ N(0, s_i^2)`` receiver ``i``'s
timestamp error in that capture (shared by every pair ``i`` is in: one session's pairs
are correlated), ``e_p ~ N(0, c_p^2)`` the correlation's own error (the pair's
``sigma_s``). Per session the residual vector is Gaussian with mean ``M b`` and
covariance ``V = diag(c^2) + M diag(s^2) M^T`` (``M`` the pairs' +1/-1 incidence).

Biases are known only up to a common constant (every pair is a difference): they are
fitted with mean zero over the fitted receivers. The sigmas ``s`` are variance
components: restricted maximum likelihood (REML: the likelihood of the residuals once
the biases are profiled out, which does not shrink the sigmas by the biases' dof) over
``log s`` with the analytic gradient, all sessions batched (padded to the longest).
No sigma goes below ``min_timing_sigma_ns``: a perfect fit of a few sessions is no
proof of a perfect clock.

Robustness: the start is a bisquare IRLS on the pairs taken as independent (a gross
outlier gets no weight), then REML rounds in which each session's Mahalanobis
chi-square is checked: a session with one bad pair loses that pair, a session bad
throughout (a wrong known position) is down-weighted (``robust.session_weight``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize

from heimdall.training.robust import (
    BoolArray,
    FloatArray,
    IntArray,
    bisquare_weights,
    cluster_covariance,
    gauge_basis,
    huber_weights,
    robust_sigma,
    session_chi_square_limit,
    session_weight,
)

_START_PASSES = 50
_ROUNDS = 6
_MAX_SIGMA_NS = 1e5


@dataclass(frozen=True, slots=True)
class TimingData:
    """One row per usable pair (both receivers fitted), residuals against the known geometry."""

    session: IntArray
    first: IntArray  # receiver index of i
    second: IntArray  # receiver index of j
    residual_ns: FloatArray  # raw lag - (d_i - d_j) / c
    correlation_sigma_ns: FloatArray
    site: IntArray  # per session
    receiver_ids: tuple[str, ...]
    sessions: int


@dataclass(frozen=True, slots=True)
class TimingFit:
    biases_ns: FloatArray  # mean zero over receiver_ids
    bias_se_ns: FloatArray
    sigmas_ns: FloatArray
    sigma_log_se: FloatArray  # standard error of log(sigma); inf when not determined
    at_floor: BoolArray
    pair_residuals_ns: FloatArray  # per row: residual after the fitted biases
    pair_used: BoolArray  # per row: False when excluded as the bad pair of its session
    session_weights: FloatArray
    session_chi_square: FloatArray
    session_dof: FloatArray


@dataclass
class _Batch:
    """Pairs padded per session: unused slots have a zero incidence row and unit variance."""

    incidence: FloatArray  # (S, P, R)
    residual: FloatArray  # (S, P)
    correlation_var: FloatArray  # (S, P)
    row_of: IntArray  # (S, P): data row in the slot, -1 for padding
    active: BoolArray  # (S, P)


def _batch(data: TimingData) -> _Batch:
    counts = np.bincount(data.session, minlength=data.sessions)
    slots = max(int(counts.max(initial=0)), 1)
    receivers = len(data.receiver_ids)
    incidence = np.zeros((data.sessions, slots, receivers))
    residual = np.zeros((data.sessions, slots))
    variance = np.ones((data.sessions, slots))
    row_of = np.full((data.sessions, slots), -1, dtype=np.intp)
    order = np.argsort(data.session, kind="stable")
    position = np.zeros(data.sessions, dtype=np.intp)
    for row in order:
        s = data.session[row]
        k = position[s]
        position[s] += 1
        incidence[s, k, data.first[row]] = 1.0
        incidence[s, k, data.second[row]] = -1.0
        residual[s, k] = data.residual_ns[row]
        variance[s, k] = data.correlation_sigma_ns[row] ** 2
        row_of[s, k] = row
    return _Batch(incidence, residual, variance, row_of, row_of >= 0)


def _masked(batch: _Batch, active: BoolArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    keep = active[..., np.newaxis]
    return (
        np.where(keep, batch.incidence, 0.0),
        np.where(active, batch.residual, 0.0),
        np.where(active, batch.correlation_var, 1.0),
    )


@dataclass(frozen=True)
class _Evaluation:
    objective: float
    gradient: FloatArray
    coefficients: FloatArray  # gauge coordinates of the biases
    information: FloatArray  # sum_s w_s (MZ)^T V^-1 (MZ)
    errors: FloatArray  # (S, P) residual after the biases
    inverse: FloatArray  # (S, P, P)


def _evaluate(
    log_sigmas: FloatArray,
    incidence: FloatArray,
    residual: FloatArray,
    correlation_var: FloatArray,
    weights: FloatArray,
    basis: FloatArray,
) -> _Evaluation:
    """-2 log restricted likelihood (weighted sessions), its gradient in log sigma, the biases."""
    variances = np.exp(2.0 * log_sigmas)
    covariance = np.einsum("spr,r,sqr->spq", incidence, variances, incidence)
    slots = covariance.shape[1]
    covariance[:, np.arange(slots), np.arange(slots)] += correlation_var
    inverse = np.linalg.inv(covariance)
    _, log_det = np.linalg.slogdet(covariance)
    gauge_incidence = incidence @ basis  # (S, P, R-1)
    inverse_mz = inverse @ gauge_incidence
    information = np.einsum("s,spa,spb->ab", weights, gauge_incidence, inverse_mz)
    score = np.einsum("s,spa,sp->a", weights, inverse_mz, residual)
    information_inv = np.linalg.inv(information)
    coefficients = information_inv @ score
    errors = residual - gauge_incidence @ coefficients
    inverse_e = np.einsum("spq,sq->sp", inverse, errors)
    quadratic = np.einsum("sp,sp->s", errors, inverse_e)
    _, info_log_det = np.linalg.slogdet(information)
    objective = float(weights @ (log_det + quadratic) + info_log_det)

    inverse_m = inverse @ incidence  # (S, P, R)
    trace_term = np.einsum("spr,spr->sr", incidence, inverse_m)  # m_r^T V^-1 m_r
    projected = np.einsum("spr,sp->sr", incidence, inverse_e)  # m_r^T V^-1 e
    cross = np.einsum("spa,spr->sar", gauge_incidence, inverse_m)  # (MZ)^T V^-1 m_r
    restricted = np.einsum("sar,ab,sbr->sr", cross, information_inv, cross)
    per_variance = weights @ (trace_term - projected**2 - restricted)
    gradient = 2.0 * variances * per_variance
    return _Evaluation(objective, gradient, coefficients, information, errors, inverse)


def _robust_start(
    data: TimingData, basis: FloatArray, start_sigma_ns: float
) -> tuple[FloatArray, float, FloatArray]:
    """Biases from the pairs taken as independent: Huber then bisquare IRLS. Also the scale."""
    variance = data.correlation_sigma_ns**2 + 2.0 * start_sigma_ns**2
    design = basis[data.first] - basis[data.second]
    coefficients = np.zeros(basis.shape[1])
    weights = np.ones(len(variance))
    scale = 1.0
    for weight_function in (huber_weights, bisquare_weights):
        for _ in range(_START_PASSES):
            root = np.sqrt(weights / variance)[:, np.newaxis]
            updated: FloatArray = np.linalg.lstsq(
                root * design, root[:, 0] * data.residual_ns, rcond=None
            )[0].astype(np.float64)
            z = (data.residual_ns - design @ updated) / np.sqrt(variance)
            if weight_function is huber_weights:
                scale = robust_sigma(z, np.zeros_like(z), 1.0, 1e-3)
            weights = weight_function(z / scale)
            converged = np.max(np.abs(updated - coefficients), initial=0.0) < 1e-6
            coefficients = updated
            if converged:
                break
    z = (data.residual_ns - design @ coefficients) / (scale * np.sqrt(variance))
    chi_square = np.zeros(data.sessions)
    dof = np.zeros(data.sessions)
    np.add.at(chi_square, data.session, z**2)
    np.add.at(dof, data.session, 1.0)
    session_w = np.array([session_weight(t, d) for t, d in zip(chi_square, dof, strict=True)])
    return coefficients, scale, session_w


def _session_checks(
    batch: _Batch, active: BoolArray, evaluation: _Evaluation, log_sigmas: FloatArray
) -> tuple[BoolArray, FloatArray, FloatArray, FloatArray]:
    """Per session: drop its one bad pair if that explains a failed chi-square, else weight it."""
    inverse_e = np.einsum("spq,sq->sp", evaluation.inverse, evaluation.errors)
    chi_square = np.einsum("sp,sp->s", evaluation.errors, inverse_e)
    dof = active.sum(axis=1).astype(np.float64)
    active = active.copy()
    weights = np.ones(len(chi_square))
    variances = np.exp(2.0 * log_sigmas)
    for s in range(len(chi_square)):
        if dof[s] == 0 or chi_square[s] <= session_chi_square_limit(dof[s]):
            continue
        best: tuple[float, int] | None = None
        if dof[s] >= 2:
            for slot in np.flatnonzero(active[s]):
                keep = active[s].copy()
                keep[slot] = False
                incidence = batch.incidence[s][keep]
                covariance = incidence @ (variances[:, np.newaxis] * incidence.T) + np.diag(
                    batch.correlation_var[s][keep]
                )
                errors = evaluation.errors[s][keep]
                reduced = float(errors @ np.linalg.solve(covariance, errors))
                if best is None or reduced < best[0]:
                    best = (reduced, int(slot))
        if best is not None and best[0] <= session_chi_square_limit(dof[s] - 1):
            active[s, best[1]] = False
            chi_square[s], dof[s] = best[0], dof[s] - 1
        else:
            weights[s] = session_weight(float(chi_square[s]), float(dof[s]))
    return active, weights, chi_square, dof


def fit_timing(data: TimingData, *, start_sigma_ns: float, min_sigma_ns: float) -> TimingFit:
    """Biases (gauge: mean zero) and timing sigmas of ``data.receiver_ids``."""
    receivers = len(data.receiver_ids)
    basis = gauge_basis(receivers)
    batch = _batch(data)
    _, _, session_w = _robust_start(data, basis, start_sigma_ns)
    active = batch.active.copy()
    lower = np.log(min_sigma_ns)
    log_sigmas = np.full(receivers, np.log(max(start_sigma_ns, min_sigma_ns)))
    bounds = [(lower, np.log(_MAX_SIGMA_NS))] * receivers
    chi_square = np.zeros(data.sessions)
    dof = np.zeros(data.sessions)
    for _ in range(_ROUNDS):
        incidence, residual, correlation_var = _masked(batch, active)

        def objective(
            theta: FloatArray,
            incidence: FloatArray = incidence,
            residual: FloatArray = residual,
            correlation_var: FloatArray = correlation_var,
            weights: FloatArray = session_w,
        ) -> tuple[float, FloatArray]:
            result = _evaluate(theta, incidence, residual, correlation_var, weights, basis)
            return result.objective, result.gradient

        solution = optimize.minimize(
            objective, log_sigmas, jac=True, method="L-BFGS-B", bounds=bounds
        )
        log_sigmas = np.asarray(solution.x, dtype=np.float64)
        evaluation = _evaluate(log_sigmas, incidence, residual, correlation_var, session_w, basis)
        new_active, new_w, chi_square, dof = _session_checks(batch, active, evaluation, log_sigmas)
        settled = np.array_equal(new_active, active) and np.allclose(new_w, session_w, atol=1e-3)
        active, session_w = new_active, new_w
        if settled:
            break

    incidence, residual, correlation_var = _masked(batch, active)
    evaluation = _evaluate(log_sigmas, incidence, residual, correlation_var, session_w, basis)
    biases = basis @ evaluation.coefficients
    bread: FloatArray = np.linalg.inv(evaluation.information).astype(np.float64)
    gauge_incidence = incidence @ basis
    scores = session_w[:, np.newaxis] * np.einsum(
        "spa,spq,sq->sa", gauge_incidence, evaluation.inverse, evaluation.errors
    )
    timed = active.any(axis=1)
    clustered = cluster_covariance(bread, scores[timed], data.site[timed], basis.shape[1])
    bias_var = np.maximum(
        np.einsum("ia,ab,ib->i", basis, bread, basis),
        np.einsum("ia,ab,ib->i", basis, clustered, basis),
    )
    sigma_log_se = _log_sigma_standard_errors(
        log_sigmas, incidence, residual, correlation_var, session_w, basis, lower
    )

    pair_residuals = data.residual_ns - (biases[data.first] - biases[data.second])
    pair_used = np.zeros(len(data.residual_ns), dtype=bool)
    pair_used[batch.row_of[active]] = True
    return TimingFit(
        biases_ns=biases,
        bias_se_ns=np.sqrt(bias_var),
        sigmas_ns=np.exp(log_sigmas),
        sigma_log_se=sigma_log_se,
        at_floor=log_sigmas <= lower + 1e-6,
        pair_residuals_ns=pair_residuals,
        pair_used=pair_used,
        session_weights=session_w,
        session_chi_square=chi_square,
        session_dof=dof,
    )


def _log_sigma_standard_errors(
    log_sigmas: FloatArray,
    incidence: FloatArray,
    residual: FloatArray,
    correlation_var: FloatArray,
    weights: FloatArray,
    basis: FloatArray,
    lower: float,
) -> FloatArray:
    """From the observed information: the objective is -2 log L, so Cov = 2 H^-1.

    ``H`` by central differences of the analytic gradient. A sigma at its floor is
    held there (its row and column left out); an undetermined one gets ``inf``.
    """
    count = len(log_sigmas)
    step = 1e-4
    hessian = np.zeros((count, count))
    for k in range(count):
        shift = np.zeros(count)
        shift[k] = step
        up = _evaluate(log_sigmas + shift, incidence, residual, correlation_var, weights, basis)
        down = _evaluate(log_sigmas - shift, incidence, residual, correlation_var, weights, basis)
        hessian[k] = (up.gradient - down.gradient) / (2.0 * step)
    hessian = 0.5 * (hessian + hessian.T)
    free = log_sigmas > lower + 1e-6
    standard_errors = np.full(count, np.inf)
    if free.any():
        block = hessian[np.ix_(free, free)]
        eigenvalues, eigenvectors = np.linalg.eigh(block)
        if np.all(eigenvalues > 1e-9):
            covariance = 2.0 * (eigenvectors / eigenvalues) @ eigenvectors.T
            standard_errors[free] = np.sqrt(np.diag(covariance))
    standard_errors[~free] = 0.0
    return standard_errors
