"""`dlbench plot`: one module per figure, each a pure data step (`*_info`, returning a small
record that tests check without pixels) and a drawing step (`draw`) that only draws it.

    curves   metric vs epoch/step/samples/time per optimizer and lr (curves.py)
    lr       final metric (or at the validation-chosen epoch) vs lr, one line per optimizer (lr.py)
    heatmap  metric over two grid axes, default lr × batch size (heatmap.py)
    target   steps to reach a validation target vs batch size, with perfect scaling (target.py)
    profile  performance profile of the optimizers across problems (profile.py)
    budget   expected best validation number of k configurations tried, per optimizer (budget.py)
    timing   train and eval seconds per epoch by configuration (timing.py)

Bands over seeds (curves, lr) come from dlbench.stats: a 95% t interval of the mean by default.
"""

from __future__ import annotations

from pathlib import Path

from dlbench.errors import UserError, did_you_mean

KINDS = ("curves", "lr", "heatmap", "target", "profile", "budget", "timing")
FORMATS = ("png", "svg", "pdf")


def supported_kinds(results) -> list[str]:
    """The kinds a sweep's axes support, in drawing order: one sensible figure per kind (the
    heatmap only over lr × batch size; --kind heatmap --axes draws any other pair)."""
    from dlbench.plots._common import problems_varying

    kinds = ["curves"]
    if results.trials["lr"].nunique() > 1:
        kinds.append("lr")
    if problems_varying(results, ("lr", "batch_size")):
        kinds.append("heatmap")
    if results.trials["batch_size"].nunique() > 1:
        kinds.append("target")
    if n_problems(results) > 1:
        kinds.append("profile")
    if _configurations_per_optimizer(results) > 1:
        kinds.append("budget")
    kinds.append("timing")
    return kinds


def _configurations_per_optimizer(results) -> int:
    """The most tuning configurations any optimizer has on any problem (a budget curve needs 2)."""
    from dlbench.plots._common import tuning_stage
    from dlbench.store import config_columns

    t = tuning_stage(results).trials
    cols = [c for c in config_columns(t) if c != "stage"]
    keys = [c for c in ("sweep", "dataset", "optimizer") if c in t]
    return int(t.groupby(keys)[cols].apply(lambda g: len(g.drop_duplicates())).max()) if len(t) else 0


def n_problems(results) -> int:
    """Problems for a performance profile: (dataset, model) per results folder."""
    keys = [c for c in ("sweep", "dataset", "model") if c in results.trials]
    return len(results.trials[keys].drop_duplicates())


def heatmap_axes(results, wanted: tuple[str, str] | None = None) -> tuple[str, ...]:
    if wanted:
        return wanted
    varying = results.varying()
    if "lr" in varying and "batch_size" in varying:
        return ("lr", "batch_size")
    two = [a for a in varying if a != "optimizer"][:2]
    return tuple(two) if len(two) == 2 else ()


def check_options(kind: str, x: str, stat: str, fmt: str, band: str) -> None:
    """Every flag of `dlbench plot` that can be checked without reading results."""
    from dlbench.plots import _common
    from dlbench.stats import BANDS

    if fmt not in FORMATS:
        raise UserError(f"--format {fmt!r} is unknown; allowed: {', '.join(FORMATS)}")
    if kind not in (*KINDS, "all"):
        raise UserError(f"--kind {kind!r} is unknown{did_you_mean(kind, (*KINDS, 'all'))}; allowed: "
                        f"{', '.join(KINDS)}, all")
    if x not in _common.XS:
        raise UserError(f"--x {x!r} is unknown; allowed: {', '.join(_common.XS)}")
    if stat not in _common.STATS:
        raise UserError(f"--stat {stat!r} is unknown; allowed: {', '.join(_common.STATS)}")
    if band not in BANDS:
        raise UserError(f"--band {band!r} is unknown; allowed: {', '.join(BANDS)}")


def check_out_dir(outdir: Path) -> None:
    """The figures' folder must be a folder, or creatable as one: no file on its path."""
    for p in (outdir, *outdir.parents):
        if p.exists():
            if not p.is_dir():
                raise UserError(f"--out {str(outdir)!r}: {str(p)!r} is a file; allowed: a folder for the figures "
                                "(created when missing)")
            return


