"""Sequences: text that works offline (the shipped corpus, its SHA-256; a user's UTF-8 file;
tinyshakespeare's canonical file downloaded with its checksum), contiguous splits whose windows
never cross, the vocabulary of the training block, context as a knob and a grid axis, modular
addition; the language_model task's metrics; gpt and lstm trained fused, equal to the reference
engine trial by trial (float64, 1e-9) with every kind of optimizer; bad text refused in one line."""

import hashlib
import math
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from dlbench import catalogue
from dlbench.data import load_for, text
from dlbench.errors import UserError
from dlbench.spec import build_sweep
from tests.conftest import write
from tests.test_fused import compare_on

TINY_GPT = {"kind": "gpt", "n_layer": 2, "n_head": 2, "d_model": 8}
TINY_LSTM = {"kind": "lstm", "layers": 2, "hidden": 8}


@pytest.fixture
def book(tmp_path, monkeypatch):
    """A user's text: 6,000 characters of the shipped corpus, in a file of the working folder."""
    monkeypatch.chdir(tmp_path)
    return write(tmp_path / "book.txt", text.shipped_text()[100_000:106_000])


def test_the_shipped_corpus_is_what_its_pinned_sha256_says_and_splits_into_contiguous_blocks():
    t = text.shipped_text()
    assert len(t) == 1_257_989 and hashlib.sha256(t.encode()).hexdigest() == text.SHAKESPEARE["sha256"]
    assert "Gutenberg" not in t  # the licence text is not part of the corpus
    ids, vocab = text.encode(t)
    n_train, n_val, n_test = text.blocks(len(t))
    assert (len(ids["train"]), len(ids["val"]), len(ids["test"])) == (n_train, n_val, n_test)
    assert vocab == "".join(sorted(set(t[:n_train])))  # the vocabulary: the training block's characters
    # every block decodes back to its own stretch of the text, in order: no window crosses a split
    chars = vocab + "\0"
    assert "".join(chars[i] for i in ids["val"][:200]) == t[n_train:n_train + 200]
    d = load_for(build_sweep({"dataset": "shakespeare", "context": 64, "epochs": 1}).trials[0])
    assert d.x_train.shape == (15724, 64) and d.x_val.shape == (1965, 64) and d.x_test.shape == (1965, 64)
    assert np.array_equal(d.x_train[:, 1:], d.y_train[:, :-1])  # targets: the next character
    assert np.array_equal(d.y_train[0, -1:], d.x_train[1, :1])  # windows at a stride of context
    assert d.x_train.max() < catalogue.dataset_of(build_sweep({"dataset": "shakespeare"}).trials[0]).vocab


def test_a_character_outside_the_training_block_is_one_unknown_id():
    ids, vocab = text.encode("ab" * 100 + "abz" * 10)  # z only in the validation and test blocks
    assert vocab == "ab" and set(ids["train"].tolist()) == {0, 1} and 2 in ids["test"].tolist()
    assert text.vocab_size(ids, vocab) == 3


def test_datasets_lists_the_corpus_its_checksum_and_modular_addition(cli):
    r = cli("datasets")
    out = " ".join(r.out.split())
    assert r.code == 0
    for name in ("shakespeare", "tinyshakespeare", "modadd"):
        assert f" {name} " in out
    assert "bef1b63b" in out and "context = 64" in out and "p = 97, train_fraction = 0.3" in out


def test_context_is_a_knob_and_a_grid_axis_and_trials_hold_it():
    s = build_sweep({"dataset": "shakespeare", "optimizer": "adam", "epochs": 1, "model": TINY_GPT,
                     "grid": {"context": [16, 32]}})
    assert sorted(t["context"] for t in s.trials) == [16, 32]
    assert len({t["id"] for t in s.trials}) == 2
    info = catalogue.dataset_of(s.trials[0])
    assert info.input_shape == (info.knob("context"),) and info.task == "language_model"
    m = build_sweep({"dataset": "modadd", "p": 11, "train_fraction": 0.5, "epochs": 1}).trials[0]
    assert (m["p"], m["train_fraction"], m["model"]["kind"]) == (11, 0.5, "gpt")
    d = load_for(m)
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 121 and len(d.x_train) == 60
    assert np.array_equal(d.y_train, (d.x_train[:, 0] + d.x_train[:, 1]) % 11) and (d.x_train[:, 2] == 11).all()


