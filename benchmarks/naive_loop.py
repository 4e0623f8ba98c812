"""The baseline: a per-config training loop as a typical user writes it. nn.Module, DataLoader
with shuffle, torch.optim, default threads, and the same per-epoch evaluation dlbench records
(full training set and test set). Run by fused_vs_loops.py as (a) one process and (b) the same
loop spread over worker processes.

    python benchmarks/naive_loop.py --grid R32 [--workers 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import itertools
import time

GRIDS = {
    "R32": {"optimizer": ["sgd", "momentum", "rmsprop", "adam"], "lr": [1e-3, 3e-3, 1e-2, 3e-2], "seed": [0, 1]},
    "R128": {"optimizer": ["sgd", "momentum", "rmsprop", "adam"],
             "lr": [float(f"{10 ** (-4 + 3 * i / 15):.6g}") for i in range(16)], "seed": [0, 1]},
    "R1024": {"optimizer": ["sgd", "momentum", "rmsprop", "adam"],
              "lr": [float(f"{10 ** (-4 + 3 * i / 15):.6g}") for i in range(16)], "seed": list(range(16))},
}
EPOCHS, BATCH = 10, 32


def configs(grid: str) -> list[tuple[str, float, int]]:
    g = GRIDS[grid]
    return list(itertools.product(g["optimizer"], g["lr"], g["seed"]))


def load_digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    scaler = StandardScaler().fit(x_tr)
    return scaler.transform(x_tr), y_tr, scaler.transform(x_te), y_te


def train_one(cfg, data, device="cpu", threads=None):
    import torch
    import torch.nn.functional as F  # noqa: N812
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    if threads:
        torch.set_num_threads(threads)
    opt_name, lr, seed = cfg
    x_tr, y_tr, x_te, y_te = (torch.tensor(a, dtype=torch.float32 if a.dtype.kind == "f" else torch.long)
                              for a in data)
    x_tr, y_tr, x_te, y_te = x_tr.to(device), y_tr.to(device), x_te.to(device), y_te.to(device)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 10)).to(device)
    if opt_name == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr)
    elif opt_name == "momentum":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    elif opt_name == "rmsprop":
        opt = torch.optim.RMSprop(model.parameters(), lr=lr)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    loader = DataLoader(TensorDataset(x_tr, y_tr), batch_size=BATCH, shuffle=True)
    history = []
    for _epoch in range(EPOCHS):
        model.train()
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            train_loss = F.cross_entropy(model(x_tr), y_tr).item()
            out = model(x_te)
            test_loss = F.cross_entropy(out, y_te).item()
            history.append((train_loss, test_loss, (out.argmax(1) == y_te).float().mean().item()))
    return history


def _worker(args):
    cfg, data, device = args
    return train_one(cfg, data, device, threads=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--grid", choices=GRIDS, default="R32")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    t0 = time.perf_counter()
    data = load_digits()
    cfgs = configs(a.grid)
    if a.workers == 1:
        results = [train_one(c, data, a.device) for c in cfgs]
    else:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(a.workers) as pool:
            results = pool.map(_worker, [(c, data, a.device) for c in cfgs])
    best = max(h[-1][2] for h in results)
    print(f"{len(results)} trials, best final test accuracy {best:.4f}, {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
