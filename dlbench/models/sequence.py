"""Sequence models over token inputs (text, modular addition): `model = { kind = "gpt" }` and
`model = { kind = "lstm" }`.

gpt: a decoder-only transformer as GPT-2 lays it out and nanoGPT writes it (model.py): token and
position embeddings, `n_layer` pre-LayerNorm blocks (causal self-attention with `n_head` heads,
then an MLP of `mlp_ratio` × `d_model` with GELU, each added to the residual stream), a final
LayerNorm and a linear head, tied to the token embedding (`tied = true`, GPT-2's choice) or not.
Attention is written out (q·kᵀ/√d, a causal mask, softmax, ·v), the way the fused engine batches
it over trials. Initialization as nanoGPT's: weights N(0, 0.02), each residual projection
N(0, 0.02/√(2·n_layer)), biases 0, LayerNorms 1 and 0. `dropout` 0 by default.

lstm: a character RNN as DeepOBS's tolstoi problem trains one: an embedding of `hidden` numbers,
`layers` stacked LSTM layers of `hidden` units (torch.nn.LSTM), a linear head.

For a language model both give the next token's logits at every position, [batch, context,
vocab]; for a classification over tokens (modular addition) the classes' logits after the last
token, [batch, classes]. Checking is pure Python; building imports torch."""

from __future__ import annotations

import math
from typing import Any

from dlbench.errors import UserError, did_you_mean
from dlbench.models.common import ModelEntry, output_size
from dlbench.models.kind import ModelKind

KEYS: dict[str, dict[str, Any]] = {
    "gpt": {"n_layer": 2, "n_head": 2, "d_model": 64, "mlp_ratio": 4, "tied": True, "dropout": 0.0},
    "lstm": {"layers": 2, "hidden": 128, "dropout": 0.0},
}
WHOLE = {"n_layer", "n_head", "d_model", "mlp_ratio", "layers", "hidden"}


class Sequence(ModelKind):
    names = tuple(KEYS)
    order = 20
    allowed = "gpt, lstm (token inputs: text, modadd)"

    def default(self, info) -> dict | None:
        if not info.vocab:
            return None
        return {"kind": "gpt", **KEYS["gpt"], **({"tied": False} if info.task != "language_model" else {})}

    def check(self, value: dict, info, where: str = "model") -> dict:
        kind = value["kind"]
        if not info.vocab:
            raise UserError(f"{where}.kind = {kind!r} needs token inputs, and dataset {info.name!r} has numeric "
                            "features; allowed: linear, mlp, cnn (or a text or modadd dataset)")
        keys = KEYS[kind]
        for k in value:
            if k != "kind" and k not in keys:
                raise UserError(f"{where}.{k} is not a parameter of model {kind!r}{did_you_mean(k, keys)}; "
                                f"allowed: {', '.join(keys)}")
        out: dict[str, Any] = {"kind": kind}
        for k, default in keys.items():
            v = value.get(k, default)
            if k in WHOLE and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise UserError(f"{where}.{k} = {v!r} is not allowed; allowed: a whole number >= 1")
            if k == "tied" and not isinstance(v, bool):
                raise UserError(f"{where}.tied = {v!r} is not allowed; allowed: true or false")
            if k == "dropout" and (isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v < 1):
                raise UserError(f"{where}.dropout = {v!r} is not allowed; allowed: a number in [0, 1)")
            out[k] = float(v) if k == "dropout" else v
        if kind == "gpt":
            if out["d_model"] % out["n_head"]:
                raise UserError(f"{where}: d_model = {out['d_model']} is not a multiple of n_head = {out['n_head']}; "
                                "allowed: d_model divisible by n_head")
            if out["tied"] and info.task != "language_model":
                raise UserError(f"{where}.tied = true needs a language model (the head predicts tokens), and "
                                f"{info.name!r} predicts {output_size(info)} classes; allowed: tied = false")
        return out

    def entry(self, model: dict, info) -> ModelEntry:
        V, T, n_out = info.vocab, info.input_shape[0], output_size(info)
        if model["kind"] == "gpt":
            D, L, r = model["d_model"], model["n_layer"], model["mlp_ratio"]
            block = 2 * D + (3 * D * D + 3 * D) + (D * D + D) + 2 * D + (D * r * D + r * D) + (r * D * D + D)
            params = V * D + T * D + L * block + 2 * D + (0 if model["tied"] else D * n_out)
        else:
            H, L = model["hidden"], model["layers"]
            params = V * H + L * (4 * H * (H + H) + 8 * H) + H * n_out + n_out
        reason = None
        if model["dropout"]:
            reason = (f"model {model['kind']} with dropout {model['dropout']:g}: dropout draws random numbers, which "
                      "the reference engine draws per model in its own order; it trains there")
        return ModelEntry(model["kind"], params, fused_reason=reason, stacked=model["kind"],
                          slower_fused_on_cpu=_slower_on_cpu(model))

    def build(self, model: dict, info):
        n_out, last_only = output_size(info), info.task != "language_model"
        if model["kind"] == "gpt":
            return _gpt_class()(info.vocab, info.input_shape[0], n_out, model["n_layer"], model["n_head"],
                                model["d_model"], model["mlp_ratio"], model["tied"], model["dropout"], last_only)
        return _lstm_class()(info.vocab, n_out, model["layers"], model["hidden"], model["dropout"], last_only)


