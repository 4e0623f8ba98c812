"""Dataset registry. Metadata here is plain data (no torch, no loading), so a spec can be
validated without touching a dataset; `load(name)` builds the arrays.

Every dataset returns float32 features, a held-out test split that never overlaps training
(fixed by SPLIT_SEED, independent of any trial seed), and features standardized with training
statistics only.

A validation split (`validation = 0.1` in a spec: a fraction of the training split) is carved
out of the training split when a trial loads its data: stratified by class for classification,
fixed by VALIDATION_SEED, disjoint from what is left for training and from the test split. Each
class gives round(fraction × its training samples) to validation, so the sizes are known from
the metadata alone (`split_sizes`) and a split that would leave a class empty is refused before
anything runs. The DeepOBS problems keep their own definition: a separate validation set drawn as
DeepOBS 1.2 draws it (see data/deepobs.py), whatever the fraction.
"""

from __future__ import annotations

import importlib
import json
import math
from dataclasses import dataclass

import numpy as np

from dlbench.errors import UserError, did_you_mean

SPLIT_SEED = 0  # fixed: the train/test split never depends on a trial's seed
VALIDATION_SEED = 1  # fixed: the train/validation carve never depends on a trial's seed
DEFAULT_VALIDATION = 0.1
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
    # training-split samples per class (classification); with files, those of the standard files
    class_counts: tuple[int, ...] = ()
    own_validation: bool = False  # DeepOBS: a validation set of the problem's own definition


def _stratified_sizes(n: int, test_fraction: float = 0.2) -> tuple[int, int]:
    n_test = int(np.ceil(n * test_fraction))
    return n - n_test, n_test


def _info(name, task, n, shape, classes, source, module, **kw) -> DatasetInfo:
    n_train, n_test = _stratified_sizes(n) if isinstance(n, int) else n
    return DatasetInfo(name, task, n_train, n_test, shape, classes, source, module, **kw)


DATASETS: dict[str, DatasetInfo] = {
    d.name: d
    for d in [
        _info("digits", "multiclass", 1797, (64,), 10, "scikit-learn load_digits (UCI 8x8 digits)", "tabular",
              class_counts=(142, 146, 142, 146, 145, 145, 145, 143, 139, 144)),
        _info("iris", "multiclass", 149, (4,), 3, "scikit-learn load_iris (Fisher 1936; one duplicate row dropped)",
              "tabular", class_counts=(40, 40, 39)),
        _info("wine", "multiclass", 178, (13,), 3, "scikit-learn load_wine (UCI wine)", "tabular",
              class_counts=(47, 57, 38)),
        _info("breast_cancer", "binary", 569, (30,), 2, "scikit-learn load_breast_cancer (UCI WDBC)",
              "tabular", class_counts=(170, 285)),
        _info("diabetes", "regression", 442, (10,), 0, "scikit-learn load_diabetes (Efron et al. 2004)",
              "tabular"),
        _info("mnist1d", "multiclass", (4000, 1000), (40,), 10,
              "mnist1d package generator, default arguments (Greydanus 2020)", "mnist1d",
              class_counts=(398, 396, 411, 394, 394, 402, 401, 404, 402, 398)),
        _info("linreg", "regression", 1000, (10,), 0, "synthetic: y = Wx + b + noise", "synthetic"),
        _info("xor", "binary", 1000, (2,), 2, "synthetic: label = sign(x1 * x2), not linearly separable",
              "synthetic", class_counts=(426, 374)),
        _info("moons", "binary", 1000, (2,), 2, "scikit-learn make_moons(noise=0.2)", "synthetic",
              class_counts=(400, 400)),
        _info("quadratic_deep", "objective", (1000, 1000), (100,), 0,
              "DeepOBS quadratic_deep (Schneider et al. 2019)", "deepobs", own_validation=True),
        _info("rosenbrock", "objective", (10000, 10000), (2,), 0,
              "DeepOBS two_d_rosenbrock (Schneider et al. 2019)", "deepobs", own_validation=True),
        _info("beale", "objective", (10000, 10000), (2,), 0, "DeepOBS two_d_beale (Schneider et al. 2019)",
              "deepobs", own_validation=True),
        _info("mnist", "multiclass", (60000, 10000), (1, 28, 28), 10, "MNIST IDX files (LeCun et al. 1998)",
              "files", needs_files=True, image=True,
              class_counts=(5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)),
        _info("fashion_mnist", "multiclass", (60000, 10000), (1, 28, 28), 10,
              "Fashion-MNIST IDX files (Xiao et al. 2017)", "files", needs_files=True, image=True,
              class_counts=(6000,) * 10),
        _info("cifar10", "multiclass", (50000, 10000), (3, 32, 32), 10,
              "CIFAR-10 python batches (Krizhevsky 2009)", "files", needs_files=True, image=True,
              class_counts=(5000,) * 10),
    ]
}


