"""The datasets that ship with dlbench: one record each (plain data, no loading), and how their
arrays are made. A record's loader is MODULE:FUNCTION in one of the family modules (tabular,
mnist1d, synthetic, deepobs, files); generated sets are cached as prepared arrays, so a worker
process needs neither scikit-learn (a second to import) nor the generator."""

from __future__ import annotations

import importlib

import numpy as np

from dlbench.data.common import ARRAY_KEYS, DATA_VERSION, DatasetInfo, cached

KIND = "built-in"


def _sizes(n: int, test_fraction: float = 0.2) -> tuple[int, int]:
    n_test = int(np.ceil(n * test_fraction))
    return n - n_test, n_test


def _info(name, task, n, shape, classes, source, module, **kw) -> DatasetInfo:
    n_train, n_test = _sizes(n) if isinstance(n, int) else n
    return DatasetInfo(name, task, n_train, n_test, shape, classes, source, f"dlbench.data.{module}:load_{name}", **kw)


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
        _info("shakespeare", "language_model", (15724, 1965), (64,), 78,
              "nine plays of Shakespeare shipped with dlbench (Project Gutenberg via the Open Shakespeare package; "
              "1,257,989 characters, SHA-256 bef1b63b…)", "text", own_validation=True, vocab=78, n_val=1965,
              tokens=(1006391, 125798, 125800), knobs=(("context", 64),)),
        _info("tinyshakespeare", "language_model", (13942, 1742), (64,), 66,
              "char-rnn's tiny Shakespeare input.txt (Karpathy 2015; 1,115,394 characters, SHA-256 86c4e6aa…)",
              "text", needs_files=True, own_validation=True, vocab=66, n_val=1742, tokens=(892315, 111539, 111540),
              knobs=(("context", 64),)),
        _info("modadd", "multiclass", (2823, 3293), (3,), 97,
              "modular addition a + b mod p, tokens a, b, = (Power et al. 2022)", "text", own_validation=True,
              vocab=98, n_val=3293, knobs=(("p", 97), ("train_fraction", 0.3))),
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


def recognises(value) -> bool:
    return isinstance(value, str) and value in DATASETS


def check(value: str, where: str = "dataset") -> DatasetInfo:
    return DATASETS[value]


def from_spec(spec: dict) -> DatasetInfo:
    raise ValueError("a built-in dataset has no spec")


def generate(name: str, **kw):
    """A built-in dataset's arrays from its source (no caching)."""
    module, fn = DATASETS[name].loader.split(":")
    return getattr(importlib.import_module(module), fn)(**kw)


def arrays(info: DatasetInfo, data_dir: str | None) -> dict:
    """The train and test splits as the source defines them: from the standard files (data_dir),
    or generated once and cached under a name that carries DATA_VERSION and the scikit-learn
    version (whose splits and bundled data they depend on). A DeepOBS problem brings its own
    validation set; a sequence dataset (text, modular addition) is made for its knobs' values
    (fast: no cache) with its own validation split."""
    if info.knobs:
        kw = dict(info.knobs, **({"data_dir": data_dir} if info.needs_files else {}))
        return generate(info.name, **kw)
    if info.needs_files:
        out = dict(zip(ARRAY_KEYS, generate(info.name, data_dir=data_dir), strict=True))
    else:
        from importlib.metadata import version

        out = cached(f"{info.name}-v{DATA_VERSION}-sklearn{version('scikit-learn')}",
                     lambda: dict(zip(ARRAY_KEYS, generate(info.name), strict=True)))
    if info.own_validation:
        from dlbench.data import deepobs

        out["x_val"], out["y_val"] = deepobs.validation(info.name)
    return out