# measured on this project's 2-core CPU, 8 trials, one thread (benchmarks/sequence_models.py,
# docs/performance.md): gpt at d_model 32 fused 1.68× one at a time, at nanoGPT's d_model 128 0.92×;
# lstm 0.62× (hidden 64) and 0.36× (128): torch.nn.LSTM's kernel steps a sequence in C++, the stacked
# form in a Python loop of batched matrix products
GPT_FUSED_UP_TO = 64  # d_model


def _slower_on_cpu(model: dict) -> str | None:
    if model["kind"] == "lstm":
        return ("on the CPU, torch.nn.LSTM's kernel measures faster than the stacked LSTM's step loop (0.36-0.62×, "
                "benchmarks/sequence_models.py)")
    if model["d_model"] > GPT_FUSED_UP_TO:
        return (f"on the CPU, a gpt of d_model {model['d_model']} measures slower stacked than one at a time (0.92× at "
                f"128; 1.68× at 32: benchmarks/sequence_models.py)")
    return None


def _gpt_class():
    import torch
    from torch import nn
    from torch.nn import functional as F  # noqa: N812

    class CausalSelfAttention(nn.Module):
        def __init__(self, d_model: int, n_head: int, dropout: float):
            super().__init__()
            self.n_head = n_head
            self.qkv = nn.Linear(d_model, 3 * d_model)  # queries, keys and values of every head at once
            self.proj = nn.Linear(d_model, d_model)  # the residual projection
            self.drop = nn.Dropout(dropout)

        def forward(self, x):
            B, T, D = x.shape
            H = self.n_head
            q, k, v = self.qkv(x).split(D, dim=2)
            q, k, v = (z.view(B, T, H, D // H).transpose(1, 2) for z in (q, k, v))  # [B, H, T, D/H]
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D // H))
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)  # a position sees itself and before
            att = self.drop(F.softmax(att.masked_fill(mask, float("-inf")), dim=-1))
            y = (att @ v).transpose(1, 2).reshape(B, T, D)
            return self.drop(self.proj(y))

    class Block(nn.Module):
        def __init__(self, d_model: int, n_head: int, mlp_ratio: int, dropout: float):
            super().__init__()
            self.ln1 = nn.LayerNorm(d_model)
            self.attn = CausalSelfAttention(d_model, n_head, dropout)
            self.ln2 = nn.LayerNorm(d_model)
            self.fc = nn.Linear(d_model, mlp_ratio * d_model)
            self.fc_proj = nn.Linear(mlp_ratio * d_model, d_model)  # the residual projection
            self.drop = nn.Dropout(dropout)

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.drop(self.fc_proj(F.gelu(self.fc(self.ln2(x)))))

    class GPT(nn.Module):
        def __init__(self, vocab, context, n_out, n_layer, n_head, d_model, mlp_ratio, tied, dropout, last_only):
            super().__init__()
            self.last_only = last_only
            self.tok = nn.Embedding(vocab, d_model)
            self.pos = nn.Embedding(context, d_model)
            self.drop = nn.Dropout(dropout)
            self.blocks = nn.ModuleList(Block(d_model, n_head, mlp_ratio, dropout) for _ in range(n_layer))
            self.ln_f = nn.LayerNorm(d_model)
            self.head = nn.Linear(d_model, n_out, bias=False)
            if tied:
                self.head.weight = self.tok.weight  # one matrix: named once, as tok.weight
            for name, p in self.named_parameters():
                if name.endswith("bias"):
                    nn.init.zeros_(p)
                elif name.startswith("blocks") and ".ln" in name:
                    nn.init.ones_(p)
                elif name.endswith(("attn.proj.weight", "fc_proj.weight")):
                    nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * n_layer))
                elif name != "ln_f.weight":
                    nn.init.normal_(p, mean=0.0, std=0.02)

        def forward(self, idx):
            T = idx.shape[1]
            x = self.drop(self.tok(idx) + self.pos(torch.arange(T, device=idx.device)))
            for block in self.blocks:
                x = block(x)
            x = self.ln_f(x)
            return self.head(x[:, -1] if self.last_only else x)

    return GPT


def _lstm_class():
    from torch import nn

    class CharLSTM(nn.Module):
        def __init__(self, vocab, n_out, layers, hidden, dropout, last_only):
            super().__init__()
            self.last_only = last_only
            self.embed = nn.Embedding(vocab, hidden)
            self.lstm = nn.LSTM(hidden, hidden, num_layers=layers, batch_first=True, dropout=dropout)
            self.head = nn.Linear(hidden, n_out)

        def forward(self, idx):
            h, _ = self.lstm(self.embed(idx))
            return self.head(h[:, -1] if self.last_only else h)

    return CharLSTM
