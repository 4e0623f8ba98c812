"""Datasets users bring, under the same rules as the built-ins:

    dataset = "./table.csv"                                      (target: a column named target or label)
    dataset = { path = "./table.csv", target = "label", task = "multiclass" }    (.csv, .parquet, .npz)
    dataset = { loader = "mypkg.data:load", <keywords> }         (returns arrays)
    --dataset ./table.csv --target label [--task binary]
    dataset = "./book.txt"                                       (UTF-8 text: a character-level language model)

A table's features are every column but the target; an .npz holds x_train, y_train, x_test and
y_test (and optionally x_val, y_val), or x and y; a loader returns a dict with those keys, or the
tuple (x_train, y_train, x_test, y_test[, x_val, y_val]). Then, as for the built-ins: a table or
(x, y) is split 80/20 by SPLIT_SEED (stratified for classification, exact duplicate rows dropped
first), features are standardized with training statistics only (a regression target too),
classes become 0..C-1 in sorted order (binary: float 0/1), the validation split is carved from
the training split unless validation arrays are given, and the prepared arrays are cached.

Every check runs in the driver before anything trains, each refusal one line: a missing target
column, a non-numeric feature (named), NaN or inf (the column and the count), fewer than two
classes, a class too small for the split, an empty file, a loader that raises or returns the
wrong shapes. The file's (or the arrays') SHA-256 goes into env.json.

A .txt file is text for a language model (dlbench/data/text.py): contiguous train, validation and
test blocks, the vocabulary of its training block, windows of `context` characters; an empty,
binary or non-UTF-8 file, or one with more distinct characters than a character-level model
takes, is refused in one line.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from dlbench import usercode
from dlbench.data.common import (
    ARRAY_KEYS,
    DATA_VERSION,
    DatasetInfo,
    read_cached,
    split,
    standardize,
    write_cached,
)
from dlbench.errors import UserError

KIND = "user"
SUFFIXES = (".csv", ".parquet", ".npz", ".txt")
TASKS = ("multiclass", "binary", "regression", "language_model")
MAX_CLASSES = 50  # a target with more distinct whole values than this is taken as continuous


def recognises(value: Any) -> bool:
    """A dataset given as a table (path or loader) or as a path, not a registered name."""
    if isinstance(value, dict):
        return True
    return usercode.looks_like_path(value)


def with_flags(value: Any, target: str | None, task: str | None) -> Any:
    """A file dataset qualified by --target and --task; anything else as it is (None: not a file)."""
    if not (recognises(value) and (isinstance(value, str) or "path" in value)):
        return None
    value = {"path": value} if isinstance(value, str) else dict(value)
    value.update({k: x for k, x in (("target", target), ("task", task)) if x is not None})
    return value


def canonical(value: Any, where: str = "dataset") -> dict:
    """The dataset's canonical table: {path, target, task} or {loader, task, <keywords>}; `task`
    and `target` are filled in once the data has been read (check)."""
    if isinstance(value, str):
        value = {"path": value}
    value = dict(value)
    if ("path" in value) == ("loader" in value):
        raise UserError(f"{where} = {value!r} is not allowed; allowed: "
                        "{ path = \"./table.csv\", target = \"label\" } "
                        "or { loader = \"module:function\" }")
    if "path" in value:
        extra = sorted(set(value) - {"path", "target", "task", "name"})
        if extra:
            raise UserError(f"{where}.{extra[0]} is not a key of a file dataset; allowed: path, target, task, name")
        if not isinstance(value["path"], str) or not value["path"].endswith(SUFFIXES):
            raise UserError(f"{where}.path = {value['path']!r} is not allowed; allowed: a .csv, .parquet, .npz or "
                            ".txt file")
        if is_text(value):
            if value.get("task", "language_model") != "language_model" or "target" in value:
                raise UserError(f"{where}: {value['path']} is text, for a language model; allowed: path and name "
                                "(task = \"language_model\")")
            value["task"] = "language_model"
    if "task" in value and value["task"] not in TASKS:
        raise UserError(f"{where}.task = {value['task']!r} is unknown; allowed: {', '.join(TASKS)}")
    if "target" in value and not isinstance(value["target"], str):
        raise UserError(f"{where}.target = {value['target']!r} is not allowed; allowed: a column name")
    return value


def is_text(spec: dict) -> bool:
    """A text file: characters for a language model (its path ends in .txt)."""
    return isinstance(spec.get("path"), str) and spec["path"].endswith(".txt")


def label_of(spec: dict) -> str:
    """The dataset's name in tables: its `name`, else the file's name, else the loader's reference."""
    return spec.get("name") or (Path(spec["path"]).name if "path" in spec else spec["loader"])


