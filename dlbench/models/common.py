"""What every model kind shares: the record (ModelEntry), the output size a dataset's loss needs,
activations, and recognising a module that is an MLP in all but name."""

from __future__ import annotations

from dataclasses import dataclass

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "none")


@dataclass(frozen=True)
class ModelEntry:
    """A model table's catalogue record on one dataset: what the engines and the planner need to
    know of it, whoever wrote it."""

    kind: str  # the table's kind: linear, mlp, cnn, problem, factory
    parameters: int  # how many trainable numbers it has on this dataset
    fused_reason: str | None = None  # why the fused engine cannot train it, or None when it can
    max_pools: bool = False  # max pooling: vmap's batching rule for it measures slower on the CPU
    # (layer widths, activation) when it is an MLP: the hand-written stacked MLP trains it
    mlp: tuple[tuple[int, ...], str] | None = None
    reference: str | None = None  # the import path of a user's factory
    stacked: str = ""  # its hand-written stacked form for the fused engine ("gpt", "lstm"), if any
    # why the fused engine measures slower than one trial at a time on a CPU, where it does (then
    # --engine auto trains it on the reference engine there; benchmarks/sequence_models.py)
    slower_fused_on_cpu: str | None = None


def output_size(info) -> int:
    """What a model outputs per sample (per position for a language model) for a dataset's loss: a
    logit per class or per token, else one number."""
    return info.n_classes if info.task in ("multiclass", "language_model") else 1


def activation(name: str):
    from torch import nn

    return {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU, "none": nn.Identity}[name]()


def as_mlp(module) -> tuple[tuple[int, ...], str] | None:
    """(layer widths, activation) when a module is an MLP in all but name: an nn.Sequential of an
    optional Flatten, then Linear layers with biases and one activation between them (ReLU, Tanh,
    Sigmoid, exact GELU); else None. It computes what a built-in mlp of those widths computes."""
    import torch

    names_of = {torch.nn.ReLU: "relu", torch.nn.Tanh: "tanh", torch.nn.Sigmoid: "sigmoid", torch.nn.Identity: "none"}
    if not isinstance(module, torch.nn.Sequential):
        return None
    layers = list(module)
    if layers and isinstance(layers[0], torch.nn.Flatten) and (layers[0].start_dim, layers[0].end_dim) == (1, -1):
        layers = layers[1:]
    linears, acts = layers[0::2], layers[1::2]
    if not linears or len(linears) != len(acts) + 1:
        return None
    if not all(type(m) is torch.nn.Linear and m.bias is not None for m in linears):
        return None
    names = set()
    for a in acts:
        if type(a) is torch.nn.GELU and a.approximate == "none":
            names.add("gelu")
        elif type(a) in names_of:
            names.add(names_of[type(a)])
        else:
            return None
    if len(names) > 1:
        return None
    if any(a.out_features != b.in_features for a, b in zip(linears[:-1], linears[1:], strict=True)):
        return None
    return (linears[0].in_features, *(m.out_features for m in linears)), (names.pop() if names else "none")


def roles_of(module) -> list[str]:
    """Each parameter's role in a module, in named_parameters order: "embedding" (an nn.Embedding's
    table), "head" (the weight of its last nn.Linear: the output layer), "hidden" (any other of two
    or more dimensions), "vector" (biases, norms). What a split gives its class with on = "hidden"
    (modded-nanogpt's Muon: the hidden matrices only), the same on both engines."""
    import torch

    owner = {}
    last_linear = None
    for name, m in module.named_modules():
        if isinstance(m, torch.nn.Linear):
            last_linear = name
        for pname, p in m.named_parameters(recurse=False):
            owner.setdefault(id(p), (name, pname, m))
    out = []
    for _, p in module.named_parameters():
        mname, pname, m = owner[id(p)]
        if isinstance(m, torch.nn.Embedding):
            out.append("embedding")
        elif mname == last_linear and pname == "weight":
            out.append("head")
        else:
            out.append("hidden" if p.dim() >= 2 else "vector")
    return out
