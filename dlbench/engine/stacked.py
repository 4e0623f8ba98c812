"""Stacked models: K trials' parameters as rows of one flat leaf tensor `theta` [K, P] (their
gradients rows of `grad`), trained as one batched computation. StackedMLP is hand-written (batched
matmuls); StackedModule batches any nn.Module with torch.func. Each copy is built by the model's
own builder under the trial's seed, as in the reference engine, so the two can be compared trial
by trial."""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812

from dlbench import models
from dlbench.engine.params import StackedParams, build_each

EVAL_CELLS_CPU = 1 << 19  # floats in evaluation's widest activation of a chunk, on the CPU
ACT = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "gelu": F.gelu, "none": None}


class StackedMLP:
    """K MLPs (or linear models). Row k of `theta` [K, P] holds trial k's parameters and row k
    of `grad` [K, P] its gradient; each layer's weight [K, in, out] and bias [K, 1, out] is a
    leaf view into both, so autograd accumulates straight into the flat gradient and each
    optimizer updates its rows of `theta` in a few whole-tensor ops. Hand-written: on the CPU it
    measures faster than the torch.func path (StackedModule) for these models
    (benchmarks/fused_vs_loops.py --generic-models)."""

    def __init__(self, trials: list[dict], info, dtype, device, shape: tuple[tuple[int, ...], str]):
        # the layer widths and activation of the model (its record's `mlp`)
        self.sizes, activation = list(shape[0]), shape[1]
        self.act = ACT[activation]
        self.K = len(trials)
        rows = []
        for ref in build_each(trials, info, dtype, device):  # as the reference engine builds them
            linears = [m for m in ref if isinstance(m, torch.nn.Linear)]
            rows.append(torch.cat([torch.cat([lin.weight.detach().T.reshape(-1), lin.bias.detach()])
                                   for lin in linears]))
        self._hold(torch.stack(rows))
        # each parameter's role (models.common.roles_of): the last layer's weight is the head
        n = len(self.sizes) - 1
        self.roles = [role for i in range(n) for role in ("head" if i == n - 1 else "hidden", "vector")]

    def _hold(self, theta: torch.Tensor) -> None:
        """Make `theta` [K, P] the parameters: a zero gradient beside it, and each layer's weight and
        bias leaf views into both."""
        self.theta, self.K = theta, len(theta)
        self.grad = torch.zeros_like(self.theta)
        self.params: list[tuple[torch.Tensor, torch.Tensor]] = []
        off = 0
        for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            w = self.theta[:, off:off + a * b].view(-1, a, b).requires_grad_(True)
            w.grad = self.grad[:, off:off + a * b].view(-1, a, b)
            bias = self.theta[:, off + a * b:off + a * b + b].view(-1, 1, b).requires_grad_(True)
            bias.grad = self.grad[:, off + a * b:off + a * b + b].view(-1, 1, b)
            self.params.append((w, bias))
            off += a * b + b
        # evaluation's chunk of samples: on the CPU its widest activation [K, chunk, width] stays
        # about 2 MB, in cache (the whole split at once allocates and faults in fresh pages for every
        # layer: measured 13.0 ms against 7.1 ms for digits' training split, K = 8); elsewhere large.
        # A sample's numbers do not depend on the chunk (tests/test_fused.py)
        cells = EVAL_CELLS_CPU if theta.device.type == "cpu" else 1 << 24
        self.eval_chunk = max(64, cells // max(1, self.K * max(self.sizes)))

    def keep_rows(self, rows: list[int]) -> None:
        """Keep only these trials' rows (the others stopped): a smaller stacked model, the kept rows'
        parameters as they were."""
        self._hold(self.theta.detach()[rows].clone())

    def forward(self, x, per_trial: bool):
        """x: [K, B, ...] (one batch per trial) or [B, ...] (the same inputs for every trial).
        Without autograd (evaluation) ReLU works in place: the same numbers, one allocation less."""
        h = x.flatten(2) if per_trial else x.flatten(1).expand(self.K, -1, -1)
        last = len(self.params) - 1
        in_place = self.act is torch.relu and not torch.is_grad_enabled()
        for i, (w, b) in enumerate(self.params):
            h = torch.baddbmm(b, h, w)
            if i < last and self.act is not None:
                h = h.relu_() if in_place else self.act(h)
        return h

    def train(self, mode: bool = True) -> None:
        pass  # no layer of an MLP behaves differently in training

    def matrix_mask(self) -> torch.Tensor:
        """[P] True where a column of theta belongs to a parameter of two or more dimensions (the
        weights; not the biases): where weight decay on matrices only applies."""
        return torch.cat([torch.full((a * b + b,), True, device=self.theta.device).index_fill_(
            0, torch.arange(a * b, a * b + b, device=self.theta.device), False)
            for a, b in zip(self.sizes[:-1], self.sizes[1:], strict=True)])

    def leaves(self, a: int, b: int) -> list[torch.Tensor]:
        """Leaf tensors over rows a..b of theta, with their gradients as views of `grad`, in the
        reference module's parameter order (weight, bias per layer). One row: each the shape of
        the reference parameter (weight [out, in], a transposed view); several: stacked."""
        out, off = [], 0
        for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:], strict=True):
            for size, shape in ((n_in * n_out, (n_in, n_out)), (n_out, (n_out,))):
                leaf = self.theta.detach()[a:b, off:off + size]
                g = self.grad[a:b, off:off + size]
                if b - a == 1:
                    leaf, g = leaf[0].view(shape), g[0].view(shape)
                    if len(shape) == 2:
                        leaf, g = leaf.t(), g.t()
                leaf.requires_grad_(True)
                leaf.grad = g
                out.append(leaf)
                off += size
        return out


