"""The distribution functions the statistics take from scipy.special equal scipy.stats' own."""

import numpy as np
from scipy import stats as sps

from dlbench.stats.distributions import nct_cdf, norm_quantile, t_quantile, t_sf


def test_the_special_functions_are_scipy_stats_distributions():
    df = np.array([1, 2, 3, 4, 7.5, 29, 200.3])
    for q in (0.5, 0.9, 0.975, 0.995):
        np.testing.assert_allclose(t_quantile(q, df), sps.t.ppf(q, df), rtol=1e-12)
    x = np.array([-3.0, -0.2, 0.0, 0.7, 2.5, 9.0])
    for d in df:
        np.testing.assert_allclose(t_sf(x, d), sps.t.sf(x, d), rtol=1e-10, atol=1e-300)
        np.testing.assert_allclose(nct_cdf(x, d, 1.3), sps.nct.cdf(x, d, 1.3), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(norm_quantile(np.array([0.8, 0.975])), sps.norm.ppf([0.8, 0.975]), rtol=1e-14)
