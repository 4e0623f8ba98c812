"""compare-devices figures: throughput vs batch size (log-log) per device, train step and
inference, with the IQR as a band; and speedup over the CPU vs batch size with the crossover
marked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dlbench.devices import NOISY_SPREAD
from dlbench.plots._common import COLUMN_IN, MARKERS, OKABE_ITO, PAGE_IN, legend_below, log_scale, save, style, styled

NOISY_STYLE = {"marker": "o", "ms": 8, "mfc": "none", "mec": "#CC0000", "mew": 0.9}  # a red ring


@dataclass
class Series:
    device: str
    kind: str
    batch_size: list[int]
    samples_per_s: list[float]
    lo: list[float]
    hi: list[float]
    noisy: list[bool]  # per point: flagged by dlbench.devices.flag_noise


def devices_info(rows) -> list[Series]:
    out: dict[tuple[str, str], Series] = {}
    for r in sorted((r for r in rows if r["batch_size"] is not None), key=lambda r: r["batch_size"]):
        s = out.setdefault((r["device"], r["kind"]), Series(r["device"], r["kind"], [], [], [], [], []))
        s.batch_size.append(r["batch_size"])
        s.samples_per_s.append(r["samples_per_s"])
        s.lo.append(r["q1_samples_per_s"])
        s.hi.append(r["q3_samples_per_s"])
        s.noisy.append(bool(r.get("noisy")))
    return list(out.values())


def speedup_info(series: list[Series], baseline: str, kind: str) -> dict[str, tuple[list[int], list[float]]]:
    base = next((s for s in series if s.device == baseline and s.kind == kind), None)
    out = {}
    if base is None:
        return out
    ref = dict(zip(base.batch_size, base.samples_per_s, strict=True))
    for s in series:
        if s.kind == kind and s.device != baseline:
            pairs = [(b, v / ref[b]) for b, v in zip(s.batch_size, s.samples_per_s, strict=True) if b in ref]
            out[s.device] = ([b for b, _ in pairs], [v for _, v in pairs])
    return out


def draw_devices(rows, report, out: Path, fmt: str = "png") -> list[Path]:
    """Save the figures of a compare-devices report; the files written."""
    return [save(fig, out, stem, fmt) for stem, fig in device_figures(rows, report)]


@styled
def device_figures(rows, report) -> list[tuple[str, object]]:
    """(file stem, figure): throughput for every device; the speedup where an accelerator ran."""
    plt = style()
    series = devices_info(rows)
    devices = list(dict.fromkeys(s.device for s in series))
    colour = {d: OKABE_ITO[i % len(OKABE_ITO)] for i, d in enumerate(devices)}
    fig, axes = plt.subplots(1, 3, figsize=(PAGE_IN, 2.4), sharex=True)
    for ax, kind, title in zip(axes, ("train", "inference", "epoch"),
                               ("training step", "inference (no grad)", "epoch incl. host→device copies"), strict=True):
        for i, s in enumerate(x for x in series if x.kind == kind):
            ax.plot(s.batch_size, s.samples_per_s, color=colour[s.device], marker=MARKERS[i % 8], ms=3,
                    label=s.device)
            ax.fill_between(s.batch_size, s.lo, s.hi, color=colour[s.device], alpha=0.2, lw=0)
            bad = [(b, v) for b, v, n in zip(s.batch_size, s.samples_per_s, s.noisy, strict=True) if n]
            if bad:
                ax.plot(*zip(*bad, strict=True), ls="none", **NOISY_STYLE)
        log_scale(ax, "x", base=2)
        log_scale(ax, "y")
        ax.set_title(title)
        ax.set_xlabel("batch size")
    axes[0].set_ylabel("samples / s (median, IQR band)")
    handles, labels = axes[0].get_legend_handles_labels()
    if any(any(s.noisy) for s in series):
        handles.append(plt.Line2D([], [], ls="none", **NOISY_STYLE))
        labels.append(f"noisy: IQR > {100 * NOISY_SPREAD:g}% of the median, or epoch faster than train step; re-run")
    legend_below(fig, handles, labels)
    figures = [("throughput", fig)]
    accelerators = report.get("accelerators", [])
    if accelerators:
        fig, ax = plt.subplots(figsize=(COLUMN_IN, 2.5))
        for kind, ls in (("train", "-"), ("inference", "--")):
            for acc, (bs, ratio) in speedup_info(series, report["baseline"], kind).items():
                cross = report["crossover"].get(acc, {}).get(kind)
                where = f"crossover at batch {cross}" if cross is not None else "no crossover"
                ax.plot(bs, ratio, ls=ls, color=colour[acc], marker="o", ms=3, label=f"{acc} {kind}: {where}")
                if cross is not None:
                    ax.axvline(cross, color=colour[acc], ls=ls, lw=0.7)
        ax.axhline(1, color="0.5", lw=0.8)
        log_scale(ax, "x", base=2)
        log_scale(ax, "y")
        ax.set_xlabel("batch size")
        ax.set_ylabel(f"speedup over {report['baseline']}")
        ax.set_title("accelerator speedup; vertical lines: crossover")
        legend_below(fig)
        figures.append(("speedup", fig))
    return figures
