"""The sequence models of models/sequence.py stacked by hand: K trials' GPTs or LSTMs as one
batched computation, weights with a leading trial dimension, every matrix product one baddbmm or
bmm over the trials, attention written out with the trials and heads folded into its batch.

torch.func's vmap cannot do this well on a CPU: scaled_dot_product_attention has no batching rule
there (torch loops over the trials and warns), and vmap over attention written out measured 0.8×
a plain loop over 8 models. Here each op runs once for all K trials.

Each trial's parameters are built by the reference module under its seed (so both engines start
equal) and held, in the reference module's parameter order and shapes, as rows of one flat
`theta` [K, P] with its gradient rows in `grad` [K, P] (StackedParams), which the hand-written
updates and any torch.optim optimizer (engine/generic.py) work on. tests/test_sequence.py holds
both forms equal to the reference engine trial by trial (float64, 1e-9)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812

from dlbench import models
from dlbench.engine.common import init_seed
from dlbench.models.common import roles_of


class StackedParams:
    """K copies of a module's parameters as [K, *shape] leaf views of one flat `theta` [K, P]
    (gradients: views of `grad`), named as the reference module names them."""

    def __init__(self, trials: list[dict], info, dtype, device):
        self.K = len(trials)
        built = []
        for t in trials:
            init_seed(t["seed"])  # the reference builder under the same seed: identical init
            built.append(models.build(t["model"], info).to(dtype).to(device))
        self.roles = roles_of(built[0])
        named = list(built[0].named_parameters())
        self.shapes = [(n, p.shape) for n, p in named]
        P = sum(p.numel() for _, p in named)
        theta = torch.zeros(self.K, P, dtype=dtype, device=device)
        off = 0
        for name, shape in self.shapes:
            n = shape.numel()
            theta[:, off:off + n] = torch.stack([dict(m.named_parameters())[name].detach().reshape(-1) for m in built])
            off += n
        self._hold(theta)

    def _hold(self, theta: torch.Tensor) -> None:
        self.theta, self.K = theta, len(theta)
        self.grad = torch.zeros_like(theta)
        self.p: dict[str, torch.Tensor] = {}
        off = 0
        for name, shape in self.shapes:
            n = shape.numel()
            leaf = self.theta[:, off:off + n].view(self.K, *shape).requires_grad_(True)
            leaf.grad = self.grad[:, off:off + n].view(self.K, *shape)
            self.p[name] = leaf
            off += n

    def keep_rows(self, rows: list[int]) -> None:
        """Keep only these trials' rows (the others stopped), their parameters as they were."""
        self._hold(self.theta.detach()[rows].clone())

    def train(self, mode: bool = True) -> None:
        pass  # dropout 0 (a nonzero dropout trains on the reference engine): no mode changes anything

    def matrix_mask(self) -> torch.Tensor:
        """[P] True where a column of theta belongs to a parameter of two or more dimensions."""
        return torch.cat([torch.full((shape.numel(),), len(shape) >= 2, device=self.theta.device)
                          for _, shape in self.shapes])

    def leaves(self, a: int, b: int) -> list[torch.Tensor]:
        """Leaf tensors over rows a..b of theta in the reference module's parameter order and shapes
        (one row: each exactly the reference parameter's shape; several: stacked), gradients as views."""
        out, off = [], 0
        for _, shape in self.shapes:
            n = shape.numel()
            leaf, g = self.theta.detach()[a:b, off:off + n], self.grad[a:b, off:off + n]
            if b - a == 1:
                leaf, g = leaf[0].view(shape), g[0].view(shape)
            else:
                leaf, g = leaf.view(b - a, *shape), g.view(b - a, *shape)
            leaf.requires_grad_(True)
            leaf.grad = g
            out.append(leaf)
            off += n
        return out

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


class StackedGPT(StackedParams):
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


class StackedLSTM(StackedParams):
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
