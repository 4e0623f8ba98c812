"""Datasets that need their standard files: MNIST and Fashion-MNIST (IDX, gzipped) and CIFAR-10
(the python batches). Files are read from --data-dir or the user cache; they are downloaded only
when asked (`dlbench datasets download NAME`), each checked against its published SHA-256.

CIFAR-10's batches are pickles, a format that can run code when loaded: they are read with a
restricted unpickler that accepts only the builtin containers and numpy arrays they hold.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
import urllib.request
from pathlib import Path

import numpy as np

from dlbench.data.common import cache_dir
from dlbench.errors import UserError

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")
SOURCES = {
    "mnist": {
        "url": "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "files": dict(zip(IDX_FILES, (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ), strict=True)),
    },
    "fashion_mnist": {
        "url": "https://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "files": dict(zip(IDX_FILES, (
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        ), strict=True)),
    },
    "cifar10": {
        "url": "https://www.cs.toronto.edu/~kriz/",
        "files": {"cifar-10-python.tar.gz": "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"},
    },
    # char-rnn's input.txt, as nanoGPT and TensorFlow Datasets fetch it (1,115,394 bytes)
    "tinyshakespeare": {
        "url": "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/",
        "files": {"input.txt": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"},
    },
}
CIFAR_DIR = "cifar-10-batches-py"
CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def folder(name: str, data_dir: str | None) -> Path:
    return Path(data_dir) if data_dir else Path(cache_dir()) / name


def needed(name: str) -> list[str]:
    if name == "cifar10":
        return [f"{CIFAR_DIR}/{b}" for b in CIFAR_BATCHES]
    return list(SOURCES[name]["files"]) if name == "tinyshakespeare" else list(IDX_FILES)


def check_present(name: str, data_dir: str | None = None) -> Path:
    """The folder holding a dataset's files, or a UserError with the command that gets them."""
    where = folder(name, data_dir)
    missing = [f for f in needed(name) if not (where / f).exists()]
    if missing:
        cmd = f"dlbench datasets download {name}" + (f" --data-dir {data_dir}" if data_dir else "")
        raise UserError(f"dataset {name!r} needs {missing[0]} in {where}; allowed: get the files with `{cmd}`")
    return where


# --------------------------------------------------------------------------------------------
# Reading


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not): magic 0x0000 08 NDIM (unsigned bytes), big-endian dims."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path} is not an IDX file of unsigned bytes; allowed: the standard MNIST files")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise UserError(f"{path} is truncated: {data.size} bytes for dims {dims}; allowed: the complete file "
                        "(download it again)")
    return data.reshape(dims)


def _images(x_tr: np.ndarray, x_te: np.ndarray):
    """Scale to [0, 1], then standardize per channel with training statistics only."""
    x_tr = x_tr.astype(np.float32) / 255.0
    x_te = x_te.astype(np.float32) / 255.0
    mean = x_tr.mean(axis=(0, 2, 3), keepdims=True)
    std = x_tr.std(axis=(0, 2, 3), keepdims=True)
    return (x_tr - mean) / std, (x_te - mean) / std


def _load_idx_set(name: str, data_dir: str | None):
    where = check_present(name, data_dir)
    x_tr, y_tr, x_te, y_te = (read_idx(where / f) for f in IDX_FILES)
    x_tr, x_te = _images(x_tr[:, None], x_te[:, None])
    return x_tr, y_tr.astype(np.int64), x_te, y_te.astype(np.int64)


def load_mnist(data_dir: str | None = None):
    return _load_idx_set("mnist", data_dir)


def load_fashion_mnist(data_dir: str | None = None):
    return _load_idx_set("fashion_mnist", data_dir)


class RestrictedUnpickler(pickle.Unpickler):
    """Accepts only what CIFAR-10 batches contain: dicts, lists, bytes/str, ints, numpy arrays."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"forbidden global {module}.{name} in a CIFAR-10 batch")


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = RestrictedUnpickler(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, TypeError, ValueError, EOFError) as e:
        raise UserError(f"{path} is not a CIFAR-10 python batch ({e}); allowed: the standard "
                        "cifar-10-python files") from None
    return data, labels


def load_cifar10(data_dir: str | None = None):
    where = check_present("cifar10", data_dir) / CIFAR_DIR
    train = [read_cifar_batch(where / b) for b in CIFAR_BATCHES[:-1]]
    x_te, y_te = read_cifar_batch(where / "test_batch")
    x_tr = np.concatenate([x for x, _ in train])
    y_tr = np.concatenate([y for _, y in train])
    x_tr, x_te = _images(x_tr, x_te)
    return x_tr, y_tr, x_te, y_te


# --------------------------------------------------------------------------------------------
# Downloading


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(name: str, data_dir: str | None = None, base_url: str | None = None,
             checksums: dict[str, str] | None = None, progress: bool = True) -> Path:
    """Fetch a dataset's files into its folder, each verified by SHA-256 (a mismatch deletes the
    file and fails). `base_url` points at a mirror with the same file names."""
    if name not in SOURCES:
        raise UserError(f"dataset {name!r} has no files to download; allowed: {', '.join(SOURCES)}")
    src = SOURCES[name]
    where = folder(name, data_dir)
    where.mkdir(parents=True, exist_ok=True)
    base = (base_url or src["url"]).rstrip("/") + "/"
    for fname, digest in (checksums or src["files"]).items():
        target = where / fname
        if target.exists() and sha256(target) == digest:
            continue
        _fetch(base + fname, target, progress)
        got = sha256(target)
        if got != digest:
            target.unlink()
            raise UserError(f"{fname} from {base} has SHA-256 {got[:16]}…, expected {digest[:16]}…; the file was "
                            "deleted; allowed: the published file (try again or another --url)")
    if name == "cifar10":
        _extract_cifar(where / "cifar-10-python.tar.gz", where)
    return where


def _fetch(url: str, target: Path, progress: bool) -> None:
    from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

    tmp = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0) or None
            with Progress(*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn(),
                          disable=not progress, transient=True) as bar:
                task = bar.add_task(target.name, total=total)
                for block in iter(lambda: resp.read(1 << 16), b""):
                    out.write(block)
                    bar.advance(task, len(block))
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot download {url}: {getattr(e, 'reason', None) or e}; allowed: a reachable "
                        "mirror (--url) or the files placed in --data-dir by hand") from None


def _extract_cifar(archive: Path, where: Path) -> None:
    """Extract only the expected batch files (no paths from the archive are trusted)."""
    (where / CIFAR_DIR).mkdir(exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        for b in CIFAR_BATCHES:
            member = tar.getmember(f"{CIFAR_DIR}/{b}")
            if not member.isfile():
                raise UserError(f"{archive}: {member.name} is not a file; allowed: the published archive")
            data = tar.extractfile(member).read()
            (where / CIFAR_DIR / b).write_bytes(data)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an IDX file (gzipped when the name ends in .gz): used by tests to make tiny sets."""
    arr = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    payload = header + arr.tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload)
    path.write_bytes(payload)


def pickle_cifar_batch(data: np.ndarray, labels: list[int]) -> bytes:
    """A batch in the published format (dict with bytes keys), for tests."""
    buf = io.BytesIO()
    pickle.dump({b"data": np.ascontiguousarray(data.reshape(len(data), -1), dtype=np.uint8), b"labels": labels,
                 b"batch_label": b"testing batch"}, buf, protocol=2)
    return buf.getvalue()
