"""The sequence models of models/sequence.py stacked by hand: K trials' GPTs or LSTMs as one
batched computation, weights with a leading trial dimension, every matrix product one baddbmm or
bmm over the trials, attention written out with the trials and heads folded into its batch.

torch.func's vmap cannot do this well on a CPU: scaled_dot_product_attention has no batching rule
there (torch loops over the trials and warns), and vmap over attention written out measured 0.8×
a plain loop over 8 models. Here each op runs once for all K trials.

Each trial's parameters are built by the reference module under its seed (so both engines start
equal) and held, in the reference module's parameter order and shapes, as rows of one flat
`theta` [K, P] with its gradient rows in `grad` [K, P] (engine/params.py), which the hand-written
updates and any torch.optim optimizer (engine/generic.py) work on. tests/test_sequence.py holds
both forms equal to the reference engine trial by trial (float64, 1e-9)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812

from dlbench.engine.params import StackedParams


class _SequenceParams(StackedParams):
    """StackedParams with what the hand-stacked sequence models share: token inputs and embeddings."""

    @staticmethod
    def _tokens(x: torch.Tensor, K: int, per_trial: bool) -> torch.Tensor:
        """Token ids as [K, B, T]: one batch per trial, or the same batch for every trial."""
        return x if per_trial else x.unsqueeze(0).expand(K, *x.shape)

    def _embed(self, table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Each trial's rows of its own table: table [K, V, D], idx [K, B, T] -> [K, B, T, D]."""
        K, B, T = idx.shape
        flat = table.reshape(K * table.shape[1], table.shape[2])
        offset = (torch.arange(K, device=idx.device) * table.shape[1]).view(K, 1, 1)
        return F.embedding(idx + offset, flat)


def _linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """nn.Linear for K trials at once: x [K, ..., in], weight [K, out, in], bias [K, out]."""
    shape = x.shape
    flat = x.reshape(shape[0], -1, shape[-1])
    if bias is None:
        out = torch.bmm(flat, weight.transpose(1, 2))
    else:
        out = torch.baddbmm(bias.unsqueeze(1), flat, weight.transpose(1, 2))
    return out.view(*shape[:-1], weight.shape[1])


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """nn.LayerNorm over the last dimension with each trial's own weight and bias [K, D]."""
    view = (x.shape[0],) + (1,) * (x.dim() - 2) + (x.shape[-1],)
    return F.layer_norm(x, x.shape[-1:]) * weight.view(view) + bias.view(view)


class StackedGPT(_SequenceParams):
    """K of models/sequence.py's GPT: the same operations in the same order, over [K, B, T, D]."""

    def __init__(self, trials: list[dict], info, dtype, device):
        super().__init__(trials, info, dtype, device)
        m = trials[0]["model"]
        self.n_layer, self.n_head, self.tied = m["n_layer"], m["n_head"], m["tied"]
        self.last_only = info.task != "language_model"
        self.eval_chunk = 1 << 30  # engine.common.eval_chunk sizes a sequence model's chunks

    def forward(self, x: torch.Tensor, per_trial: bool) -> torch.Tensor:
        p, K = self.p, self.K
        idx = self._tokens(x, K, per_trial)
        _, B, T = idx.shape
        pos = p["pos.weight"][:, :T].unsqueeze(1)  # [K, 1, T, D]
        h = self._embed(p["tok.weight"], idx) + pos
        D = h.shape[-1]
        H = self.n_head
        mask = torch.ones(T, T, dtype=torch.bool, device=h.device).triu(1)
        for i in range(self.n_layer):
            b = f"blocks.{i}."
            a = _layer_norm(h, p[b + "ln1.weight"], p[b + "ln1.bias"])
            q, k, v = _linear(a, p[b + "attn.qkv.weight"], p[b + "attn.qkv.bias"]).split(D, dim=3)
            # [K, B, T, D] -> [K·B, H, T, D/H]: the trials and the batch are one batch dimension
            q, k, v = (z.reshape(K * B, T, H, D // H).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D // H))
            att = F.softmax(att.masked_fill(mask, float("-inf")), dim=-1)
            y = (att @ v).transpose(1, 2).reshape(K, B, T, D)
            h = h + _linear(y, p[b + "attn.proj.weight"], p[b + "attn.proj.bias"])
            a = _layer_norm(h, p[b + "ln2.weight"], p[b + "ln2.bias"])
            a = F.gelu(_linear(a, p[b + "fc.weight"], p[b + "fc.bias"]))
            h = h + _linear(a, p[b + "fc_proj.weight"], p[b + "fc_proj.bias"])
        h = _layer_norm(h, p["ln_f.weight"], p["ln_f.bias"])
        if self.last_only:
            h = h[:, :, -1]
        return _linear(h, p["tok.weight"] if self.tied else p["head.weight"], None)


class StackedLSTM(_SequenceParams):
    """K of models/sequence.py's CharLSTM: torch.nn.LSTM's equations (gates i, f, g, o), each step
    one batched matrix product over the trials; the inputs' part of every step at once."""

    def __init__(self, trials: list[dict], info, dtype, device):
        super().__init__(trials, info, dtype, device)
        self.layers = trials[0]["model"]["layers"]
        self.last_only = info.task != "language_model"
        self.eval_chunk = 1 << 30

    def forward(self, x: torch.Tensor, per_trial: bool) -> torch.Tensor:
        p, K = self.p, self.K
        idx = self._tokens(x, K, per_trial)
        _, B, T = idx.shape
        seq = self._embed(p["embed.weight"], idx)  # [K, B, T, H]
        for layer in range(self.layers):
            w_ih, w_hh = p[f"lstm.weight_ih_l{layer}"], p[f"lstm.weight_hh_l{layer}"]
            b_ih, b_hh = p[f"lstm.bias_ih_l{layer}"], p[f"lstm.bias_hh_l{layer}"]
            Hd = w_hh.shape[2]
            pre = _linear(seq, w_ih, b_ih)  # [K, B, T, 4H]: every step's input part at once
            h = seq.new_zeros(K, B, Hd)
            c = seq.new_zeros(K, B, Hd)
            out = []
            for t in range(T):
                gates = pre[:, :, t] + torch.baddbmm(b_hh.unsqueeze(1), h, w_hh.transpose(1, 2))
                i, f, g, o = gates.chunk(4, dim=2)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                out.append(h)
            seq = torch.stack(out, dim=2)  # [K, B, T, H]
        if self.last_only:
            seq = seq[:, :, -1]
        return _linear(seq, p["head.weight"], p["head.bias"])
