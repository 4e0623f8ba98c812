"""dlbench report: the html page in a real browser (headless Chromium over the DevTools
protocol), the numbers in csv against the statistics layer, LaTeX and markdown structure,
several folders, and bad input."""

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlbench import SCHEMA_VERSION, stats
from tests.browser import Chromium, find_chromium
from tests.conftest import sweep, tree

SCHEMA1 = Path(__file__).parent / "data" / "schema1"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """36 trials: three optimizers, two learning rates, two batch sizes, three seeds, one diverging lr."""
    out = tmp_path_factory.mktemp("report")
    return sweep(out, "r", "--dataset", "iris", "--optimizer", "sgd,adam,rmsprop", "--lr", "0.03,30",
                 "--batch-size", "16,full", "--epochs", "4", "--seeds", "0,1,2")


@pytest.fixture(scope="module")
def two_problems(tmp_path_factory):
    out = tmp_path_factory.mktemp("report2")
    return sweep(out, "p", "--dataset", "wine,breast_cancer", "--optimizer", "sgd,adam", "--lr", "0.01,0.1",
                 "--epochs", "3", "--seeds", "0,1,2")


def test_html_in_a_real_browser(folder, tmp_path):
    exe = find_chromium()
    if exe is None:
        pytest.skip("no Chromium here (Debian: apt-get install chromium; .ci/run installs it)")
    from dlbench.report import make_report

    (page,) = make_report([str(folder)], "html", str(tmp_path / "report.html"))
    browser = Chromium(exe)
    try:
        browser.open(page.resolve().as_uri())
        # every figure is rendered at a non-zero size
        sizes = browser.js("[...document.querySelectorAll('figure svg')].map(s => "
                           "{const r = s.getBoundingClientRect(); return [r.width, r.height]})")
        kinds = browser.js("[...document.querySelectorAll('figure')].map(f => f.dataset.kind)")
        assert kinds == ["budget", "curves", "lr", "heatmap", "target", "timing"]  # the budget's in its section
        assert len(sizes) == 6 and all(w > 100 and h > 50 for w, h in sizes), sizes
        # the best-configuration table: one row per optimizer, with N and a CI
        rows = browser.js("[...document.querySelectorAll('table.best tbody tr')].map(r => "
                          "[...r.cells].map(c => c.textContent.trim()))")
        header = browser.js("[...document.querySelectorAll('table.best th')].map(h => h.textContent.trim())")
        assert sorted(r[0] for r in rows) == ["adam", "rmsprop", "sgd"]
        n_col, ci_col = header.index("N"), header.index("95% CI")
        assert all(r[n_col] == "3" for r in rows)
        assert all(re.fullmatch(r"\[[-0-9.e]+, [-0-9.e]+\]", r[ci_col]) for r in rows), rows
        # clicking a header re-sorts the table, and a second click reverses it
        col = browser.js("[...document.querySelectorAll('table.configs th')].findIndex(h => "
                         "h.textContent.startsWith('test acc'))")
        read = (f"[...document.querySelectorAll('table.configs tbody tr')].map(r => "
                f"parseFloat(r.cells[{col}].dataset.v))")
        before = browser.js(read)
        browser.js(f"document.querySelectorAll('table.configs th')[{col}].click()")
        up = browser.js(read)
        browser.js(f"document.querySelectorAll('table.configs th')[{col}].click()")
        down = browser.js(read)
        finite = [v for v in up if v == v]
        assert finite == sorted(finite) and len(finite) == 12
        assert [v for v in before if v == v] != finite  # the page's own order is by configuration: it did move
        assert [v for v in down if v == v] == sorted(finite, reverse=True)
        assert browser.js(f"document.querySelectorAll('table.configs th')[{col}].getAttribute('aria-sort')") \
            == "descending"
        # no network: the page itself and inline data: images (the heatmap's raster) are all it loads,
        # with the browser's networking off; and nothing in the DOM points outside
        requests = browser.requests()
        assert [u for u in requests if not u.startswith("data:")] == [page.resolve().as_uri()], requests
        external = browser.js("[...document.querySelectorAll('[src],[href]')].map(e => e.getAttribute('src') || "
                              "e.getAttribute('href')).filter(u => /^(https?:)?\\/\\//.test(u))")
        assert external == []
    finally:
        browser.close()
    html = page.read_text()
    assert "<script src" not in html and "<link" not in html and "@import" not in html


