"""A user's own model: `model = { factory = "MODULE:FUNC", <keywords> }` or `--model ./my_model.py:make`,
where FUNC(input_shape, n_outputs, **keywords) returns an nn.Module. Each trial builds it under its
own seed, as for the built-ins.

Checked before anything runs: the function resolves, takes the keywords, and builds an nn.Module
whose output on two samples of the dataset has the shape its loss needs. Building it once also
tells its record: how many parameters it has, whether torch.func can stack it (the fused engine)
and if not why, whether it max-pools, and whether it is an MLP in all but name. Where the user's
code is inspected in a worker (the session's early pool), there; the record comes back here."""

from __future__ import annotations

import json

from dlbench import usercode
from dlbench.errors import UserError, did_you_mean
from dlbench.models.common import ModelEntry, as_mlp, output_size
from dlbench.models.kind import ModelKind

ALLOWED = "a function (input_shape, n_outputs, **keywords) returning an nn.Module"


class Factory(ModelKind):
    """A user's model: a table with `factory = "MODULE:FUNC"` (or the reference alone)."""

    names = ("factory",)
    order = 90
    allowed = 'factory = "module:function" (your own nn.Module)'

    def recognises(self, value: dict) -> bool:
        return "factory" in value

    def from_text(self, text: str) -> dict | None:
        return {"factory": text} if usercode.parse_ref(text) else None

    def check(self, value: dict, info, where: str = "model") -> dict:
        return check(value, info, where)

    def entry(self, model: dict, info) -> ModelEntry:
        return entry(model, info)

    def build(self, model: dict, info):
        return build(model, info)


def keywords(model: dict) -> dict:
    return {k: v for k, v in model.items() if k not in ("kind", "factory")}


def _records() -> dict[str, ModelEntry]:
    return usercode.SESSION.cache("model records")


def _functions() -> dict[str, object]:
    return usercode.SESSION.cache("model factories")


def function(text: str, where: str = "model.factory"):
    """The factory a reference names, resolved once per session."""
    fns = _functions()
    if text not in fns:
        ref = usercode.parse_ref(text)
        if ref is None:
            raise UserError(f"{where} = {text!r} is not a reference; allowed: \"module:function\" or "
                            "\"./file.py:function\"")
        obj = usercode.load_object(ref, usercode.SESSION.files, where)
        if not callable(obj):
            raise UserError(f"{where} = {text!r} is a {type(obj).__name__}, not a function; allowed: {ALLOWED}")
        fns[text] = obj
    return fns[text]


def build(model: dict, info):
    """The user's nn.Module for a trial (call under the trial's seed, as for the built-ins)."""
    fn = function(model["factory"])
    return fn(tuple(info.input_shape), output_size(info), **usercode.as_call_keywords(keywords(model)))


def _key(model: dict, info) -> str:
    return json.dumps([model, list(info.input_shape), output_size(info)], sort_keys=True)


def check(value: dict, info, where: str = "model") -> dict:
    """A user's model table checked (in the early pool when there is one): its canonical form, kind
    "factory", the reference, then the keywords in name order. Its record is kept for `entry`."""
    ref = usercode.parse_ref(value.get("factory"))
    if ref is not None and ref.is_file:
        usercode.SESSION.files.add(ref.path, f"{where}.factory")
    out, record = usercode.SESSION.remote(_describe, value, info, where)
    _records()[_key(out, info)] = record
    if ref is not None and not ref.is_file:
        _functions().setdefault(out["factory"], None)  # for the modules workers need, and provenance
    return out


def _describe(value: dict, info, where: str) -> tuple[dict, ModelEntry]:
    value = dict(value)
    if value.pop("kind", "factory") != "factory":
        raise UserError(f"{where}: kind and factory together; allowed: one of the two")
    text = value.pop("factory")
    if info.task == "objective":
        raise UserError(f"{where}.factory does not fit dataset {info.name!r} (its problem defines the model); "
                        "allowed: kind = \"problem\"")
    names, open_kw, _ = usercode.keywords_of(function(text, f"{where}.factory"), skip=2)
    for k in value:
        if not open_kw and k not in names:
            raise UserError(f"{where}: {text} takes no keyword {k!r}{did_you_mean(k, names)}; allowed: "
                            f"{', '.join(names) or 'none besides input_shape and n_outputs'}")
    out = {"kind": "factory", "factory": text, **{k: value[k] for k in sorted(value)}}
    return out, _try(out, info, where)


def entry(model: dict, info) -> ModelEntry:
    """The record of a user's model on a dataset: the one checking made, else made here."""
    key = _key(model, info)
    if key not in _records() or _records()[key] is None:
        _records()[key] = _try(model, info, "model")
    return _records()[key]