def dataset_info(name: str) -> DatasetInfo:
    """A built-in dataset's metadata, or a user dataset's once it has been checked here
    (dlbench.data.user)."""
    if isinstance(name, str) and name in DATASETS:
        return DATASETS[name]
    from dlbench.data.user import USER_INFOS

    if isinstance(name, str) and name in USER_INFOS:
        return USER_INFOS[name]
    raise UserError(
        f"dataset = {name!r} is unknown{did_you_mean(name, DATASETS)}; allowed: {', '.join(DATASETS)}, or your own: "
        "a path (./table.csv, .parquet, .npz) or { loader = \"module:function\" }"
    )


@dataclass
class Dataset:
    info: DatasetInfo
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_val: np.ndarray | None = None  # None: no validation split
    y_val: np.ndarray | None = None

    @property
    def task(self) -> str:
        return self.info.task


# --------------------------------------------------------------------------------------------
# The validation split


def check_validation(value, info: DatasetInfo) -> float:
    """The validation fraction for `info`, or a UserError naming what is allowed."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not 0 <= value < 1:
        raise UserError(f"validation = {value!r} is not allowed; allowed: a fraction of the training split from "
                        "0 (no validation split) to below 1, e.g. 0.1")
    value = float(value)
    if value == 0 or info.own_validation:
        return value
    counts = info.class_counts or (info.n_train,)
    _check_counts(counts, value, info.name, "training samples")
    return value


def _check_counts(counts, fraction: float, name: str, what: str) -> None:
    smallest = min(counts)
    lo, hi = 0.5 / smallest, 1 - 0.5 / smallest  # round(f × c) >= 1 and <= c - 1 for every class c
    for label, c in enumerate(counts):
        k = validation_size(c, fraction)
        if k == 0 or k == c:
            where = f"class {label} of {name}" if len(counts) > 1 else name
            side = "validation" if k == 0 else "training"
            raise UserError(f"validation = {fraction!r} leaves {where} with no {side} sample ({c} {what} × "
                            f"{fraction!r} rounds to {k}); allowed: 0 (no split) or a fraction from {lo:.3g} to "
                            f"below {hi:.3g}")


def validation_size(n: int, fraction: float) -> int:
    """Samples that a class (or a whole unlabelled set) of n gives to validation: round half up."""
    return math.floor(fraction * n + 0.5)


def split_sizes(info: DatasetInfo, fraction: float) -> tuple[int, int]:
    """(training samples left, validation samples) for a checked fraction, from metadata alone."""
    if fraction == 0:
        return info.n_train, 0
    if info.own_validation:
        return info.n_train, info.n_train  # DeepOBS: a separate set as large as the training set
    n_val = sum(validation_size(c, fraction) for c in (info.class_counts or (info.n_train,)))
    return info.n_train - n_val, n_val


def carve_validation(x: np.ndarray, y: np.ndarray, fraction: float, stratify: bool):
    """(x_train, y_train, x_val, y_val): round(fraction × n) samples of each class (or of the whole
    set) go to validation, drawn by one RandomState(VALIDATION_SEED) class by class in label order;
    both parts keep the original order of their samples."""
    rng = np.random.RandomState(VALIDATION_SEED)
    groups = [np.flatnonzero(y == c) for c in np.unique(y)] if stratify else [np.arange(len(y))]
    picked = [rng.permutation(idx)[:validation_size(len(idx), fraction)] for idx in groups]
    val = np.sort(np.concatenate(picked))
    keep = np.ones(len(y), dtype=bool)
    keep[val] = False
    return x[keep], y[keep], x[val], y[val]


_BASE: dict[tuple[str, str | None], Dataset] = {}
_CACHE: dict[tuple[str, str | None, float], Dataset] = {}


def load(name: str, data_dir: str | None = None, validation: float = 0.0, source: dict | None = None) -> Dataset:
    """Arrays for a dataset with its validation split, memoized per process (workers load each
    dataset once). `source`: a user dataset's canonical spec (the trial's `data`)."""
    key = (name, data_dir, float(validation), json.dumps(source, sort_keys=True) if source else None)
    if key not in _CACHE:
        base = _load_base(name, data_dir, source)
        info = base.info
        if not validation:
            ds = base
        elif info.own_validation:
            from dlbench.data import deepobs

            x_val, y_val = (deepobs.validation(name) if source is None else (base.x_val, base.y_val))
            ds = Dataset(info, base.x_train, base.y_train, base.x_test, base.y_test, x_val, y_val)
        else:
            stratify = info.task in ("binary", "multiclass")
            if info.needs_files:  # a user's files may hold fewer samples than the standard ones
                counts = np.unique(base.y_train, return_counts=True)[1] if stratify else [len(base.y_train)]
                _check_counts(tuple(int(c) for c in counts), float(validation), name, "training samples in the files")
            x_tr, y_tr, x_val, y_val = carve_validation(base.x_train, base.y_train, float(validation), stratify)
            ds = Dataset(info, x_tr, y_tr, base.x_test, base.y_test, x_val, y_val)
        _CACHE[key] = ds
    return _CACHE[key]


def _load_base(name: str, data_dir: str | None, source: dict | None = None) -> Dataset:
    """The train and test splits as the source defines them, before any validation carve."""
    key = (name, data_dir, json.dumps(source, sort_keys=True) if source else None)
    if key not in _BASE:
        if source is not None:
            _BASE[key] = _load_user(name, source)
            return _BASE[key]
        info = dataset_info(name)
        if info.needs_files:
            x_tr, y_tr, x_te, y_te = generate(name, data_dir=data_dir)
        else:
            x_tr, y_tr, x_te, y_te = _from_disk_cache(name)
        ds = Dataset(info, x_tr, y_tr, x_te, y_te)
        _check_shapes(ds)
        _BASE[key] = ds
    return _BASE[key]


def _load_user(name: str, source: dict) -> Dataset:
    from dlbench import plugins
    from dlbench.data import user

    if name not in user.USER_INFOS:
        user.check(source, plugins.REGISTRY.files)  # a worker: read (or take from the cache) and register
    _, arrays = user.arrays_for(source, plugins.REGISTRY.files)
    ds = Dataset(dataset_info(name), arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                 arrays.get("x_val"), arrays.get("y_val"))
    _check_shapes(ds)
    return ds


def validation_of(trial: dict) -> float:
    """A trial's validation fraction (absent from trials without a split, e.g. schema 1)."""
    return float(trial.get("validation", 0.0))


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


class DataShapeError(ValueError):
    """A loader returned arrays that do not match its dataset's metadata."""


def _check_shapes(ds: Dataset) -> None:
    """Real checks, not asserts (python -O skips those): a loader whose arrays disagree with the
    metadata would otherwise train on the wrong shapes, or be split by the wrong sizes."""
    info = ds.info
    problems = []
    for split, x, y in (("training", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        if x.shape[1:] != info.input_shape:
            problems.append(f"{split} inputs have shape {x.shape[1:]}, not {info.input_shape}")
        if len(x) != len(y):
            problems.append(f"{split} split has {len(x)} inputs but {len(y)} targets")
    if not info.needs_files and (len(ds.x_train), len(ds.x_test)) != (info.n_train, info.n_test):
        # file sets may be subsets a user made; the rest have fixed sizes
        problems.append(f"{len(ds.x_train)} training and {len(ds.x_test)} test samples, not {info.n_train} and "
                        f"{info.n_test}")
    if problems:
        raise DataShapeError(f"dataset {info.name!r}: {'; '.join(problems)}")


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
