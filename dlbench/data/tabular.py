"""scikit-learn's bundled datasets: offline, embedded in the package."""

from __future__ import annotations

import numpy as np

from dlbench.data.common import split, standardize


def _classification(loader):
    x, y = loader(return_X_y=True)
    x_tr, x_te, y_tr, y_te = split(x.astype(np.float64), y, stratify=True)
    x_tr, x_te = standardize(x_tr, x_te)
    return x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64)


def load_digits():
    from sklearn.datasets import load_digits

    return _classification(load_digits)


def load_iris():
    from sklearn.datasets import load_iris

    return _classification(load_iris)


def load_wine():
    from sklearn.datasets import load_wine

    return _classification(load_wine)


def load_breast_cancer():
    """Binary: label 1 = benign, as scikit-learn gives it; targets are float 0/1 for BCE."""
    from sklearn.datasets import load_breast_cancer

    x_tr, y_tr, x_te, y_te = _classification(load_breast_cancer)
    return x_tr, y_tr.astype(np.float32), x_te, y_te.astype(np.float32)


def load_diabetes():
    """Regression; the target is standardized with training statistics too (R² is unchanged by it)."""
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    x_tr, x_te, y_tr, y_te = split(x, y.reshape(-1, 1), stratify=False)
    x_tr, x_te = standardize(x_tr, x_te)
    y_tr, y_te = standardize(y_tr, y_te)
    return x_tr, y_tr, x_te, y_te
