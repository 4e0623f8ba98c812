"""The models that ship with dlbench: `model = { kind = "mlp", hidden = [128, 128], activation = "relu" }`.

- linear: one affine layer (linear regression, logistic/softmax regression).
- mlp: hidden sizes and an activation (relu, tanh, sigmoid, gelu, none). With "none" the whole
  stack is still one linear map.
- cnn: a small conv net: 2-D for image sets, 1-D for mnist1d; `channels` per conv block.
- problem: the DeepOBS problems train their own parameter vector.

Checking is pure Python; building imports torch."""

from __future__ import annotations

import math
from typing import Any

from dlbench.errors import UserError, did_you_mean
from dlbench.models.common import ACTIVATIONS, ModelEntry, activation, output_size
from dlbench.models.kind import ModelKind

KEYS: dict[str, dict[str, Any]] = {
    "linear": {},
    "mlp": {"hidden": [128], "activation": "relu"},
    "cnn": {"channels": [16, 32], "hidden": 64, "activation": "relu"},
    "problem": {},
}


class Builtin(ModelKind):
    names = tuple(KEYS)
    order = 10
    allowed = "linear, mlp, cnn, problem"

    def default(self, info) -> dict | None:
        if info.vocab:
            return None  # token inputs: a sequence model's (models/sequence.py)
        if info.task == "objective":
            return {"kind": "problem"}
        return {"kind": "mlp", "hidden": [128], "activation": "relu"}

    def check(self, value: dict, info, where: str = "model") -> dict:
        return check(value, info, where)

    def entry(self, model: dict, info) -> ModelEntry:
        return entry(model, info)

    def build(self, model: dict, info):
        return build(model, info)


def check(value: dict, info, where: str = "model") -> dict:
    """Canonical table of a built-in kind for dataset `info`, or a UserError naming what is wrong."""
    kind = value["kind"]
    if info.vocab:
        raise UserError(f"{where}.kind = {kind!r} needs numeric features, and dataset {info.name!r} has token "
                        "inputs; allowed: gpt, lstm")
    if (kind == "problem") != (info.task == "objective"):
        allowed = "problem" if info.task == "objective" else "linear, mlp, cnn"
        raise UserError(f"{where}.kind = {kind!r} does not fit dataset {info.name!r}; allowed: {allowed}")
    if kind == "cnn" and not (info.image or info.name == "mnist1d"):
        raise UserError(
            f"{where}.kind = 'cnn' needs an image dataset or mnist1d, not {info.name!r}; allowed: linear, mlp"
        )
    keys = KEYS[kind]
    for k in value:
        if k != "kind" and k not in keys:
            raise UserError(
                f"{where}.{k} is not a parameter of model {kind!r}{did_you_mean(k, keys)}; "
                f"allowed: {', '.join(keys) or 'none'}"
            )
    out: dict[str, Any] = {"kind": kind}
    for k, default in keys.items():
        v = value.get(k, default)
        if k == "hidden" and kind == "mlp" or k == "channels":
            if not isinstance(v, list) or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1
                                                  for h in v):
                raise UserError(f"{where}.{k} = {v!r} is not allowed; allowed: a list of whole numbers >= 1")
            if k == "channels" and not v:
                raise UserError(f"{where}.channels = [] is not allowed; allowed: at least one conv block")
        elif k == "hidden":
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise UserError(f"{where}.hidden = {v!r} is not allowed; allowed: a whole number >= 1")
        elif k == "activation" and (not isinstance(v, str) or v not in ACTIVATIONS):
            raise UserError(
                f"{where}.activation = {v!r} is unknown{did_you_mean(v, ACTIVATIONS)}; "
                f"allowed: {', '.join(ACTIVATIONS)}"
            )
        out[k] = v
    return out


def layer_sizes(model: dict, info) -> list[int]:
    """Widths of a linear/mlp model from input to output, e.g. [64, 128, 128, 10]."""
    inputs = math.prod(info.input_shape)
    hidden = model.get("hidden", []) if model["kind"] == "mlp" else []
    return [inputs, *hidden, output_size(info)]


def _cnn_shape(model: dict, info) -> tuple[bool, int, list[int]]:
    one_d = len(info.input_shape) == 1
    c_in = 1 if one_d else info.input_shape[0]
    spatial = list(info.input_shape if one_d else info.input_shape[1:])
    return one_d, c_in, spatial


def entry(model: dict, info) -> ModelEntry:
    """The record of a built-in model table on a dataset, in closed form (no torch)."""
    kind = model["kind"]
    if kind in ("linear", "mlp"):
        sizes = layer_sizes(model, info)
        params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        return ModelEntry(kind, params, mlp=(tuple(sizes), model.get("activation", "none")))
    if kind == "cnn":
        one_d, c_in, spatial = _cnn_shape(model, info)
        params, k = 0, 3 if one_d else 9
        for c in model["channels"]:
            params += c_in * c * k + c
            c_in, spatial = c, [s // 2 for s in spatial]
        flat = c_in * math.prod(spatial)
        params += flat * model["hidden"] + model["hidden"] + model["hidden"] * output_size(info) + output_size(info)
        return ModelEntry(kind, params, max_pools=True)
    return ModelEntry(kind, math.prod(info.input_shape),
                      fused_reason=f"model kind {kind!r} runs on the reference engine")


def build(model: dict, info):
    """The plain nn.Module for a trial; call under the trial's seed (torch.manual_seed)."""
    import torch
    from torch import nn

    kind = model["kind"]
    if kind == "problem":
        from dlbench.data import deepobs

        return ProblemModel(info.name, torch.as_tensor(deepobs.start(info.name)))
    if kind in ("linear", "mlp"):
        sizes = layer_sizes(model, info)
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2 and model["activation"] != "none":
                layers.append(activation(model["activation"]))
        return nn.Sequential(*layers)
    one_d, c_in, spatial = _cnn_shape(model, info)
    conv, pool = (nn.Conv1d, nn.MaxPool1d) if one_d else (nn.Conv2d, nn.MaxPool2d)
    layers = [nn.Unflatten(1, (1, info.input_shape[0]))] if one_d else []
    for c in model["channels"]:
        layers += [conv(c_in, c, 3, padding=1), activation(model["activation"]), pool(2)]
        c_in = c
        spatial = [s // 2 for s in spatial]
    flat = c_in * math.prod(spatial)
    layers += [nn.Flatten(), nn.Linear(flat, model["hidden"]), activation(model["activation"]),
               nn.Linear(model["hidden"], output_size(info))]
    return nn.Sequential(*layers)


def _problem_model_class():
    import torch
    from torch import nn

    class _ProblemModel(nn.Module):
        """The parameters of a DeepOBS problem; forward returns the per-sample loss."""

        def __init__(self, name: str, start: torch.Tensor):
            super().__init__()
            self.name = name
            self.theta = nn.Parameter(start.clone())

        def forward(self, noise: torch.Tensor) -> torch.Tensor:
            from dlbench.data import deepobs

            return deepobs.objective(self.name, self.theta, noise)

    return _ProblemModel


def ProblemModel(name, start):  # noqa: N802 - reads as a class at the call site
    return _problem_model_class()(name, start)
