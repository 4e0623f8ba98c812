"""Which devices exist here, checked before a sweep writes anything."""

from __future__ import annotations

from dlbench.errors import UserError


def available_devices() -> list[str]:
    import torch

    out = ["cpu"]
    if torch.cuda.is_available():
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    return out


def check_device(name: str, available: list[str] | None = None) -> None:
    """UserError unless `name` (cpu, cuda, cuda:N, mps) is present on this machine."""
    available = available_devices() if available is None else available
    wanted = "cuda:0" if name == "cuda" else name
    if wanted not in available:
        raise UserError(f"device = {name!r} is not available on this machine; allowed: {', '.join(available)}")