def test_csv_numbers_are_the_statistics_layers(folder, tmp_path, cli):
    r = cli("report", folder, "--format", "csv", "--out", tmp_path / "r.csv")
    assert r.code == 0, r.err
    assert f"wrote {tmp_path / 'r.csv'}" in r.out and f"wrote {tmp_path / 'r-pairs.csv'}" in r.out
    csv = pd.read_csv(tmp_path / "r.csv")
    from dlbench.store import read_results

    trials, _, _ = read_results(folder)
    metric = "test_acc_at_best_val"
    expected = stats.group_stats(trials.assign(sweep="r"), metric)
    assert len(csv) == len(expected) == 12  # one row per configuration
    for col in ("n", "mean", "std", "ci_low", "ci_high"):
        np.testing.assert_allclose(csv[f"{metric}_{col}"].to_numpy(float), expected[col].to_numpy(float),
                                   rtol=1e-12, equal_nan=True)
    chosen = csv[csv.chosen]
    best = {b.name: b for b in stats.best_configs(trials)}
    assert sorted(chosen.optimizer) == sorted(best)
    for _, row in chosen.iterrows():
        assert row.lr == best[row.optimizer].config["lr"]
        assert row[f"{metric}_mean"] == pytest.approx(best[row.optimizer].report["mean"], rel=1e-12)
    pairs = pd.read_csv(tmp_path / "r-pairs.csv")
    comps = stats.compare(list(best.values()))
    assert len(pairs) == len(comps) == 3
    for (_, row), c in zip(pairs.iterrows(), comps, strict=True):
        assert (row.a, row.b) == (c.a, c.b) and row["diff"] == pytest.approx(c.diff, rel=1e-12)
        assert row.p_a_better == pytest.approx(c.p_better)


def test_latex_is_balanced_escaped_and_bolds_the_best(two_problems, tmp_path, cli):
    r = cli("report", two_problems, "--format", "tex", "--out", tmp_path / "t.tex")
    assert r.code == 0, r.err
    tex = (tmp_path / "t.tex").read_text()
    begins = re.findall(r"\\begin\{(\w+)\}", tex)
    ends = re.findall(r"\\end\{(\w+)\}", tex)
    # the table of means, then (two problems) the scoreboard
    assert begins == ["table", "tabular"] * 2 and ends == ["tabular", "table"] * 2
    assert r"\label{tab:dlbench-scoreboard}" in tex and "wins/ties/losses" in tex
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert "breast\\_cancer" in tex and "breast_cancer" not in tex.replace("breast\\_cancer", "")
    # in bold: each column's best and every optimizer the Holm-adjusted verdicts cannot tell from it
    from dlbench.report import _data

    data = _data.report_data([str(two_problems)], with_figures=False)
    expected = 0
    for dataset in {b.dataset for b in data.best}:
        items = sorted((b for b in data.best if b.dataset == dataset), key=lambda b: -b.report["mean"])
        pairs = [c for c in data.comparisons if c.dataset == dataset and items[0].name in (c.a, c.b)]
        expected += 1 + sum(c.verdict in ("none", "n/a") for c in pairs)
    assert tex.count(r"\mathbf") == expected and expected >= 2
    caption = re.findall(r"\\caption\{(.*)\}", tex)[0]
    assert "Test accuracy at the validation-chosen epoch" in caption and "N = 3" in caption
    assert "chosen by mean validation accuracy" in caption
    assert tex.count("{") == tex.count("}")
    from dlbench.report._text import tex_escape

    assert tex_escape("lr_1% & more") == r"lr\_1\% \& more"