# --------------------------------------------------------------------------------------------
# Reading and preparing


def read_raw(spec: dict, files, where: str = "dataset"):
    """(x, y, given) where given is None for one table to split, or the dict of given arrays."""
    if "loader" in spec:
        return _from_loader(spec, files, where)
    data = files.read(spec["path"])
    suffix = Path(spec["path"]).suffix
    if not data.strip():
        raise UserError(f"{where}: {spec['path']} is empty; allowed: a file with a header and rows")
    if suffix == ".npz":
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (ValueError, OSError) as e:
            raise UserError(f"{where}: {spec['path']} is not a readable .npz ({e}); allowed: numpy.savez output") \
                from None
        return _from_arrays(arrays, spec["path"], where)
    import pandas as pd

    try:
        df = pd.read_csv(io.BytesIO(data)) if suffix == ".csv" else pd.read_parquet(io.BytesIO(data))
    except Exception as e:  # noqa: BLE001 - whatever the parser says, in one line
        raise UserError(f"{where}: {spec['path']} cannot be read as {suffix[1:]} ({type(e).__name__}: "
                        f"{str(e).splitlines()[0] if str(e) else ''}); allowed: a {suffix[1:]} table with a header") \
            from None
    if df.empty:
        raise UserError(f"{where}: {spec['path']} has no rows; allowed: a table with at least one row per class")
    target = spec.get("target") or next((c for c in ("target", "label") if c in df.columns), None)
    if target is None or target not in df.columns:
        said = f"has no column {target!r}" if target else "names no target (and has no column target or label)"
        raise UserError(f"{where}: {spec['path']} {said}; allowed: target = one of {', '.join(map(str, df.columns))}")
    features = df.drop(columns=[target])
    if features.shape[1] == 0:
        raise UserError(f"{where}: {spec['path']} has no feature column besides {target!r}; allowed: a table with "
                        "features")
    for c in features.columns:
        if not pd.api.types.is_numeric_dtype(features[c]) or pd.api.types.is_bool_dtype(features[c]):
            if pd.api.types.is_bool_dtype(features[c]):
                continue
            raise UserError(f"{where}: feature column {c!r} of {spec['path']} is not numeric ({features[c].dtype}, "
                            f"e.g. {features[c].dropna().iloc[0]!r}); allowed: numeric features (encode it first)")
    x = features.to_numpy(dtype=np.float64)
    _check_finite(x, [str(c) for c in features.columns], spec["path"], where)
    y = df[target]
    if y.isna().any():
        raise UserError(f"{where}: target column {target!r} of {spec['path']} has {int(y.isna().sum())} missing "
                        "value(s); allowed: a target on every row")
    return x, y.to_numpy(), None, target


def _check_finite(x: np.ndarray, names: list[str], source: str, where: str) -> None:
    bad = ~np.isfinite(x.reshape(len(x), -1))
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        name = names[j] if j < len(names) else f"feature {j}"
        raise UserError(f"{where}: column {name!r} of {source} has {int(bad[:, j].sum())} NaN or infinite value(s); "
                        "allowed: finite numbers (fill or drop them first)")


def _from_arrays(arrays: dict, source: str, where: str):
    if all(k in arrays for k in ARRAY_KEYS):
        given = {k: np.asarray(v) for k, v in arrays.items() if k in (*ARRAY_KEYS, "x_val", "y_val")}
        if ("x_val" in given) != ("y_val" in given):
            raise UserError(f"{where}: {source} has only one of x_val and y_val; allowed: both or neither")
        return None, None, given, None
    if "x" in arrays and "y" in arrays:
        return np.asarray(arrays["x"], dtype=np.float64), np.asarray(arrays["y"]), None, None
    raise UserError(f"{where}: {source} holds {', '.join(arrays) or 'nothing'}; allowed: x_train, y_train, x_test, "
                    "y_test (and optionally x_val, y_val), or x and y")