def _try(model: dict, info, where: str) -> ModelEntry:
    """Build the user's model once and run it on two samples: an nn.Module with parameters, and an
    output the loss can take ([2, n_outputs]). Then what its record says of it."""
    import torch

    torch.manual_seed(0)
    kw = "".join(f", {k}={v!r}" for k, v in keywords(model).items())
    with usercode.calling(f"{where}: {model['factory']}({tuple(info.input_shape)}, {output_size(info)}{kw})", ALLOWED):
        module = build(model, info)
    if not isinstance(module, torch.nn.Module):
        raise UserError(f"{where}: {model['factory']} returned {type(module).__name__}, not an nn.Module; allowed: "
                        "a function returning an nn.Module")
    if not any(p.requires_grad for p in module.parameters()):
        raise UserError(f"{where}: the model {model['factory']} builds has no trainable parameter; allowed: a module "
                        "with parameters")
    # a language model outputs the next token's logits at every position
    want = (2, *info.input_shape, output_size(info)) if info.task == "language_model" else (2, output_size(info))
    shape = [2, *info.input_shape]
    kind = f"token ids below {info.vocab}" if info.vocab else "inputs"
    with usercode.calling(f"{where}: {model['factory']}'s forward on a batch of shape {shape}",
                          f"a module that takes {kind} of shape [batch, {', '.join(map(str, info.input_shape))}]"):
        with torch.no_grad():
            out = module.eval()(sample_inputs(info, 2))
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != want:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        per = "position" if info.task == "language_model" else "sample"
        raise UserError(f"{where}: {model['factory']} outputs {got} for a batch of 2, not {want}; allowed: one "
                        f"output per {per} of size n_outputs = {want[-1]} ({info.task})")
    import math

    mlp = as_mlp(module)
    reason = _fused_reason(model, info)
    return ModelEntry(
        "factory", sum(p.numel() for p in module.parameters()),
        fused_reason=None if reason is None else f"model {model['factory']}: {reason}",
        max_pools=any(isinstance(m, torch.nn.MaxPool1d | torch.nn.MaxPool2d | torch.nn.MaxPool3d)
                      for m in module.modules()),
        mlp=mlp if mlp is not None and mlp[0][0] == math.prod(info.input_shape) else None,
        reference=model["factory"])


def _fused_reason(model: dict, info) -> str | None:
    """Why the fused engine (torch.func: stack_module_state, functional_call, vmap) cannot train
    this model, or None when it can. Two copies are built and run stacked on a tiny batch in
    training mode, forward and backward: a module that updates buffers in place while training
    (BatchNorm's running statistics) or draws random numbers (dropout, which the reference engine
    draws per model in another order) cannot be stacked exactly."""
    import copy

    import torch
    from torch.func import functional_call, vmap

    torch.manual_seed(0)
    copies = [build(model, info) for _ in range(2)]
    before = {n: b.clone() for n, b in copies[0].named_buffers()}
    copies[0].train()(sample_inputs(info, 3, random=True))
    if any(not torch.equal(before[n], b) for n, b in copies[0].named_buffers()):
        return "it updates buffers in place while training (BatchNorm's running statistics, say)"
    base = copy.deepcopy(copies[1]).to("meta").train()
    params = {n: torch.stack([dict(c.named_parameters())[n].detach() for c in copies]).requires_grad_()
              for n, _ in copies[1].named_parameters()}
    buffers = {n: torch.stack([dict(c.named_buffers())[n] for c in copies]) for n, _ in copies[1].named_buffers()}
    try:
        out = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)))(
            params, buffers, sample_inputs(info, 6, random=True).view(2, 3, *info.input_shape))
        out.sum().backward()
    except Exception as e:  # noqa: BLE001 - whatever vmap cannot batch
        text = usercode.line(e)
        if "random" in text.lower():
            return "it draws random numbers while training (dropout, say), which the reference engine draws per model"
        return f"torch.func cannot batch it ({type(e).__name__}: {text[:120]})"
    return None


def sample_inputs(info, n: int, random: bool = False):
    """A batch of n inputs of the dataset's shape: token ids (zeros, or drawn) for token inputs,
    numbers (zeros, or standard normal) otherwise."""
    import torch

    if info.vocab:
        g = torch.Generator().manual_seed(0)
        shape = (n, *info.input_shape)
        return torch.randint(0, info.vocab, shape, generator=g) if random else torch.zeros(shape, dtype=torch.long)
    return torch.randn(n, *info.input_shape) if random else torch.zeros(n, *info.input_shape)


def references() -> list[str]:
    """The factories this session checked (for the modules workers need, and provenance)."""
    return sorted({*_functions(), *(json.loads(k)[0]["factory"] for k in _records())})
