"""Statistics of a comparison: the 95% Student-t interval of a mean over seeds.

Mean ± 95% CI over seeds with Student's t (n - 1 degrees of freedom, a table for n <= 31, the
Cornish-Fisher expansion beyond): with 3 seeds the half-width is 4.30 standard errors, so the
interval is honest about how little 3 seeds pin down. It measures training randomness only,
not test-sample noise: that one is ``ci95/<metric>`` of each eval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# Two-sided 95% Student-t quantiles t_{0.975, dof} for dof = 1..30 (scipy.stats.t.ppf, 4 d.p.);
# a table keeps scipy out of the dependencies.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)  # fmt: skip
_Z975 = 1.959963984540054


def t_quantile_975(dof: int) -> float:
    """t_{0.975} with ``dof`` degrees of freedom (the 95% two-sided critical value)."""
    if dof < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {dof}")
    if dof <= len(_T975):
        return _T975[dof - 1]
    # Cornish-Fisher expansion of t around the normal quantile: < 1e-7 off for dof > 30
    z, d = _Z975, float(dof)
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / d + g2 / d**2 + g3 / d**3 + g4 / d**4


def mean_ci95(values: Sequence[float]) -> tuple[float, float | None]:
    """(mean, half-width of the 95% t interval of the mean); half-width None for n < 2."""
    n = len(values)
    if n == 0:
        return math.nan, None
    mean = sum(values) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, t_quantile_975(n - 1) * sd / math.sqrt(n)


def format_mean_ci(mean: float, half: float | None, digits: int = 3) -> str:
    """``"0.512 ± 0.031"``; just the mean when there is no interval (one run)."""
    if mean is None or math.isnan(mean):
        return "-"
    return f"{mean:.{digits}f}" if half is None else f"{mean:.{digits}f} ± {half:.{digits}f}"


def paired_differences(a: dict[int, float], b: dict[int, float]) -> tuple[list[int], list[float]]:
    """(the seeds both methods ran, in ``a``'s order; ``a[seed] - b[seed]`` for each). The same
    seed means the same warm start, so pairing removes the warm start's share of the seed noise."""
    common = [s for s in a if s in b]
    return common, [a[s] - b[s] for s in common]


def rollouts_to_reach(
    steps: Sequence[int], values: Sequence[float], rollouts_per_step: int, fraction: float = 0.95, of: str = "final"
) -> int | None:
    """Rollouts generated until a learning curve first reaches a share of where it ends.

    ``steps`` / ``values``: the evaluated RL steps (ascending, step 0 = the warm start) and the
    metric there. ``of="final"``: the first step whose value is >= ``fraction`` x the last value
    (the usual "95% of final" measure; from a warm start already above that share it is 0).
    ``of="gain"``: the first step whose value is >= start + ``fraction`` x (last - start), the
    rollouts needed for 95% of what RL added; None when the curve ends at or below its start.
    Returns ``step x rollouts_per_step``, or None as said.
    """
    if len(steps) != len(values):
        raise ValueError(f"{len(steps)} steps but {len(values)} values")
    if not steps:
        return None
    start, last = values[0], values[-1]
    if of == "final":
        target = fraction * last
    elif of == "gain":
        if last <= start:
            return None
        target = start + fraction * (last - start)
    else:
        raise ValueError(f"of must be 'final' or 'gain', got {of!r}")
    step = next(s for s, v in zip(steps, values, strict=True) if v >= target)
    return int(step) * rollouts_per_step
