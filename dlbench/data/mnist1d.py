"""MNIST-1D generated locally with the mnist1d package's own generator and default arguments
(4000 train / 1000 test, length 40; Greydanus, "Scaling down deep learning", 2020). Never from
the network. Generating takes a few seconds: the built-in kind caches the prepared arrays."""

from __future__ import annotations

import numpy as np

from dlbench.data.common import standardize


def load_mnist1d():
    from mnist1d.data import get_dataset_args, make_dataset

    data = make_dataset(get_dataset_args())
    # One scalar mean/std from the training set: it is a signal, not independent features.
    x_tr, x_te = standardize(data["x"], data["x_test"], per_feature=False)
    return x_tr, np.asarray(data["y"]).astype(np.int64), x_te, np.asarray(data["y_test"]).astype(np.int64)
