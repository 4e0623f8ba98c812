"""DeepOBS's noisy optimization problems, following the published definitions exactly.

Source: F. Schneider, L. Balles, P. Hennig, "DeepOBS: A Deep Learning Optimizer Benchmark
Suite", ICLR 2019; code at github.com/fsschneider/DeepOBS (deepobs/pytorch/testproblems/
quadratic_deep.py, datasets/quadratic.py; deepobs/tensorflow/testproblems/two_d_rosenbrock.py,
two_d_beale.py, datasets/two_d.py).

- quadratic_deep: loss 0.5 (θ - x)ᵀ Q (θ - x), θ ∈ R¹⁰⁰ starting at ones. Q = Rᵀ D R with
  90 eigenvalues uniform in (0, 1) and 10 in (30, 60), R a Haar-random rotation (Diaconis &
  Shahshahani's subgroup algorithm), all drawn from one RandomState(42) in that order. Data x:
  1000 train draws of N(0, 0.6² I) from RandomState(42), 1000 test draws from RandomState(43).
- rosenbrock: (1 - u)² + 100 (v - u²)² + u·x + v·y, start (u, v) = (-0.5, 1.5).
- beale: (1.5 - u + uv)² + (2.25 - u + uv²)² + (2.625 - u + uv³)² + u·x + v·y, start (-4.5, 4.5).
  Data (x, y): 10000 train draws of N(0, 1) each from RandomState(42) (all x, then all y); the
  test set is zeros, so the test loss is the deterministic function.
- Validation (DeepOBS 1.2, deepobs/pytorch/datasets/quadratic.py, tensorflow/datasets/two_d.py):
  a separate set as large as the training set, drawn the same way from RandomState(44). The
  training set itself stays whole.

"Features" here are the noise samples; the model is the problem's own parameter vector.
"""

from __future__ import annotations

import functools

import numpy as np

QUADRATIC_DIM = 100
QUADRATIC_NOISE = 0.6
TWO_D_SIZE = 10000
START = {"rosenbrock": (-0.5, 1.5), "beale": (-4.5, 4.5)}


def random_rotation(dim: int, rng: np.random.RandomState) -> np.ndarray:
    """Haar-random rotation in SO(dim) by the subgroup algorithm, as DeepOBS draws it."""
    t = 2 * np.pi * rng.uniform()
    rot = np.array([[np.cos(t), np.sin(t)], [-np.sin(t), np.cos(t)]])
    for d in range(2, dim):
        v = rng.normal(size=(d + 1, 1))
        v = v / np.sqrt(v.T @ v)
        e = np.zeros((d + 1, 1))
        e[0, 0] = 1.0
        x = (e - v) / np.sqrt((e - v).T @ (e - v))
        block = np.zeros((d + 1, d + 1))
        block[0, 0] = 1.0
        block[1:, 1:] = rot
        rot = block - 2 * np.outer(x, x.T @ block)
    return -rot


@functools.cache
def quadratic_hessian() -> np.ndarray:
    """Q = Rᵀ D R, the same matrix every call: computed once per process (the rotation takes
    98 Python-level steps) and read-only."""
    rng = np.random.RandomState(42)
    eig = np.concatenate((rng.uniform(0.0, 1.0, 90), rng.uniform(30.0, 60.0, 10)))
    rot = random_rotation(QUADRATIC_DIM, rng)
    hess = rot.T @ np.diag(eig) @ rot
    hess.setflags(write=False)
    return hess


def load_quadratic_deep():
    x_tr = np.float32(np.random.RandomState(42).normal(0.0, QUADRATIC_NOISE, (1000, QUADRATIC_DIM)))
    x_te = np.float32(np.random.RandomState(43).normal(0.0, QUADRATIC_NOISE, (1000, QUADRATIC_DIM)))
    zeros = np.zeros(1000, dtype=np.float32)
    return x_tr, zeros, x_te, zeros.copy()


def _two_d():
    rng = np.random.RandomState(42)
    x = rng.normal(0.0, 1.0, TWO_D_SIZE)
    y = rng.normal(0.0, 1.0, TWO_D_SIZE)
    train = np.float32(np.stack([x, y], axis=1))
    test = np.zeros((TWO_D_SIZE, 2), dtype=np.float32)
    zeros = np.zeros(TWO_D_SIZE, dtype=np.float32)
    return train, zeros, test, zeros.copy()


def validation(name: str):
    """The problem's own validation set (noise rows and zero targets), as DeepOBS 1.2 draws it."""
    rng = np.random.RandomState(44)
    if name == "quadratic_deep":
        x = np.float32(rng.normal(0.0, QUADRATIC_NOISE, (1000, QUADRATIC_DIM)))
    else:
        x = np.float32(rng.normal(0.0, 1.0, TWO_D_SIZE))
        y = np.float32(rng.normal(0.0, 1.0, TWO_D_SIZE))
        x = np.stack([x, y], axis=1)
    return x, np.zeros(len(x), dtype=np.float32)


def load_rosenbrock():
    return _two_d()


def load_beale():
    return _two_d()


def objective(name: str, theta, noise):
    """Per-sample loss of problem `name` at parameters theta (torch) for noise rows `noise`."""
    if name == "quadratic_deep":

        hess = _hessian_tensor(theta.dtype, theta.device)
        q = theta - noise
        return 0.5 * ((q @ hess) * q).sum(dim=1)
    u, v = theta[0], theta[1]
    x, y = noise[:, 0], noise[:, 1]
    if name == "rosenbrock":
        f = (1 - u) ** 2 + 100 * (v - u**2) ** 2
    else:
        f = (1.5 - u + u * v) ** 2 + (2.25 - u + u * v**2) ** 2 + (2.625 - u + u * v**3) ** 2
    return f + u * x + v * y


@functools.cache
def _hessian_tensor(dtype, device):
    import torch

    return torch.tensor(quadratic_hessian(), dtype=dtype, device=device)


def start(name: str) -> np.ndarray:
    if name == "quadratic_deep":
        return np.ones(QUADRATIC_DIM, dtype=np.float32)
    return np.array(START[name], dtype=np.float32)