class StackedModule(StackedParams):
    """K copies of any nn.Module the vmap of torch.func can batch (stack_module_state's idea,
    functional_call and vmap), their parameters as views into one flat `theta` [K, P] so that the
    built-in update rules and any torch.optim optimizer work on them as on StackedMLP. Each copy
    is built by the trial's model builder under the trial's seed, as in the reference engine."""

    def __init__(self, trials: list[dict], info, dtype, device):
        import copy

        from torch.func import functional_call, vmap

        built = build_each(trials, info, dtype, device)
        self._from_modules(built)
        self.buffers = {name: torch.stack([dict(m.named_buffers())[name] for m in built])
                        for name, _ in built[0].named_buffers()}
        self.base = copy.deepcopy(built[0]).to("meta")

        def call(p, b, x):
            return functional_call(self.base, (p, b), (x,))

        self.per_trial = vmap(call, in_dims=(0, 0, 0))
        self.shared = vmap(call, in_dims=(0, 0, None))
        self.eval_chunk = max(256, (1 << 22) // self.K)

    def keep_rows(self, rows: list[int]) -> None:
        """Keep only these trials' rows (the others stopped): their parameters and buffers as they were."""
        super().keep_rows(rows)
        self.buffers = {name: b[rows] for name, b in self.buffers.items()}
        self.eval_chunk = max(256, (1 << 22) // self.K)

    def train(self, mode: bool = True) -> None:
        self.base.train(mode)

    def forward(self, x, per_trial: bool):
        """x: [K, B, *input] (one batch per trial) or [B, *input] (the same inputs for all)."""
        return (self.per_trial if per_trial else self.shared)(self.p, self.buffers, x)


def stacked_model(trials: list[dict], info, dtype, device):
    """The stacked form of the unit's model: the hand-written StackedMLP for a model that is an MLP
    (its record says: linear, mlp, or a user's module that is one in all but name; on the CPU it
    measures faster, benchmarks/fused_vs_loops.py --generic-models), the hand-written sequence
    models where the record names one (engine/sequence.py: gpt, lstm), torch.func (StackedModule)
    for every other model."""
    entry = models.entry(trials[0]["model"], info)
    if entry.mlp is not None:
        return StackedMLP(trials, info, dtype, device, entry.mlp)
    if entry.stacked:
        from dlbench.engine.sequence import StackedGPT, StackedLSTM

        return {"gpt": StackedGPT, "lstm": StackedLSTM}[entry.stacked](trials, info, dtype, device)
    return StackedModule(trials, info, dtype, device)