def figure_job(results, kind: str, metric: str | None, x: str = "epoch", stat: str = "best", band: str = "ci",
               axes: tuple[str, str] | None = None, target: float | None = None, target_metric: str | None = None,
               method: str = "t", stage: str | None = None, search: str = "grid"):
    """(draw, info, file stem) of one figure kind: its data step run, its drawing left to do.
    `metric` None: each problem's own (test accuracy, R² or loss)."""
    from dlbench.plots import _common, budget, curves, heatmap, lr, profile, timing
    from dlbench.plots import target as target_plot

    name = metric or "test"
    if kind == "curves":
        return curves.draw, curves.curves_info(results, metric, x, band, method, stage), f"curves-{name}-by-{x}"
    if kind == "lr":
        return lr.draw, lr.lr_info(results, metric, stat, band, method), f"lr-{name}"
    if kind == "heatmap":
        pair = heatmap_axes(results, axes) or ("lr", "batch_size")
        return (heatmap.draw, heatmap.heatmap_info(results, metric, pair, stat),
                f"heatmap-{name}-{pair[0]}-{pair[1]}")
    if kind == "target":
        info = target_plot.target_info(results, _common.check_metric(target_metric, results) if target_metric else None,
                                       target)
        return target_plot.draw, info, f"target-{info.metric or 'validation'}"
    if kind == "profile":
        return profile.draw, profile.profile_info(results), "profile"
    if kind == "budget":
        return budget.draw, budget.budget_info(results, search), "budget"
    return timing.draw, timing.timing_info(results), "timing"


STAGES = ("tune", "confirm")


def make_plots(folders: list[str], kind: str = "all", metric: str | None = None, x: str = "epoch",
               target: float | None = None, axes: str | None = None, fmt: str = "png", out: str | None = None,
               stat: str = "best", band: str = "ci", method: str = "t", datasets: str | None = None,
               stage: str | None = None) -> list[Path]:
    """Draw the figures and return the files written. `datasets`: a comma list of the datasets to
    draw; `stage`: tune or confirm, where a protocol ran (default: the confirm stage for curves)."""
    from dlbench.plots import _common

    check_options(kind, x, stat, fmt, band)
    from dlbench import stats

    stats.check_ci(method)
    if stage is not None and stage not in STAGES:
        raise UserError(f"--stage {stage!r} is unknown{did_you_mean(stage, STAGES)}; allowed: {', '.join(STAGES)}")
    outdir = Path(out) if out else Path(folders[0]) / "plots"
    check_out_dir(outdir)
    results = _common.load(folders)
    if datasets:
        results = _common.restrict(results, [d.strip() for d in datasets.split(",")])
    asked = metric
    if metric is not None:
        metric = _common.check_metric(metric, results)
    elif len({stats.task_of(g) for _, g in _common.problems(results)}) == 1:
        metric = _common.default_metric(results)  # one task: one metric for every panel
    axes_pair = None
    if axes:
        parts = [a.strip() for a in axes.split(",")]
        if len(parts) != 2:
            raise UserError(f"--axes {axes!r} is not two names; allowed: two of {', '.join(results.varying())}")
        axes_pair = (parts[0], parts[1])
    kinds = supported_kinds(results) if kind == "all" else [kind]
    if kind == "budget" and _configurations_per_optimizer(results) < 2:
        raise UserError("--kind budget needs several configurations per optimizer; these results have one each; "
                        "allowed: a sweep with an lr (or other) axis")
    from dlbench import folders as results_folders

    search = results_folders.search_kind(results_folders.stored_spec(folders[0]))
    if kind == "lr" and results.trials["lr"].nunique() < 2:
        raise UserError("--kind lr needs several learning rates; this sweep has one; allowed: a sweep with an lr axis")
    tag = "" if len(folders) == 1 else "-" + "-vs-".join(sorted(results.trials.sweep.unique()))[:80]
    # every data step first: bad input stops before any file is written
    jobs = []
    for k in kinds:
        # the target chooses an lr per batch size: a validation metric unless one was asked for
        target_metric = asked if kind == "target" and asked else None
        jobs.append(figure_job(results, k, metric, x, stat, band, axes_pair, target, target_metric, method, stage,
                               search))
    return [_common.save(draw(info), outdir, stem + tag, fmt) for draw, info, stem in jobs]
