"""Every figure kind, drawn from real sweeps (one problem, and six problems with every axis), keeps
its text readable: each text inside the figure, no two blocks (an axes with its labels and title, a
legend, the figure's title) overlapping, and no layout warning from matplotlib."""

import warnings

import pytest

from tests.conftest import sweep

SIX = "iris,wine,breast_cancer,diabetes,digits,mnist1d"


@pytest.fixture(scope="module")
def one_problem(tmp_path_factory):
    out = tmp_path_factory.mktemp("layout1")
    return sweep(out, "one", "--dataset", "digits", "--optimizer", "sgd,adam,momentum,rmsprop",
                 "--lr", "0.01,0.03,0.1", "--batch-size", "16,64", "--seeds", "0,1,2", "--epochs", "3")


@pytest.fixture(scope="module")
def six_problems(tmp_path_factory):
    out = tmp_path_factory.mktemp("layout6")
    return sweep(out, "six", "--dataset", SIX, "--optimizer", "sgd,adam,momentum,rmsprop", "--lr", "0.01,0.1",
                 "--batch-size", "16,64", "--seeds", "0,1", "--epochs", "2")


def blocks(fig):
    """(name, window extent) of each block of the drawn figure."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    out = [(f"axes {i} {ax.get_title() or ax.get_ylabel()!r}", ax.get_tightbbox(r))
           for i, ax in enumerate(fig.axes) if ax.get_visible()]
    out += [(f"legend {i}", leg.get_window_extent(r)) for i, leg in enumerate(fig.legends)]
    if fig._suptitle is not None and fig._suptitle.get_text():
        out.append(("title", fig._suptitle.get_window_extent(r)))
    return out


def drawn_texts(fig):
    """Every text matplotlib draws: titles, axis labels, the tick labels inside the view, texts in
    the axes, legend entries, the figure's own texts (its title)."""
    out = []
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        out += [ax.title, ax._left_title, ax._right_title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        for axis in (ax.xaxis, ax.yaxis):
            out += [t.label1 for t in axis._update_ticks()] + [t.label2 for t in axis._update_ticks()]
        if ax.get_legend() is not None:
            out += ax.get_legend().get_texts()
    for leg in fig.legends:
        out += leg.get_texts()
    out += [*fig.texts, *([fig._suptitle] if fig._suptitle is not None else [])]
    return [t for t in out if t.get_visible() and t.get_text().strip()]


def outside(fig) -> list[str]:
    """The texts and blocks reaching past the figure's edge (a pixel of slack)."""
    box = fig.bbox
    r = fig.canvas.get_renderer()
    named = blocks(fig) + [(f"text {t.get_text()!r}", t.get_window_extent(r)) for t in drawn_texts(fig)]
    return [name for name, e in named
            if e.x0 < box.x0 - 1 or e.y0 < box.y0 - 1 or e.x1 > box.x1 + 1 or e.y1 > box.y1 + 1]


def overlaps(fig) -> list[tuple[str, str]]:
    bs = blocks(fig)
    bad = []
    for i, (a, ea) in enumerate(bs):
        for b, eb in bs[i + 1:]:
            # two pixels of slack: constrained layout packs blocks edge to edge
            w = min(ea.x1, eb.x1) - max(ea.x0, eb.x0)
            h = min(ea.y1, eb.y1) - max(ea.y0, eb.y0)
            if w > 2 and h > 2:
                bad.append((a, b))
    return bad


def every_kind(folder):
    from dlbench.plots import _common, figure_job, supported_kinds

    results = _common.load([str(folder)])
    kinds = supported_kinds(results)
    several = len(_common.problems(results)) > 1
    metric = None if several else _common.default_metric(results)
    for kind in kinds:
        draw, info, stem = figure_job(results, kind, metric)
        yield kind, stem, draw, info


@pytest.mark.parametrize("which", ["one_problem", pytest.param("six_problems", marks=pytest.mark.slow)])
def test_every_figure_keeps_its_text_inside_and_apart(which, request):
    import matplotlib.pyplot as plt

    folder = request.getfixturevalue(which)
    drawn = []
    for kind, stem, draw, info in every_kind(folder):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # "constrained_layout not applied" and the like
            fig = draw(info)
            out = outside(fig)
            bad = overlaps(fig)
        assert not out, f"{stem}: past the figure's edge: {out}"
        assert not bad, f"{stem}: overlapping blocks: {bad}"
        assert len(fig.axes) <= 2 * 12, f"{stem}: {len(fig.axes)} axes"
        plt.close(fig)
        drawn.append(kind)
    want = {"one_problem": ["curves", "lr", "heatmap", "target", "budget", "timing"],
            "six_problems": ["curves", "lr", "heatmap", "target", "profile", "budget", "timing"]}[which]
    assert drawn == want


def test_six_problems_draw_one_panel_per_problem(six_problems):
    from dlbench.plots import _common, curves, lr

    results = _common.load([str(six_problems)])
    c = curves.curves_info(results, None)
    assert sorted(set(c.panels)) == sorted(SIX.split(","))
    assert {m for m in c.panel_metrics.values()} == {"test_acc", "test_r2"}  # diabetes is a regression
    info = lr.lr_info(results, None)
    assert sorted(info.panels) == sorted(SIX.split(","))


def test_the_device_figures_keep_their_text_inside_and_apart():
    import matplotlib.pyplot as plt

    from dlbench import devices as dev
    from dlbench.plots.devices import device_figures

    rows = []
    for device, scale in (("cpu×2", 1.0), ("cuda:0", 0.01)):
        for b in (1, 16, 256, 4096):
            for kind in ("train", "inference", "epoch"):
                rate = 1000.0 * b * (scale if b < 256 else 1 / scale)
                rows.append({"device": device, "batch_size": b, "kind": kind, "samples_per_s": rate,
                             "q1_samples_per_s": rate * 0.8, "q3_samples_per_s": rate * 1.2, "iqr_ratio": 0.4})
    report = dev.summary(rows, ["cpu×2", "cuda:0"])
    figures = device_figures(rows, report)
    assert [stem for stem, _ in figures] == ["throughput", "speedup"]
    for stem, fig in figures:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out, bad = outside(fig), overlaps(fig)
        assert not out, f"{stem}: past the figure's edge: {out}"
        assert not bad, f"{stem}: overlapping blocks: {bad}"
        plt.close(fig)
