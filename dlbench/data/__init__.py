"""Dataset registry. Metadata here is plain data (no torch, no loading), so a spec can be
validated without touching a dataset; `load(name)` builds the arrays.

Every dataset returns float32 features, a held-out test split that never overlaps training
(fixed by SPLIT_SEED, independent of any trial seed), and features standardized with training
statistics only.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np

from dlbench.errors import UserError, did_you_mean

SPLIT_SEED = 0  # fixed: the train/test split never depends on a trial's seed
DATA_VERSION = 1  # bump when a loader's output changes: cached arrays of older versions are ignored
TASKS = ("regression", "binary", "multiclass", "objective")


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    task: str  # one of TASKS; "objective": the problem defines its own loss (DeepOBS 2-D/quadratic)
    n_train: int
    n_test: int
    input_shape: tuple[int, ...]
    n_classes: int  # 0 for regression/objective, 2 for binary
    source: str
    module: str  # dlbench.data.<module> has load_<name>()
    needs_files: bool = False
    image: bool = False


def _stratified_sizes(n: int, test_fraction: float = 0.2) -> tuple[int, int]:
    n_test = int(np.ceil(n * test_fraction))
    return n - n_test, n_test


def _info(name, task, n, shape, classes, source, module, **kw) -> DatasetInfo:
    n_train, n_test = _stratified_sizes(n) if isinstance(n, int) else n
    return DatasetInfo(name, task, n_train, n_test, shape, classes, source, module, **kw)


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        _info("digits", "multiclass", 1797, (64,), 10, "scikit-learn load_digits (UCI 8x8 digits)", "tabular"),
        _info("iris", "multiclass", 149, (4,), 3, "scikit-learn load_iris (Fisher 1936; one duplicate row dropped)",
              "tabular"),
        _info("wine", "multiclass", 178, (13,), 3, "scikit-learn load_wine (UCI wine)", "tabular"),
        _info("breast_cancer", "binary", 569, (30,), 2, "scikit-learn load_breast_cancer (UCI WDBC)",
              "tabular"),
        _info("diabetes", "regression", 442, (10,), 0, "scikit-learn load_diabetes (Efron et al. 2004)",
              "tabular"),
        _info("mnist1d", "multiclass", (4000, 1000), (40,), 10,
              "mnist1d package generator, default arguments (Greydanus 2020)", "mnist1d"),
        _info("linreg", "regression", 1000, (10,), 0, "synthetic: y = Wx + b + noise", "synthetic"),
        _info("xor", "binary", 1000, (2,), 2, "synthetic: label = sign(x1 * x2), not linearly separable",
              "synthetic"),
        _info("moons", "binary", 1000, (2,), 2, "scikit-learn make_moons(noise=0.2)", "synthetic"),
        _info("quadratic_deep", "objective", (1000, 1000), (100,), 0,
              "DeepOBS quadratic_deep (Schneider et al. 2019)", "deepobs"),
        _info("rosenbrock", "objective", (10000, 10000), (2,), 0,
              "DeepOBS two_d_rosenbrock (Schneider et al. 2019)", "deepobs"),
        _info("beale", "objective", (10000, 10000), (2,), 0, "DeepOBS two_d_beale (Schneider et al. 2019)",
              "deepobs"),
        _info("mnist", "multiclass", (60000, 10000), (1, 28, 28), 10, "MNIST IDX files (LeCun et al. 1998)",
              "files", needs_files=True, image=True),
        _info("fashion_mnist", "multiclass", (60000, 10000), (1, 28, 28), 10,
              "Fashion-MNIST IDX files (Xiao et al. 2017)", "files", needs_files=True, image=True),
        _info("cifar10", "multiclass", (50000, 10000), (3, 32, 32), 10,
              "CIFAR-10 python batches (Krizhevsky 2009)", "files", needs_files=True, image=True),
    ]
}


def dataset_info(name: str) -> DatasetInfo:
    if not isinstance(name, str) or name not in DATASETS:
        raise UserError(
            f"dataset = {name!r} is unknown{did_you_mean(name, DATASETS)}; allowed: {', '.join(DATASETS)}"
        )
    return DATASETS[name]


@dataclass
class Dataset:
    info: DatasetInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def task(self) -> str:
        return self.info.task


_CACHE: dict[tuple[str, str | None], Dataset] = {}


def load(name: str, data_dir: str | None = None) -> Dataset:
    """Arrays for a dataset, memoized per process (workers load each dataset once)."""
    key = (name, data_dir)
    if key not in _CACHE:
        info = dataset_info(name)
        if info.needs_files:
            x_tr, y_tr, x_te, y_te = generate(name, data_dir=data_dir)
        else:
            x_tr, y_tr, x_te, y_te = _from_disk_cache(name)
        ds = Dataset(info, x_tr, y_tr, x_te, y_te)
        _check_shapes(ds)
        _CACHE[key] = ds
    return _CACHE[key]


def generate(name: str, **kw):
    """Build a dataset's arrays from its source (no caching)."""
    module = importlib.import_module(f"dlbench.data.{dataset_info(name).module}")
    return getattr(module, f"load_{name}")(**kw)


