"""Small statistical helpers shared by the analytics: two-sided normal p-values and the
Benjamini-Hochberg false-discovery-rate correction.

Written here (a dozen lines each) rather than imported so that the dashboard's numbers do
not depend on which optional statistics package happens to be installed; the tests check
them against ``scipy.stats.false_discovery_control`` and against worked examples of the
Benjamini-Hochberg definition (as statsmodels' ``multipletests(method="fdr_bh")`` states it).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr


def two_sided_p(z: ArrayLike) -> NDArray[np.float64]:
    """Two-sided p-value of standard-normal z-scores: ``2 · P(Z > |z|)``.

    ArcGIS's Hot Spot Analysis reports this (two-tailed) p-value; PySAL's ``p_norm`` is the
    one-tailed half of it. NaN z-scores give NaN.
    """
    zz = np.abs(np.asarray(z, dtype=np.float64))
    return np.asarray(2.0 * ndtr(-zz), dtype=np.float64)


def _check_p(p: ArrayLike) -> NDArray[np.float64]:
    arr = np.asarray(p, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"p-values must be a 1-D array, got shape {arr.shape}")
    if np.isnan(arr).any() or (arr < 0).any() or (arr > 1).any():
        raise ValueError("p-values must lie in [0, 1] and not be NaN; drop or fix those units")
    return arr


def fdr_bh(p: ArrayLike) -> NDArray[np.float64]:
    """Benjamini-Hochberg adjusted p-values ("q-values").

    With the ``m`` p-values sorted ascending, ``q_(i) = min_{j >= i} min(1, m · p_(j) / j)``.
    A test is significant at false discovery rate ``alpha`` exactly when ``q <= alpha``
    (Benjamini & Hochberg 1995, *J. R. Stat. Soc. B* 57(1):289-300), the same as
    ``scipy.stats.false_discovery_control(p, method="bh")`` and statsmodels'
    ``multipletests(p, method="fdr_bh")[1]``.

    Parameters
    ----------
    p
        Raw p-values, 1-D, each in [0, 1].

    Returns
    -------
    numpy.ndarray
        Adjusted p-values in the input order; each is ``>= p`` and their order follows p's.
    """
    arr = _check_p(p)
    m = arr.size
    if m == 0:
        return arr.copy()
    order = np.argsort(arr, kind="stable")
    scaled = arr[order] * m / np.arange(1, m + 1)
    q_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    out = np.empty(m, dtype=np.float64)
    out[order] = q_sorted
    return out


def bh_critical_p(p: ArrayLike, alpha: float) -> float | None:
    """The Benjamini-Hochberg critical p-value at false discovery rate ``alpha``.

    The largest sorted p-value ``p_(k)`` with ``p_(k) · m / k <= alpha``, or None when
    there is none (nothing is significant). ``p <= bh_critical_p(p, alpha)`` selects the
    same tests as ``fdr_bh(p) <= alpha`` (the same arithmetic, so also at the boundary);
    this is the form ArcGIS describes ("the critical p-value thresholds are reduced"), and
    the number the dashboard shows beside the map.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    arr = np.sort(_check_p(p), kind="stable")
    m = arr.size
    below = np.flatnonzero(arr * m / np.arange(1, m + 1) <= alpha)
    return float(arr[below[-1]]) if below.size else None
