"""Timing: median training and evaluation seconds per epoch for each configuration."""

from __future__ import annotations

from dataclasses import dataclass

from dlbench.plots._common import COLUMN_IN, OKABE_ITO, Results, fig_title, fmt_value, legend_below, style, styled


@dataclass
class TimingInfo:
    configs: list[str]
    train_s: list[float]  # median over trials and epochs
    eval_s: list[float]
    engines: list[str]


def timing_info(results: Results) -> TimingInfo:
    h = results.history[results.history.epoch > 0]
    keys = [c for c in ("sweep", "dataset", "optimizer", "batch_size", "model", "device") if c in h
            and (c in ("optimizer", "batch_size") or h[c].nunique() > 1)]
    engines = results.trials.set_index("trial_id")["engine"]
    rows = []
    for key, g in h.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        name = " ".join(f"{k}={fmt_value(v)}" if k == "batch_size" else str(v) for k, v in zip(keys, key, strict=True))
        eng = ",".join(sorted(engines.loc[g.trial_id.unique()].astype(str).unique()))
        rows.append((name.replace("batch_size=", "bs "), float(g.train_time.median()), float(g.eval_time.median()),
                     eng))
    return TimingInfo([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows])


@styled
def draw(info: TimingInfo):
    plt = style()
    import numpy as np

    n = len(info.configs)
    fig, ax = plt.subplots(figsize=(COLUMN_IN + 1.2, 0.22 * n + 1.0))
    y = np.arange(n)
    ax.barh(y - 0.2, info.train_s, height=0.4, color=OKABE_ITO[0], label="train")
    ax.barh(y + 0.2, info.eval_s, height=0.4, color=OKABE_ITO[1], label="eval (train, validation and test sets)")
    ax.set_yticks(y, [f"{c} [{e}]" for c, e in zip(info.configs, info.engines, strict=True)])
    ax.set_xlabel("seconds per epoch per trial (median)")
    fig.suptitle(fig_title("time per epoch (fused trials: their unit's time ÷ its trials)", COLUMN_IN + 1.2))
    ax.invert_yaxis()
    legend_below(fig)
    return fig