def test_markdown_has_one_table_per_section(folder, tmp_path, cli):
    r = cli("report", folder, "--format", "md", "--out", tmp_path / "r.md")
    assert r.code == 0, r.err
    text = (tmp_path / "r.md").read_text()
    sections = re.split(r"^## ", text, flags=re.M)[1:]
    assert [s.splitlines()[0] for s in sections] == ["Scoreboard", "Tuning budget", "Steps and seconds to the target",
                                                     "What ran",
                                                     "Best configuration per optimizer", "Pairwise comparisons",
                                                     "All configurations", "Diverged and failed trials"]
    for s in sections:
        separators = [ln for ln in s.splitlines() if re.fullmatch(r"\|(---\|)+", ln)]
        assert len(separators) == 1, s[:200]
    assert "| sgd |" in text or "| adam |" in text


@pytest.mark.slow
def test_two_folders_side_by_side(folder, two_problems, tmp_path, cli):
    r = cli("report", folder, two_problems, "--out", tmp_path / "both.html")
    assert r.code == 0, r.err
    html = (tmp_path / "both.html").read_text()
    assert "dlbench report: r vs p" in html
    assert html.count('<div class="card">') == 2  # what ran, per folder
    assert 'data-kind="profile"' in html  # three problems between them
    r = cli("report", folder, two_problems, "--format", "md", "--out", tmp_path / "both.md")
    md = (tmp_path / "both.md").read_text()
    assert "| folder | dataset | optimizer |" in md
    default = cli("report", folder, two_problems, "--format", "md")
    assert default.code == 0 and (folder / "report-vs-p.md").exists()
    (folder / "report-vs-p.md").unlink()


def test_default_path_and_a_schema_1_folder(tmp_path, cli):
    old = tmp_path / "old"
    shutil.copytree(SCHEMA1, old)
    r = cli("report", old)
    assert r.code == 0, r.err
    assert r.out.strip() == f"wrote {old / 'report.html'}"
    html = (old / "report.html").read_text()
    assert "no validation split (written by dlbench schema 1" in html


def test_a_confirm_stage_shows_tuning_apart(tmp_path, cli):
    spec = tmp_path / "c.toml"
    spec.write_text('name = "c"\ndataset = "iris"\nepochs = 2\nseeds = [0]\n[grid]\noptimizer = ["sgd", "adam"]\n'
                    'lr = [0.01, 0.1]\n[protocol]\nconfirm_seeds = 3\n')
    assert cli("sweep", spec, "--out", tmp_path, "--workers", "1").code == 0
    r = cli("report", tmp_path / "c", "--format", "md", "--out", tmp_path / "c.md")
    assert r.code == 0, r.err
    assert "Confirmed on fresh seeds (1-3)" in (tmp_path / "c.md").read_text()
    r = cli("report", tmp_path / "c", "--out", tmp_path / "c.html")
    assert "tuning mean (N)" in (tmp_path / "c.html").read_text()


