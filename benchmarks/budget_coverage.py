"""Coverage of the tuning curve's band (stats.budget.band: jackknife t): configurations' values
drawn at random from a known distribution (a random search), the band computed from n of them,
and how often it holds the true expected best of k configurations, E[max of k] = ∫ x k F^(k-1) f.

    python benchmarks/budget_coverage.py [--reps 2000] [--json docs/budget-coverage.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import integrate
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from dlbench.stats.budget import band  # noqa: E402

DISTRIBUTIONS = {"normal": sps.norm(), "beta(2, 5) (bounded, like an accuracy)": sps.beta(2, 5),
                 "lognormal(0.8) (skewed, like a loss)": sps.lognorm(0.8)}


def true_expected_best(dist, k: int) -> float:
    return integrate.quad(lambda x: x * k * dist.cdf(x) ** (k - 1) * dist.pdf(x), dist.ppf(1e-12),
                          dist.ppf(1 - 1e-12), limit=200)[0]


def coverage(dist, n: int, ks: list[int], reps: int, seed: int = 1) -> dict[int, float]:
    rng = np.random.default_rng(seed)
    truth = {k: true_expected_best(dist, k) for k in ks}
    hits = dict.fromkeys(ks, 0)
    for _ in range(reps):
        low, high = band(np.sort(dist.rvs(size=n, random_state=rng)))
        for k in ks:
            hits[k] += bool(low[k - 1] <= truth[k] <= high[k - 1])
    return {k: hits[k] / reps for k in ks}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=2000)
    ap.add_argument("--json")
    args = ap.parse_args()
    out = {}
    for name, dist in DISTRIBUTIONS.items():
        for n in (8, 16, 27):
            ks = sorted({1, 2, max(1, n // 4), n // 2})
            got = coverage(dist, n, ks, args.reps)
            out[f"{name}, n={n}"] = got
            print(f"{name:40s} n={n:2d}  " + "  ".join(f"k={k}: {v:.3f}" for k, v in got.items()))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