@pytest.mark.parametrize("raw,message", [
    ({"dataset": "shakespeare", "context": 200_000}, "context = 200000 is not allowed for shakespeare"),
    ({"dataset": "digits", "context": 32}, "context does not apply to dataset 'digits'; allowed: context with "
                                           "shakespeare, tinyshakespeare, a text file"),
    ({"dataset": "shakespeare", "model": {"kind": "mlp"}}, "needs numeric features"),
    ({"dataset": "digits", "model": {"kind": "gpt"}}, "needs token inputs"),
    ({"dataset": "modadd", "model": {"kind": "gpt", "tied": True}}, "tied = true needs a language model"),
    ({"dataset": "shakespeare", "model": {"kind": "gpt", "d_model": 10, "n_head": 4}}, "not a multiple of n_head"),
    ({"dataset": "modadd", "p": 1}, "p = 1 is not allowed"),
])
def test_bad_sequence_specs_are_one_line(raw, message):
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")) as e:
        build_sweep({"epochs": 1, **raw})
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("content,message", [
    (b"", "is empty"),
    (b"some text\x00more", "is binary (it holds a NUL byte at offset 9)"),
    ("café".encode("latin-1"), "is not UTF-8 (byte 0xe9 at offset 3)"),
    ("".join(chr(0x4E00 + i) for i in range(1500)).encode() * 2, "distinct characters in its training block"),
])
def test_a_text_file_that_is_not_text_is_refused_in_one_line_before_anything_is_written(cli, tmp_path, content,
                                                                                       message):
    (tmp_path / "bad.txt").write_bytes(content)
    r = cli("sweep", "--dataset", tmp_path / "bad.txt", "--name", "b", "--out", tmp_path / "out")
    assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert not (tmp_path / "out").exists()


def test_a_users_text_file_trains_and_reports_bits_per_character(cli, book, tmp_path):
    r = cli("sweep", "--dataset", "./book.txt", "--optimizer", "adam,sgd", "--lr", "0.01", "--epochs", "2",
            "--seeds", "0,1", "--set", "context=16", "--set", "model={kind=\"gpt\",n_layer=1,n_head=2,d_model=8}",
            "--name", "b", "--out", tmp_path / "out", "--workers", "1")
    assert r.code == 0, r.err
    assert "test bpc @ val-best" in r.out
    t = pd.read_parquet(tmp_path / "out" / "b" / "trials.parquet")
    assert (t.task == "language_model").all() and (t.context == 16).all()
    ok = t.iloc[0]
    assert ok.test_bpc_at_best_val == pytest.approx(ok.test_loss_at_best_val / math.log(2), rel=1e-12)
    assert ok.test_ppl_at_best_val == pytest.approx(math.exp(ok.test_loss_at_best_val), rel=1e-12)
    assert 0 < ok.test_acc_at_best_val < 1  # next-token accuracy
    h = pd.read_parquet(tmp_path / "out" / "b" / "history.parquet")
    assert (h.val_bpc == h.val_loss / math.log(2)).all()
    shown = " ".join(cli("show", tmp_path / "out" / "b").out.split())
    assert "to the validation target" in shown and "val loss <=" in shown
    assert cli("report", tmp_path / "out" / "b", "--format", "csv", "--out", tmp_path / "r.csv").code == 0
    to = pd.read_csv(tmp_path / "r-to-target.csv")
    assert sorted(to.optimizer) == ["adam", "sgd"] and (to.metric == "val_loss").all()