def _from_loader(spec: dict, files, where: str):
    ref = usercode.parse_ref(spec["loader"])
    if ref is None:
        raise UserError(f"{where}.loader = {spec['loader']!r} is not a reference; allowed: \"module:function\" or "
                        "\"./file.py:function\"")
    fn = usercode.load_object(ref, files, f"{where}.loader")
    kw = {k: v for k, v in spec.items() if k not in ("loader", "task", "name")}
    with usercode.calling(f"{where}: the loader {spec['loader']}", "a function returning arrays"):
        out = fn(**kw)
    if isinstance(out, tuple | list) and len(out) in (4, 6):
        out = dict(zip((*ARRAY_KEYS, "x_val", "y_val"), out, strict=False))
    if not isinstance(out, dict):
        raise UserError(f"{where}: the loader {spec['loader']} returned {type(out).__name__}; allowed: a dict with "
                        "x_train, y_train, x_test, y_test (and x_val, y_val), or that tuple")
    return _from_arrays(out, f"the loader {spec['loader']}", where)


def infer_task(y: np.ndarray) -> tuple[str, str]:
    """(task, why) from the target's values: text or booleans, or at most MAX_CLASSES whole values,
    are classes (binary with two); anything else is a regression target."""
    values = np.unique(y)
    whole = y.dtype.kind in "biuOUS" or (y.dtype.kind == "f" and np.all(np.mod(values, 1) == 0))
    if whole and len(values) <= MAX_CLASSES:
        task = "binary" if len(values) == 2 else "multiclass"
        return task, f"{len(values)} distinct values"
    return "regression", f"{len(values)} distinct values, not all classes"


def prepare(spec: dict, files, where: str = "dataset") -> tuple[dict, dict[str, np.ndarray], str | None]:
    """(the spec with its target and task filled in, the prepared arrays, the note of what was
    inferred: the task where the spec gives none, else None)."""
    x, y, given, target = read_raw(spec, files, where)
    spec = dict(spec)
    if target is not None:
        spec["target"] = target
    if given is not None:
        arrays = {k: np.asarray(v) for k, v in given.items()}
        _check_given_shapes(arrays, label_of(spec), where)
        y_all = np.concatenate([arrays["y_train"].reshape(len(arrays["y_train"]), -1)[:, 0],
                                arrays["y_test"].reshape(len(arrays["y_test"]), -1)[:, 0]])
    else:
        y_all = y
    task, note = spec.get("task"), None
    if task is None:
        task, why = infer_task(y_all)
        spec["task"] = task
        note = f"{where} {label_of(spec)}: task inferred as {task} ({why} in its target); set task = ... to choose"
    classification = task in ("binary", "multiclass")
    if classification:
        classes = np.unique(y_all)
        if len(classes) < 2:
            raise UserError(f"{where}: the target of {label_of(spec)} has {len(classes)} class; allowed: at least 2")
        if task == "binary" and len(classes) != 2:
            raise UserError(f"{where}: task = 'binary' but the target of {label_of(spec)} has {len(classes)} classes; "
                            "allowed: task = \"multiclass\"")
        code = {c: i for i, c in enumerate(classes)}

        def encode(v):
            out = np.array([code[c] for c in np.asarray(v).reshape(-1)])
            return out.astype(np.float32) if task == "binary" else out.astype(np.int64)
    else:
        def encode(v):
            v = np.asarray(v)
            if v.dtype.kind not in "biuf":
                raise UserError(f"{where}: task = 'regression' but the target of {label_of(spec)} is not numeric; "
                                "allowed: numbers, or task = \"multiclass\"")
            return v.astype(np.float64).reshape(len(v), -1)

    if given is None:
        if classification:
            counts = {c: int((y == c).sum()) for c in np.unique(y)}
            small = [c for c, n in counts.items() if n < 2]
            if small:
                name = small[0].item() if hasattr(small[0], "item") else small[0]
                raise UserError(f"{where}: class {name!r} of {label_of(spec)} has {counts[small[0]]} sample; "
                                "allowed: at least 2 per class (the 80/20 test split is stratified)")
        x_tr, x_te, y_tr, y_te = split(x, encode(y), stratify=classification)
        arrays = {"x_train": x_tr, "y_train": y_tr, "x_test": x_te, "y_test": y_te}
    else:
        arrays = {k: (encode(v) if k.startswith("y") else np.asarray(v, dtype=np.float64)) for k, v in arrays.items()}
        for k in ("x_train", "x_test", "x_val"):
            if k in arrays:
                _check_finite(arrays[k], [], f"{label_of(spec)} {k}", where)
    # standardize with the training split's statistics only (a regression target too)
    for prefix in ("x", "y") if task == "regression" else ("x",):
        parts = [k for k in (f"{prefix}_train", f"{prefix}_test", f"{prefix}_val") if k in arrays]
        for k, v in zip(parts, standardize(*(arrays[k] for k in parts)), strict=True):
            arrays[k] = v
    return spec, arrays, note


