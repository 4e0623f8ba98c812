"""Models of your own, for `model = { factory = "./my_model.py:residual_mlp", width = 64 }`.

A factory takes the dataset's input shape and the number of outputs its loss needs (classes, 1
for a binary target, the target's width for regression), and any keywords of your own, and
returns a plain nn.Module. dlbench builds it under each trial's seed and trains many trials at
once through torch.func (stack_module_state, functional_call, vmap).
"""

import math

import torch
from torch import nn


class ResidualMLP(nn.Module):
    """x -> relu(W_in x) -> h + block(h) (twice) -> W_out: a forward of its own."""

    def __init__(self, n_in: int, n_out: int, width: int, blocks: int):
        super().__init__()
        self.inp = nn.Linear(n_in, width)
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width))
                                    for _ in range(blocks))
        self.out = nn.Linear(width, n_out)

    def forward(self, x):
        h = torch.relu(self.inp(x.flatten(1)))
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


def residual_mlp(input_shape, n_outputs, width=64, blocks=2):
    return ResidualMLP(math.prod(input_shape), n_outputs, width, blocks)


def small_cnn1d(input_shape, n_outputs, channels=8):
    """A 1-D convolutional net for sequences (MNIST-1D), strided instead of pooled: max pooling
    under vmap is slow on the CPU, where dlbench would run it on the reference engine."""
    (length,) = input_shape
    return nn.Sequential(
        nn.Unflatten(1, (1, length)),
        nn.Conv1d(1, channels, 5, stride=2, padding=2), nn.ReLU(),
        nn.Conv1d(channels, channels, 3, stride=2, padding=1), nn.ReLU(),
        nn.Flatten(),
        nn.Linear(channels * math.ceil(math.ceil(length / 2) / 2), n_outputs),
    )
