"""Small synthetic problems, generated from fixed seeds (never the trial seed)."""

from __future__ import annotations

import numpy as np

from dlbench.data.common import SPLIT_SEED, split, standardize


def load_linreg(n: int = 1000, dim: int = 10, noise: float = 0.1):
    """y = W x + b + noise, x ~ N(0, I), W ~ N(0, 1), b ~ N(0, 1), noise ~ N(0, 0.1²)."""
    rng = np.random.default_rng(SPLIT_SEED)
    w = rng.normal(size=(dim, 1))
    b = rng.normal()
    x = rng.normal(size=(n, dim))
    y = x @ w + b + noise * rng.normal(size=(n, 1))
    x_tr, x_te, y_tr, y_te = split(x, y, stratify=False)
    return x_tr.astype(np.float32), y_tr.astype(np.float32), x_te.astype(np.float32), y_te.astype(np.float32)


def load_xor(n: int = 1000):
    """x uniform in [-1, 1]², label 1 where x1·x2 > 0: no line separates the classes."""
    rng = np.random.default_rng(SPLIT_SEED)
    x = rng.uniform(-1, 1, size=(n, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = split(x, y, stratify=True)
    return x_tr.astype(np.float32), y_tr, x_te.astype(np.float32), y_te


def load_moons(n: int = 1000):
    """scikit-learn's two interleaving half-moons, noise 0.2, standardized."""
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n, noise=0.2, random_state=SPLIT_SEED)
    x_tr, x_te, y_tr, y_te = split(x, y.astype(np.float32), stratify=True)
    x_tr, x_te = standardize(x_tr, x_te)
    return x_tr, y_tr, x_te, y_te
