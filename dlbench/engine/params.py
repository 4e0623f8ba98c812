"""K copies of a module's parameters as one flat `theta` [K, P] (and its gradient `grad` [K, P]),
each parameter a [K, *shape] leaf view into both, named as the reference module names them: what the
generic stacked module (engine/stacked.py) and the hand-stacked sequence models (engine/sequence.py)
share, and what the hand-written updates and any torch.optim optimizer (engine/generic.py) work on."""

from __future__ import annotations

import torch

from dlbench import models
from dlbench.engine.common import init_seed
from dlbench.models.common import roles_of


class StackedParams:
    """K copies of a module's parameters as [K, *shape] leaf views of one flat `theta` [K, P]
    (gradients: views of `grad`), named as the reference module names them."""

    def __init__(self, trials: list[dict], info, dtype, device):
        self._from_modules(build_each(trials, info, dtype, device))

    def _from_modules(self, built: list[torch.nn.Module]) -> None:
        """The K modules' parameters copied into theta, in the first one's parameter order."""
        self.roles = roles_of(built[0])
        named = list(built[0].named_parameters())
        self.shapes = [(n, p.shape) for n, p in named]
        P = sum(p.numel() for _, p in named)
        theta = torch.zeros(len(built), P, dtype=named[0][1].dtype, device=named[0][1].device)
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
        pass  # no module here has train and eval modes (a nonzero dropout trains on the reference engine)

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


def build_each(trials: list[dict], info, dtype, device) -> list[torch.nn.Module]:
    """Each trial's reference module, built under its seed: the stacked copies start where the
    reference engine's do."""
    built = []
    for t in trials:
        init_seed(t["seed"])
        built.append(models.build(t["model"], info).to(dtype).to(device))
    return built