def bad_folders(tmp_path: Path) -> dict[str, Path]:
    empty = tmp_path / "empty"
    (empty / "trials").mkdir(parents=True)
    (empty / "env.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION}))
    failed = tmp_path / "failed"
    shutil.copytree(SCHEMA1, failed)
    for f in (failed / "trials").glob("*.json"):
        rec = json.loads(f.read_text())
        rec["result"] = {**rec["result"], "status": "failed", "history": [], "error": "RuntimeError: boom"}
        f.write_text(json.dumps(rec))
    (failed / "trials.parquet").unlink()
    newer = tmp_path / "newer"
    shutil.copytree(SCHEMA1, newer)
    env = json.loads((newer / "env.json").read_text())
    (newer / "env.json").write_text(json.dumps({**env, "schema_version": SCHEMA_VERSION + 1}))
    plain = tmp_path / "plain"
    plain.mkdir()
    return {"plain": plain, "empty": empty, "failed": failed, "newer": newer}


@pytest.mark.parametrize("case,extra,message", [
    ("plain", [], "is not a dlbench results folder"),
    ("empty", [], "has no finished trials yet"),
    ("failed", [], "holds only failed trials (12)"),
    ("newer", [], f"schema version {SCHEMA_VERSION + 1}"),
    ("ok", ["--format", "pdf"], "--format 'pdf' is unknown; allowed: html, md, tex, csv"),
    ("ok", ["--out", "{tmp}/no/such/folder/r.html"], "does not exist; allowed: a file in an existing folder"),
    ("ok", ["--out", "{tmp}"], "is a folder; allowed: a file path"),
])
def test_bad_input_is_one_line_and_writes_nothing(folder, tmp_path, cli, case, extra, message):
    target = bad_folders(tmp_path).get(case, folder)
    before = {p: tree(p) for p in (tmp_path, folder)}
    r = cli("report", target, *[a.replace("{tmp}", str(tmp_path)) for a in extra])
    assert r.code == 2 and r.out == "", r.out
    assert len(r.err.strip().splitlines()) == 1 and message in " ".join(r.err.split()), r.err
    assert {p: tree(p) for p in (tmp_path, folder)} == before


def test_the_report_says_what_ran(folder, tmp_path):
    from dlbench.report import make_report

    (page,) = make_report([str(folder)], "html", str(tmp_path / "r.html"))
    html = page.read_text()
    assert "diverged trial(s)" in html and "spec.toml" in html and "torch" in html
    assert re.search(r"\d+ fused", html)
    trials = pd.read_parquet(folder / "trials.parquet")
    n_div = int((trials.status == "diverged").sum())
    assert n_div > 0 and f"{n_div} diverged trial(s)" in html
    assert not math.isnan(trials.wall_time.sum())


def test_latex_numbers_keep_their_significant_digits():
    from dlbench.report._text import tex_number

    assert tex_number(0.000123456) == "0.0001235"  # :.4f printed 0.0001, and a smaller loss 0.0000
    assert tex_number(3.2e-7) == r"3.2\times10^{-7}" and tex_number(0.9722) == "0.9722"


def test_page_wide_figures_take_a_whole_row(two_problems):
    """Small multiples are drawn at a page's width; in half a row their text would be half size."""
    from dlbench.report._data import report_data
    from dlbench.report._html import page_wide, render_svgs

    data = report_data([str(two_problems)])
    svgs = render_svgs([(f.draw, f.info, i) for i, f in enumerate(data.figures)])
    wide = {f.key: page_wide(s) for f, s in zip(data.figures, svgs, strict=True)}
    assert wide == {"curves": True, "lr": True, "profile": False, "budget": True, "timing": False}


def test_the_focus_table_tags_each_verdict_by_its_side(folder, tmp_path):
    """--focus puts one optimizer against each other one: a loss reads 'worse' in the loss colour,
    a tie 'not distinguishable' (each tag's class is its verdict's)."""
    from dlbench.report import make_report

    (page,) = make_report([str(folder)], "html", str(tmp_path / "r.html"), focus="sgd")
    html = page.read_text()
    focus = html[html.index("sgd against each other optimizer"):]
    focus = focus[:focus.index("</table>")]
    tags = re.findall(r'<span class="tag (\w+)">([^<]+)</span>', focus)
    assert len(tags) == 2  # adam and rmsprop
    assert all({"better": "better", "worse": "worse", "not distinguishable": "same"}[text] == cls
               for cls, text in tags)
    assert ("worse", "worse") in tags, tags  # adam beats sgd on iris (4 epochs, lr 0.03 and 30)
    assert ".tag.worse" in html