def _from_disk_cache(name: str):
    """Generated datasets are kept as .npz in the user cache: a worker process then needs
    neither scikit-learn (a second to import) nor the generator. The file name carries
    DATA_VERSION and the scikit-learn version, whose splits and bundled data it depends on."""
    import os
    from importlib.metadata import version

    path = os.path.join(cache_dir(), f"{name}-v{DATA_VERSION}-sklearn{version('scikit-learn')}.npz")
    try:
        with np.load(path) as z:
            return z["x_train"], z["y_train"], z["x_test"], z["y_test"]
    except (OSError, KeyError, ValueError):
        pass  # absent or damaged: make it again
    arrays = generate(name)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    try:
        np.savez(tmp, **dict(zip(("x_train", "y_train", "x_test", "y_test"), arrays, strict=True)))
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache only costs time
    return arrays


def _check_shapes(ds: Dataset) -> None:
    info = ds.info
    assert ds.x_train.shape[1:] == info.input_shape, (info.name, ds.x_train.shape)
    assert ds.x_test.shape[1:] == info.input_shape, (info.name, ds.x_test.shape)
    assert len(ds.x_train) == len(ds.y_train) and len(ds.x_test) == len(ds.y_test), info.name
    if not info.needs_files:  # file sets may be subsets a user made; the rest have fixed sizes
        assert (len(ds.x_train), len(ds.x_test)) == (info.n_train, info.n_test), (info.name, len(ds.x_train))


def standardize(x_train: np.ndarray, x_test: np.ndarray, per_feature: bool = True):
    """Standardize both splits with the training split's mean and std only."""
    axis = 0 if per_feature else None
    mean = x_train.mean(axis=axis, keepdims=per_feature)
    std = x_train.std(axis=axis, keepdims=per_feature)
    std = np.where(std > 0, std, 1.0)
    return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def split(x: np.ndarray, y: np.ndarray, stratify: bool):
    """80/20 split fixed by SPLIT_SEED, stratified by label for classification. Exact duplicate
    rows are dropped first (keeping the first), so no test sample also appears in training."""
    from sklearn.model_selection import train_test_split

    _, first = np.unique(x.reshape(len(x), -1), axis=0, return_index=True)
    keep = np.sort(first)
    x, y = x[keep], y[keep]
    return train_test_split(x, y, test_size=0.2, random_state=SPLIT_SEED, stratify=y if stratify else None)


def cache_dir() -> str:
    """User cache folder for generated or converted datasets ($DLBENCH_CACHE or XDG)."""
    import os

    base = os.environ.get("DLBENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dlbench"
    )
    os.makedirs(base, exist_ok=True)
    return base
