"""What every dataset kind shares: the record (DatasetInfo), the arrays (Dataset), the 80/20 split,
standardization, the validation carve, shape checks, and the one on-disk cache of prepared arrays.

Every dataset returns float32 features, a held-out test split that never overlaps training
(fixed by SPLIT_SEED, independent of any trial seed), and features standardized with training
statistics only.

A validation split (`validation = 0.1` in a spec: a fraction of the training split) is carved
out of the training split when a trial loads its data: stratified by class for classification,
fixed by VALIDATION_SEED, disjoint from what is left for training and from the test split. Each
class gives round(fraction × its training samples) to validation, so the sizes are known from
the metadata alone (`split_sizes`) and a split that would leave a class empty is refused before
anything runs. Datasets with their own validation set (the DeepOBS problems, a user's x_val)
keep it, whatever the fraction.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dlbench.errors import UserError

SPLIT_SEED = 0  # fixed: the train/test split never depends on a trial's seed
VALIDATION_SEED = 1  # fixed: the train/validation carve never depends on a trial's seed
DEFAULT_VALIDATION = 0.1
DATA_VERSION = 1  # bump when a loader's output changes: cached arrays of older versions are ignored
TASKS = ("regression", "binary", "multiclass", "objective", "language_model")
ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset's catalogue record: what it is (metadata every check needs, no arrays) and where
    its arrays come from (`loader`, MODULE:FUNCTION, called as FUNCTION(info, data_dir))."""

    name: str
    task: str  # one of TASKS; "objective": the problem defines its own loss (DeepOBS 2-D/quadratic)
    n_train: int
    n_test: int
    input_shape: tuple[int, ...]
    n_classes: int  # 0 for regression/objective, 2 for binary
    source: str
    loader: str  # MODULE:FUNCTION giving (x_train, y_train, x_test, y_test[, x_val, y_val])
    needs_files: bool = False
    image: bool = False
    # training-split samples per class (classification); with files, those of the standard files
    class_counts: tuple[int, ...] = ()
    own_validation: bool = False  # a validation set of its own definition (DeepOBS, a user's x_val)
    spec: dict | None = field(default=None, compare=False)  # a user dataset's canonical spec (the trial's `data`)
    kind: str = "built-in"  # the catalogue kind that made the record
    # token inputs: ids 0..vocab-1 (text, modular addition); 0: float features
    vocab: int = 0
    # its knobs (a trial key each, e.g. context) with their values: the defaults in a dataset's
    # record, a trial's own in the record `specialize` makes for it
    knobs: tuple[tuple[str, Any], ...] = ()
    n_val: int = 0  # the size of a validation split of its own, where it is not the training split's (text)
    tokens: tuple[int, int, int] = (0, 0, 0)  # a text's characters in its train, validation and test blocks

    def knob(self, name: str) -> Any:
        return dict(self.knobs)[name]


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


def validation_of(trial: dict) -> float:
    """A trial's validation fraction (absent from trials without a split, e.g. schema 1)."""
    return float(trial.get("validation", 0.0))


# --------------------------------------------------------------------------------------------
# Splits and standardization


def split(x: np.ndarray, y: np.ndarray, stratify: bool):
    """80/20 split fixed by SPLIT_SEED, stratified by label for classification. Exact duplicate
    rows are dropped first (keeping the first), so no test sample also appears in training."""
    from sklearn.model_selection import train_test_split

    _, first = np.unique(x.reshape(len(x), -1), axis=0, return_index=True)
    keep = np.sort(first)
    x, y = x[keep], y[keep]
    return train_test_split(x, y, test_size=0.2, random_state=SPLIT_SEED, stratify=y if stratify else None)


def standardize(train: np.ndarray, *others: np.ndarray, per_feature: bool = True):
    """Every array standardized with the training array's mean and std only (per feature, i.e.
    per position along the first axis, or one scalar for the whole array), as float32; a feature
    without spread is left centred. Returns (train, *others)."""
    axis = 0 if per_feature else None
    mean = train.mean(axis=axis, keepdims=per_feature)
    std = train.std(axis=axis, keepdims=per_feature)
    std = np.where(std > 0, std, 1.0)
    return tuple(((a - mean) / std).astype(np.float32) for a in (train, *others))


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
    check_counts(counts, value, info.name, "training samples")
    return value


def check_counts(counts, fraction: float, name: str, what: str) -> None:
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
        # its own split: as large as the training set (DeepOBS), or as its record says (a text's block)
        return info.n_train, info.n_val or info.n_train
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


class DataShapeError(ValueError):
    """A loader returned arrays that do not match its dataset's metadata."""


def check_shapes(ds: Dataset) -> None:
    """Real checks, not asserts (python -O skips those): a loader whose arrays disagree with the
    metadata would otherwise train on the wrong shapes, or be split by the wrong sizes."""
    info = ds.info
    problems = []
    for part, x, y in (("training", ds.x_train, ds.y_train), ("test", ds.x_test, ds.y_test)):
        if x.shape[1:] != info.input_shape:
            problems.append(f"{part} inputs have shape {x.shape[1:]}, not {info.input_shape}")
        if len(x) != len(y):
            problems.append(f"{part} split has {len(x)} inputs but {len(y)} targets")
    if not info.needs_files and (len(ds.x_train), len(ds.x_test)) != (info.n_train, info.n_test):
        # file sets may be subsets a user made; the rest have fixed sizes
        problems.append(f"{len(ds.x_train)} training and {len(ds.x_test)} test samples, not {info.n_train} and "
                        f"{info.n_test}")
    if problems:
        raise DataShapeError(f"dataset {info.name!r}: {'; '.join(problems)}")


# --------------------------------------------------------------------------------------------
# The cache of prepared arrays


def cache_dir() -> str:
    """User cache folder for generated or converted datasets ($DLBENCH_CACHE or XDG)."""
    base = os.environ.get("DLBENCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "dlbench"
    )
    os.makedirs(base, exist_ok=True)
    return base


def read_cached(name: str) -> dict[str, np.ndarray] | None:
    """The arrays cached as `name`.npz, or None when absent or damaged (made again then)."""
    try:
        with np.load(os.path.join(cache_dir(), f"{name}.npz"), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, KeyError, ValueError):
        return None


def write_cached(name: str, arrays: dict[str, Any]) -> None:
    """Cache arrays as `name`.npz: written beside it and renamed, so a reader never sees half a
    file; an unwritable cache only costs time."""
    path = os.path.join(cache_dir(), f"{name}.npz")
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def cached(name: str, make: Callable[[], dict[str, Any]]) -> dict[str, np.ndarray]:
    """The arrays cached as `name`, made (and cached) when they are not."""
    arrays = read_cached(name)
    if arrays is None:
        arrays = make()
        write_cached(name, arrays)
    return arrays