def _check_given_shapes(arrays: dict, label: str, where: str) -> None:
    shape = arrays["x_train"].shape[1:]
    for part in ("train", "test", "val"):
        x, y = arrays.get(f"x_{part}"), arrays.get(f"y_{part}")
        if x is None:
            continue
        if len(x) != len(y):
            raise UserError(f"{where}: {label} has {len(x)} x_{part} rows but {len(y)} y_{part} values; allowed: "
                            "one target per sample")
        if x.shape[1:] != shape:
            raise UserError(f"{where}: {label}'s x_{part} has sample shape {x.shape[1:]}, x_train {shape}; allowed: "
                            "the same shape in every split")
        if not len(x):
            raise UserError(f"{where}: {label}'s {part} split is empty; allowed: at least one sample")


def _say(note: str) -> None:
    usercode.SESSION.note(note)


# --------------------------------------------------------------------------------------------
# This sweep's user datasets, and the cache of their prepared arrays


def registered() -> dict[str, DatasetInfo]:
    """This session's user datasets: label -> record (the driver checked them; a worker re-reads
    a trial's spec)."""
    return usercode.SESSION.cache("datasets")


def provenances() -> dict[str, dict]:
    """label -> where its arrays came from (file and SHA-256, or the loader's code), for env.json."""
    return usercode.SESSION.cache("dataset provenance")


def digest(spec: dict, files) -> str:
    """What identifies the prepared arrays: the spec and the file's SHA-256 (a loader: its code)."""
    parts = [json.dumps(spec, sort_keys=True), str(DATA_VERSION)]
    if "path" in spec:
        parts.append(files.add(spec["path"], "dataset", ship=False).sha256)
    else:
        ref = usercode.parse_ref(spec["loader"])
        if ref is not None and ref.is_file:
            parts.append(files.add(ref.path, "dataset.loader").sha256)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def arrays_for(spec: dict, files, where: str = "dataset") -> tuple[dict, dict[str, np.ndarray]]:
    """(the completed spec, the prepared arrays) of a user dataset, from the cache when it holds them."""
    key = digest(spec, files)
    hit = read_cached(f"user-{key[:24]}")
    # an entry without the note of an inferred task (written before notes were cached) is made again
    if hit is not None and "spec" in hit and ("note" in hit or spec.get("task") is not None):
        note = hit.pop("note", None)
        full, arrays = json.loads(str(hit.pop("spec"))), hit
    else:
        full, arrays, note = prepare(spec, files, where)
        # under the spec as written and as completed (target and task filled in): workers ask for the latter
        for k in dict.fromkeys((key, digest(full, files))):
            write_cached(f"user-{k[:24]}", {"spec": json.dumps(full), **({"note": note} if note else {}), **arrays})
    if note is not None:  # what preparing inferred, said whether the arrays were prepared now or cached
        _say(str(note))
    return full, arrays


