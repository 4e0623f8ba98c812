"""The few distribution functions the statistics need, from scipy.special (a tenth of the import
time of scipy.stats, which a sweep's summary would otherwise pay): Student's t quantile and
survival function, the noncentral t's distribution function, the normal quantile. Tested equal
to scipy.stats' own (which call the same special functions)."""

from __future__ import annotations

import numpy as np


def t_quantile(q, df):
    """The q-quantile of Student's t with df degrees of freedom (scipy.stats.t.ppf)."""
    from scipy.special import stdtrit

    return stdtrit(df, q)


def t_sf(x, df):
    """P(T > x) for Student's t with df degrees of freedom (scipy.stats.t.sf)."""
    from scipy.special import stdtr

    return stdtr(df, -np.asarray(x, dtype=float))


def nct_cdf(x, df, nc):
    """P(T ≤ x) for the noncentral t with df degrees of freedom and noncentrality nc (scipy.stats.nct.cdf)."""
    from scipy.special import nctdtr

    return nctdtr(df, nc, x)


def norm_quantile(q):
    """The q-quantile of the standard normal (scipy.stats.norm.ppf)."""
    from scipy.special import ndtri

    return ndtri(q)
