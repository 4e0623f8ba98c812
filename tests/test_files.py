"""Datasets that need files: readers on tiny files in the real formats, downloads from a local
HTTP server on 127.0.0.1 (good and bad checksums), the message for missing files, and the
restricted unpickler for CIFAR-10's batches."""

import functools
import hashlib
import http.server
import io
import pickle
import tarfile
import threading

import numpy as np
import pytest

from dlbench.data import files
from dlbench.errors import UserError


def make_idx_set(folder, n_train=12, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte.gz": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": np.arange(n_test) % 10,
    }
    for name, a in arrays.items():
        files.write_idx(folder / name, a)
    return arrays


def make_cifar_archive(path, per_batch=4):
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for b in files.CIFAR_BATCHES:
            data = files.pickle_cifar_batch(rng.integers(0, 256, (per_batch, 3, 32, 32)), list(range(per_batch)))
            info = tarfile.TarInfo(f"{files.CIFAR_DIR}/{b}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return path


@pytest.fixture
def server(tmp_path):
    """A static file server on 127.0.0.1 (a free port), stopped when the test ends."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_idx_reader_round_trips_and_mnist_loads(tmp_path):
    arrays = make_idx_set(tmp_path / "m")
    assert np.array_equal(files.read_idx(tmp_path / "m" / "t10k-images-idx3-ubyte.gz"),
                          arrays["t10k-images-idx3-ubyte.gz"])
    x_tr, y_tr, x_te, y_te = files.load_mnist(str(tmp_path / "m"))
    assert x_tr.shape == (12, 1, 28, 28) and x_te.shape == (5, 1, 28, 28) and x_tr.dtype == np.float32
    assert y_tr.tolist() == list(arrays["train-labels-idx1-ubyte.gz"])
    assert abs(float(x_tr.mean())) < 1e-5 and abs(float(x_tr.std()) - 1) < 1e-4  # standardized by training stats


def test_truncated_or_foreign_idx_is_a_clear_error(tmp_path):
    make_idx_set(tmp_path / "m")
    path = tmp_path / "m" / "train-labels-idx1-ubyte.gz"
    import gzip

    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-3]))
    with pytest.raises(UserError, match="truncated"):
        files.load_mnist(str(tmp_path / "m"))
    path.write_bytes(gzip.compress(b"PK\x03\x04 not idx"))
    with pytest.raises(UserError, match="not an IDX file"):
        files.load_mnist(str(tmp_path / "m"))


def test_missing_files_name_the_command_that_gets_them(cli, tmp_path):
    with pytest.raises(UserError, match="dlbench datasets download fashion_mnist --data-dir"):
        files.check_present("fashion_mnist", str(tmp_path))
    r = cli("sweep", "--dataset", "mnist", "--data-dir", tmp_path / "none", "--epochs", "1", "--out", tmp_path / "o")
    assert r.code == 2 and "dlbench datasets download mnist" in r.err
    assert not (tmp_path / "o").exists()


def test_sweep_on_tiny_mnist_files_with_the_cnn(cli, tmp_path):
    make_idx_set(tmp_path / "m", n_train=40, n_test=10)  # 4 images per class
    r = cli("sweep", "--dataset", "mnist", "--data-dir", tmp_path / "m", "--model", '{kind="cnn", channels=[4]}',
            "--optimizer", "sgd,adam", "--epochs", "1", "--batch-size", "8", "--out", tmp_path / "o", "--workers", "1",
            "--set", "validation=0.25", "--name", "sweep")
    assert r.code == 0, r.err
    from dlbench import store

    trials, history, _ = store.read_results(tmp_path / "o" / "sweep")
    assert set(trials.status) == {"ok"} and (trials.engine == "reference").all()
    assert history[history.epoch == 1].steps.tolist() == [4, 4]  # 30 training images left, one per class to val
    assert history.val_acc.notna().all()


def test_a_split_the_files_cannot_give_fails_the_trials_with_the_reason(cli, tmp_path):
    make_idx_set(tmp_path / "m", n_train=40, n_test=10)  # 4 per class: 0.1 × 4 rounds to 0
    r = cli("sweep", "--dataset", "mnist", "--data-dir", tmp_path / "m", "--model", "linear", "--epochs", "1",
            "--out", tmp_path / "o", "--workers", "1", "--name", "sweep")
    assert r.code == 1
    from dlbench import store

    trials, _, _ = store.read_results(tmp_path / "o" / "sweep")
    assert "leaves class 0 of mnist with no validation sample" in trials.error.iloc[0]


def test_download_with_good_checksums_from_a_local_server(server, tmp_path):
    root, url = server
    make_idx_set(root)
    sums = {f: hashlib.sha256((root / f).read_bytes()).hexdigest() for f in files.IDX_FILES}
    where = files.download("mnist", str(tmp_path / "dl"), base_url=url, checksums=sums, progress=False)
    assert sorted(p.name for p in where.iterdir()) == sorted(files.IDX_FILES)
    assert files.load_mnist(str(where))[0].shape == (12, 1, 28, 28)


def test_download_with_a_bad_checksum_deletes_the_file_and_fails(cli, server, tmp_path):
    root, url = server
    make_idx_set(root)
    # the published SHA-256 sums cannot match these tiny files
    r = cli("datasets", "download", "mnist", "--data-dir", tmp_path / "dl", "--url", url)
    assert r.code == 2 and "SHA-256" in r.err and "was deleted" in r.err
    assert not any((tmp_path / "dl").glob("*.gz"))
    assert not any((tmp_path / "dl").glob("*.part"))


def test_unreachable_mirror_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="cannot download"):
        files.download("mnist", str(tmp_path), base_url="http://127.0.0.1:9/", progress=False)


def test_cifar_download_extracts_only_the_batches_and_loads(server, tmp_path):
    root, url = server
    make_cifar_archive(root / "cifar-10-python.tar.gz")
    digest = hashlib.sha256((root / "cifar-10-python.tar.gz").read_bytes()).hexdigest()
    where = files.download("cifar10", str(tmp_path / "c"), base_url=url,
                           checksums={"cifar-10-python.tar.gz": digest}, progress=False)
    x_tr, y_tr, x_te, y_te = files.load_cifar10(str(where))
    assert x_tr.shape == (20, 3, 32, 32) and x_te.shape == (4, 3, 32, 32) and y_tr.tolist()[:4] == [0, 1, 2, 3]


class Evil:
    def __reduce__(self):
        import os

        return (os.system, ("echo owned > /dev/null",))


def test_restricted_unpickler_refuses_anything_but_arrays(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}))
    with pytest.raises(UserError, match="forbidden global"):
        files.read_cifar_batch(path)
    ok = tmp_path / "ok"
    ok.write_bytes(files.pickle_cifar_batch(np.zeros((2, 3, 32, 32)), [1, 2]))
    data, labels = files.read_cifar_batch(ok)
    assert data.shape == (2, 3, 32, 32) and labels.tolist() == [1, 2]