def test_tinyshakespeare_downloads_with_its_checksum_from_a_local_server(tmp_path, monkeypatch):
    """The canonical file is fetched, SHA-256 checked, and read (a stand-in served on 127.0.0.1
    with its own checksum: the real one cannot be fetched here)."""
    import functools
    import http.server
    import threading

    from dlbench.data import files

    served = tmp_path / "served"
    served.mkdir()
    body = text.shipped_text()[:20_000].encode()
    (served / "input.txt").write_bytes(body)
    digest = hashlib.sha256(body).hexdigest()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/"
        with pytest.raises(UserError, match="SHA-256"):  # the pinned checksum refuses a file that is not canonical
            files.download("tinyshakespeare", str(tmp_path / "dl"), base_url=url, progress=False)
        where = files.download("tinyshakespeare", str(tmp_path / "dl"), base_url=url,
                               checksums={"input.txt": digest}, progress=False)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    assert (where / "input.txt").read_bytes() == body
    monkeypatch.setitem(text.TINY, "sha256", digest)
    arrays = text.load_tinyshakespeare(16, str(where))
    assert arrays["x_train"].shape == ((16_000 - 1) // 16, 16)


# --------------------------------------------------------------------------------------------
# Fused, equal to the reference engine


def sweep(optimizer, model, dataset="modadd", **extra):
    raw = {"dataset": dataset, "dtype": "float64", "epochs": 2, "batch_size": 8, "seeds": [0, 1],
           "model": model, "optimizer": optimizer, "lr": [3e-3, 3e-2], **extra}
    if dataset == "modadd":
        raw.update(p=7, train_fraction=0.5)
    return build_sweep(raw)


@pytest.mark.parametrize("model", [TINY_GPT, {**TINY_GPT, "tied": False}, TINY_LSTM], ids=["gpt", "gpt-untied", "lstm"])
def test_sequence_models_train_fused_and_equal_the_reference_on_text(book, model):
    s = sweep(["adam", "sgd"], model, "./book.txt", context=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "batching rule not implemented" or any other warning
        worst = compare_on(s.trials, load_for(s.trials[0]), 1e-9, require_ok=True)
    assert worst <= 1e-9


OPTIMIZERS = {
    "by path": ("torch.optim:NAdam", {}),
    "wrapper": ("la", {"la": {"class": "pytorch_optimizer:Lookahead", "wraps": "adamw", "k": 2}}),
    "split": ("muon", {"muon": {"class": "torch.optim:Muon", "rest": "adamw", "rest_lr": 3e-3}}),
}


@pytest.mark.parametrize("kind", list(OPTIMIZERS))
@pytest.mark.parametrize("model", [{**TINY_GPT, "tied": False}, TINY_LSTM], ids=["gpt", "lstm"])
def test_every_kind_of_optimizer_trains_sequence_models_fused_and_equal(model, kind):
    name, tables = OPTIMIZERS[kind]
    s = sweep(name, model, optimizers=tables)
    assert compare_on(s.trials, load_for(s.trials[0]), 1e-9, require_ok=True) <= 1e-9


def test_a_nonzero_dropout_trains_on_the_reference_engine_saying_why():
    from dlbench.engine import fused_supports

    s = sweep("adam", {**TINY_GPT, "tied": False, "dropout": 0.1})
    assert "dropout" in fused_supports(s.trials[0])


USER_MODEL = '''
import torch
from torch import nn


def tiny_lm(input_shape, n_outputs, width=8):
    """Embedding, one tanh layer, a head: a language model a user writes (n_outputs = the vocabulary)."""
    return nn.Sequential(nn.Embedding(n_outputs, width), nn.Linear(width, width), nn.Tanh(),
                         nn.Linear(width, n_outputs))
'''


def test_a_users_own_sequence_model_trains_on_text_as_users_models_do(book, tmp_path):
    write(tmp_path / "lm.py", USER_MODEL)
    s = sweep("adam", {"factory": "./lm.py:tiny_lm"}, "./book.txt", context=16)
    entry = catalogue.model_of(s.trials[0])
    assert entry.fused_reason is None  # torch.func stacks it
    assert compare_on(s.trials, load_for(s.trials[0]), 1e-9, require_ok=True) <= 1e-9


def test_next_token_accuracy_and_the_loss_per_position_by_hand():
    from dlbench.engine.common import evaluate
    from dlbench.losses import loss_fn

    out = torch.tensor([[[2.0, 0.0], [0.0, 3.0]], [[1.0, 0.0], [1.0, 0.0]]])  # [B=2, T=2, V=2]
    y = torch.tensor([[0, 1], [1, 1]])
    row = evaluate(lambda x: out, loss_fn("cross_entropy"), torch.zeros(2, 2, dtype=torch.long), y, "language_model")
    ce = -torch.log_softmax(out, dim=-1).gather(2, y.unsqueeze(-1)).squeeze(-1)  # [B, T]
    assert row["loss"] == pytest.approx(float(ce.mean()))
    assert row["acc"] == pytest.approx((1.0 + 0.0) / 2)  # window 1: 2 of 2 right, window 2: 0 of 2
    assert row["bpc"] == pytest.approx(row["loss"] / math.log(2))


def test_auto_takes_the_engine_that_measures_faster_for_the_model_on_the_cpu():
    """benchmarks/sequence_models.py: gpt at the lesson size fused 1.68× one at a time; at nanoGPT's
    d_model 128 0.92×; lstm 0.36-0.62×. --engine auto follows the measurement; --engine fused obeys."""
    from dlbench.plan import make_units

    def engine(model, how="auto"):
        s = build_sweep({"dataset": "shakespeare", "model": model, "epochs": 1, "context": 32})
        (unit,) = make_units(s.trials, how, 1)
        return unit.engine, unit.reason

    assert engine(TINY_GPT) == ("fused", None)
    big, why = engine({"kind": "gpt", "n_layer": 4, "n_head": 4, "d_model": 128})
    assert big == "reference" and "d_model 128" in why
    lstm, why = engine(TINY_LSTM)
    assert lstm == "reference" and "torch.nn.LSTM's kernel" in why
    assert engine(TINY_LSTM, "fused") == ("fused", None)


def test_a_language_model_stops_at_its_lowest_validation_loss_as_its_configurations_are_chosen():
    """Next-token accuracy can peak at another evaluation than the loss: the epoch reported
    (test_*_at_best_val) is the one the loss chooses, as the configuration is chosen on the loss."""
    from dlbench.store import trial_summary

    def row(epoch, val_loss, val_acc, test_loss):
        return {"epoch": epoch, "val_loss": val_loss, "val_acc": val_acc, "test_loss": test_loss,
                "test_bpc": test_loss / math.log(2), "train_time": 0.0, "eval_time": 0.0}

    history = [row(0, 4.0, 0.05, 4.1), row(1, 2.2, 0.40, 2.3), row(2, 2.1, 0.39, 2.2), row(3, 2.1, 0.395, 2.15)]
    s = trial_summary({"status": "ok", "history": history, "data": {"task": "language_model"}})
    assert s["best_epoch"] == 3 and s["test_loss_at_best_val"] == 2.15  # loss tie at 2.1: the better accuracy
    assert s["test_bpc_at_best_val"] == pytest.approx(2.15 / math.log(2))
    # a classifier still stops at its best accuracy
    assert trial_summary({"status": "ok", "history": history, "data": {"task": "multiclass"}})["best_epoch"] == 1