def check(value: Any, where: str = "dataset") -> DatasetInfo:
    """A user dataset read, checked and registered in this session: its record, whose `spec` is
    the canonical table a trial carries as `data`. Each value is read once per session."""
    seen = usercode.SESSION.cache("dataset values")
    key = json.dumps(value, sort_keys=True, default=str)
    if key not in seen:
        seen[key] = _check(value, where)
    return seen[key]


def _check(value: Any, where: str) -> DatasetInfo:
    files = usercode.SESSION.files
    spec = canonical(value, where)
    if is_text(spec):
        return _check_text(spec, files, where)
    full, arrays = arrays_for(spec, files, where)
    label = label_of(full)
    known = registered().get(label)
    if known is not None and known.spec != full:
        raise UserError(f"{where}: two datasets are named {label!r} ({known.spec} and {full}); allowed: tell "
                        "them apart with name = \"...\"")
    task = full["task"]
    y_tr = arrays["y_train"]
    counts = tuple(int((y_tr == c).sum()) for c in np.unique(y_tr)) if task != "regression" else ()
    source = (f"file {full['path']} (target {full.get('target')!r})" if "path" in full
              else f"loader {full['loader']}")
    info = DatasetInfo(label, task, len(arrays["x_train"]), len(arrays["x_test"]),
                       tuple(int(s) for s in arrays["x_train"].shape[1:]),
                       len(counts) if task != "regression" else 0, source, f"{__name__}:arrays",
                       class_counts=counts, own_validation="x_val" in arrays, spec=full, kind=KIND)
    registered()[label] = info
    prov: dict[str, Any] = {"spec": full, "sha256_arrays": hashlib.sha256(b"".join(
        np.ascontiguousarray(arrays[k]).tobytes() for k in sorted(arrays))).hexdigest()}
    if "path" in full:
        f = files.files[full["path"]]
        prov.update({"path": f.path, "sha256": f.sha256})
    else:
        prov.update(usercode.provenance(usercode.parse_ref(full["loader"]), files))
        prov["loader"] = full["loader"]
    provenances()[label] = prov
    return info


def _check_text(spec: dict, files, where: str) -> DatasetInfo:
    """A text file read and checked (text.decode), its blocks and vocabulary measured, registered."""
    from dlbench.data import text

    label = label_of(spec)
    known = registered().get(label)
    if known is not None and known.spec != spec:
        raise UserError(f"{where}: two datasets are named {label!r} ({known.spec} and {spec}); allowed: tell "
                        "them apart with name = \"...\"")
    files.add(spec["path"], where, ship=False)
    chars = text.decode(files.read(spec["path"]), spec["path"], where)
    ids, vocab = text.encode(chars)
    tokens = tuple(len(ids[k]) for k in ("train", "val", "test"))
    n = text.vocab_size(ids, vocab)
    info = DatasetInfo(label, "language_model", 0, 0, (text.DEFAULT_CONTEXT,), n,
                       f"text file {spec['path']} ({len(chars):,} characters, {len(vocab)} distinct in its training "
                       "block)", f"{__name__}:arrays", own_validation=True, spec=spec, kind=KIND, vocab=n,
                       tokens=tokens, knobs=(("context", min(text.DEFAULT_CONTEXT, min(tokens) - 1)),))
    registered()[label] = info
    f = files.files[spec["path"]]
    provenances()[label] = {"spec": spec, "path": f.path, "sha256": f.sha256, "characters": len(chars),
                            "vocabulary": vocab}
    return info


def from_spec(spec: dict) -> DatasetInfo:
    """The record of a trial's user dataset (`data`): the one checked here, else checked again
    (a worker: read from the cache, or prepared from the file that travelled with the work)."""
    info = registered().get(label_of(spec))
    return info if info is not None and info.spec == spec else check(spec)


def arrays(info: DatasetInfo, data_dir: str | None = None) -> dict[str, np.ndarray]:
    """The prepared arrays of a checked user dataset (a text's windows for its record's context)."""
    if is_text(info.spec):
        from dlbench.data import text

        ids, _ = text.encode(text.decode(usercode.SESSION.files.read(info.spec["path"]), info.spec["path"]))
        return text.arrays_of(ids, info.knob("context"))
    return arrays_for(info.spec, usercode.SESSION.files)[1]
