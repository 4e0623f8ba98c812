"""MNIST-1D generated locally with the mnist1d package's own generator and default arguments
(4000 train / 1000 test, length 40; Greydanus, "Scaling down deep learning", 2020). Never from
the network. Cached as .npz under the user cache folder, since generating takes a few seconds."""

from __future__ import annotations

import os

import numpy as np

from dlbench.data import cache_dir


def load_mnist1d():
    path = os.path.join(cache_dir(), "mnist1d-default.npz")
    if not os.path.exists(path):
        from mnist1d.data import get_dataset_args, make_dataset

        data = make_dataset(get_dataset_args())
        tmp = f"{path}.{os.getpid()}.tmp.npz"
        np.savez(tmp, x=data["x"], y=data["y"], x_test=data["x_test"], y_test=data["y_test"])
        os.replace(tmp, path)
    with np.load(path) as z:
        x_tr, y_tr, x_te, y_te = z["x"], z["y"], z["x_test"], z["y_test"]
    # One scalar mean/std from the training set: it is a signal, not independent features.
    mean, std = x_tr.mean(), x_tr.std()
    return (
        ((x_tr - mean) / std).astype(np.float32),
        y_tr.astype(np.int64),
        ((x_te - mean) / std).astype(np.float32),
        y_te.astype(np.int64),
    )
