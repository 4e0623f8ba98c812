"""The `dlbench` command. Thin: parse, validate, call into the package. Heavy modules (torch,
pandas, matplotlib) are imported inside the commands that need them, so `--help` stays fast."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from dlbench.errors import UserError

app = typer.Typer(
    name="dlbench",
    help="Sweep optimizers × learning rates × batch sizes on standard datasets: exact, resumable, fast.",
    epilog=(
        "Examples:\n\n"
        "  dlbench sweep experiments/quickstart.toml\n\n"
        "  dlbench sweep --dataset digits --optimizer sgd,adam --lr 1e-3,1e-2 --batch-size 32,full --epochs 5\n\n"
        "  dlbench show results/quickstart\n\n"
        "  dlbench plot results/quickstart\n\n"
        "  dlbench report results/quickstart"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)

Opt = typer.Option
CI_HELP = ("Intervals and verdicts: t (Student's t for means, Welch for differences; right at any N) or bootstrap "
           "(BCa; fit only for many seeds, see docs/statistics.md).")


@app.command(epilog=(
    "Examples:\n\n"
    "  dlbench sweep experiments/quickstart.toml\n\n"
    "  dlbench sweep --dataset digits --optimizer sgd,adam --lr 1e-3,1e-2 --batch-size 32,full --epochs 5 "
    "--seeds 0,1\n\n"
    "  dlbench sweep experiments/quickstart.toml --set epochs=3 --name quick3 --out results/\n\n"
    "  dlbench sweep experiments/quickstart.toml --dry-run     (print the grid and plan, train nothing)\n\n"
    "  dlbench sweep experiments/quickstart.toml --executor dask --address tcp://10.0.0.5:8786\n\n"
    "  dlbench sweep experiments/quickstart.toml --executor slurm --set slurm.partition=cpu\n\n"
    "Re-running the same command resumes: finished trials are skipped."
))
def sweep(
    spec: Annotated[str | None, typer.Argument(help="TOML spec file, or a preset's name: quickstart, smoke, "
                                                    "small-suite, a lesson or an example (see experiments/).")] = None,
    dataset: Annotated[str | None, Opt(help="Dataset (see `dlbench datasets`), or your own: ./table.csv, .parquet, "
                                            ".npz; commas make a grid axis.")] = None,
    target: Annotated[str | None, Opt(help="Target column of a --dataset table (default: target or label).")]
    = None,
    task: Annotated[str | None, Opt(help="Task of a --dataset file: multiclass, binary or regression (default: "
                                         "inferred, and said).")] = None,
    model: Annotated[str | None, Opt(help='Model kind or TOML table, e.g. mlp or {kind="mlp", hidden=[64]}.')]
    = None,
    loss: Annotated[str | None, Opt(help="Loss (auto picks the task's usual one).")] = None,
    optimizer: Annotated[str | None, Opt(help="Optimizer(s), e.g. sgd,momentum,adam.")] = None,
    lr: Annotated[str | None, Opt(help="Learning rate(s), e.g. 1e-3,1e-2.")] = None,
    batch_size: Annotated[str | None, Opt(help='Batch size(s): whole numbers or "full" (gradient descent).')]
    = None,
    epochs: Annotated[str | None, Opt(help="Epochs (passes over the training set).")] = None,
    seeds: Annotated[str | None, Opt(help="Seed(s), e.g. 0,1,2.")] = None,
    schedule: Annotated[str | None, Opt(help='Schedule: constant, step, exponential, cosine, or a TOML table.')]
    = None,
    device: Annotated[str | None, Opt(help="cpu, cuda, cuda:N or mps.")] = None,
    dtype: Annotated[str | None, Opt(help="float32 or float64.")] = None,
    engine: Annotated[str | None, Opt(help="auto, fused or reference.")] = None,
    workers: Annotated[int | None, Opt(help="Worker processes (default: one per core).", min=1)] = None,
    executor: Annotated[str | None, Opt(help="local (worker processes here), dask, or slurm (job arrays; "
                                             "the [slurm] table, --set slurm.partition=gpu).")] = None,
    address: Annotated[str | None, Opt(help="Dask scheduler for --executor dask: tcp://host:8786 or local.")]
    = None,
    set_: Annotated[list[str] | None, Opt("--set", help="key=value in TOML syntax, e.g. --set epochs=3 "
                                           "--set 'grid.lr=[1e-3, 1e-2]'. Repeatable.")] = None,
    name: Annotated[str | None, Opt(help="Sweep name (the results folder name).")] = None,
    out: Annotated[str, Opt(help="Folder that holds results/<name>/.")] = "results",
    data_dir: Annotated[str | None, Opt(help="Folder with dataset files (mnist, cifar10, ...).")] = None,
    dry_run: Annotated[bool, Opt("--dry-run", help="Print the grid and the plan; train nothing.")] = False,
    fresh: Annotated[bool, Opt("--fresh", help="Start over: move earlier results aside (never deleted).")]
    = False,
) -> int:
    """Run a sweep: every combination of the grid, trained and stored in results/<name>/."""
    from pathlib import Path

    from dlbench import forkserver, presets

    if spec:
        spec = str(presets.spec_path(spec))  # a file, or a preset by name
    # the workers' torch imports while this process reads and checks the spec
    warmed = not dry_run and forkserver.warm(Path(spec) if spec else None, workers, executor, address)
    from dlbench import spec as specs

    raw: dict = specs.read_spec_file(spec) if spec else {}
    default_name = Path(spec).stem if spec else "sweep"
    flags = {"dataset": dataset, "model": model, "loss": loss, "optimizer": optimizer, "lr": lr,
             "batch_size": batch_size, "epochs": epochs, "seed": seeds, "schedule": schedule, "device": device,
             "dtype": dtype, "engine": engine}
    for key, text in flags.items():
        if text is not None:
            value = specs.parse_value(text, f"--{key}") if key in ("model", "schedule") else specs.flag_list(text, key)
            if key in ("optimizer", "model", "dataset") and spec:
                value = specs.relative_to(value, Path(spec).parent)  # flags name files from the working folder
            specs.override(raw, key, value)
    if target is not None or task is not None:
        specs.apply_table_flags(raw, target=target, task=task)
    for assignment in set_ or []:
        specs.apply_set(raw, assignment)
    if name is not None:
        raw["name"] = name
    elif not spec and "name" not in raw:
        from dlbench.folders import auto_name

        raw["name"] = auto_name(raw)  # one folder per sweep: the same flags find it again
    for key, value in (("data_dir", data_dir), ("executor", executor), ("address", address)):
        if value is not None:
            raw[key] = value
    from dlbench.runner import early_pool, run_sweep
    from dlbench.timeline import mark

    mark("spec read")

    pool = None if dry_run else early_pool(raw, workers)
    try:
        sw = specs.build_sweep(raw, default_name=default_name, base_dir=str(Path(spec).parent) if spec else ".",
                               pool=pool)
        mark("spec checked")
        return run_sweep(sw, out, fresh=fresh, dry_run=dry_run, workers=workers, pool=pool, warmed=warmed)
    finally:
        if pool is not None:
            pool.kill()  # a no-op once run_sweep has ended it


@app.command(epilog="Examples:\n\n  dlbench show results/quickstart\n\n  dlbench show results/quickstart --json")
def show(
    results: Annotated[str, typer.Argument(help="A results folder written by `dlbench sweep`.")],
    json_: Annotated[bool, Opt("--json", help="One JSON object per trial, for scripts.")] = False,
    ci: Annotated[str, Opt(help=CI_HELP)] = "t",
    pairs: Annotated[bool, Opt("--pairs", help="Every pair's verdict in words, under each problem's table.")] = False,
    focus: Annotated[str | None, Opt(help="Put this optimizer against each other one: a row per problem with "
                                          "the difference, its interval and the verdict (default: the spec's "
                                          "focus).")] = None,
) -> int:
    """The scoreboard of a finished or partial sweep (wins, ties and losses over the problems, mean ranks), each
    problem's best configuration per optimizer with N and the 95% CI, and with --pairs every pair's verdict."""
    from dlbench import folders
    from dlbench.output import console as make_console
    from dlbench.spec import check_focus
    from dlbench.stats import check_ci
    from dlbench.summary import render_summary

    check_ci(ci)
    trials, history, env = folders.read(results)
    spec = folders.stored_spec(results)
    focus = focus if focus is not None else spec.get("focus")
    if focus is not None and len(trials):
        check_focus(focus, sorted(set(trials["optimizer"])), "--focus ")
    if json_:
        sys.stdout.write(trials.drop(columns=["config"], errors="ignore").to_json(orient="records", lines=True))
        return 0
    console = make_console()
    if trials.empty:
        console.print(f"{results}: no finished trials yet")
        _say_slurm_units(results, set(), console)
        return 0
    counts = trials["status"].value_counts().to_dict()
    console.print(f"{results}: {len(trials)} trials ({', '.join(f'{v} {k}' for k, v in counts.items())}), "
                  f"{len(history)} history rows")
    _say_slurm_units(results, set(trials["trial_id"]), console)
    render_summary(trials, console, env, method=ci, where=results, history=history, pairs=pairs, focus=focus,
                   search=folders.search_kind(spec), extended=folders.extended(spec))
    return 0


def _say_slurm_units(results: str, stored: set[str], console) -> None:
    """One line for a SLURM sweep with units not stored yet: where they are, and what to run."""
    from pathlib import Path

    from dlbench import slurm

    if not slurm.jobs_file(Path(results)).exists():
        return
    rows = [r for r in slurm.unit_states(Path(results), stored) if r["state"] != "stored"]
    if rows:
        console.print(f"slurm: {len(rows)} unit(s) not stored yet ({_states_said(rows)}): `dlbench jobs {results}` "
                      "says where; the sweep's command again stores them", markup=False)


@app.command(epilog="Examples:\n\n  dlbench jobs results/quickstart\n\n  dlbench jobs results/quickstart --json")
def jobs(
    results: Annotated[str, typer.Argument(help="A results folder of a sweep run with --executor slurm.")],
    json_: Annotated[bool, Opt("--json", help="One JSON object per unit, for scripts.")] = False,
) -> int:
    """Where each unit of a SLURM sweep is: queued, running, done (waiting to be stored), stored or failed, with
    its SLURM job id, attempts and log."""
    import json
    from pathlib import Path

    from dlbench import slurm, store
    from dlbench.errors import UserError
    from dlbench.output import console as make_console

    path = Path(results)
    if not slurm.jobs_file(path).exists():
        raise UserError(f"{results} holds no SLURM jobs (no {slurm.jobs_file(path).relative_to(path)}); allowed: the "
                        "results folder of a sweep run with --executor slurm")
    rows = slurm.unit_states(path, set(store.stored_stages(path)))
    if json_:
        sys.stdout.write("".join(json.dumps(r) + "\n" for r in rows))
        return 0
    from rich.table import Table

    console = make_console()
    table = Table(box=None, pad_edge=False)
    for col in ("unit", "state", "job", "squeue", "trials", "attempts", "log"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["unit"], r["state"], r["job_id"], r["slurm_state"] or "-", str(r["trials"]),
                      str(r["attempts"]), r["log"])
    console.print(table)
    console.print(f"{len(rows)} units: {_states_said(rows)}", markup=False)
    return 0


def _states_said(rows: list[dict]) -> str:
    """How many units are in each state, in the order the states first appear: "3 running, 2 queued"."""
    from collections import Counter

    return ", ".join(f"{n} {state}" for state, n in Counter(r["state"] for r in rows).items())


@app.command(epilog=(
    "Examples:\n\n"
    "  dlbench plot results/quickstart                      (every kind the sweep supports)\n\n"
    "  dlbench plot results/quickstart --kind curves --metric test_loss --x step\n\n"
    "  dlbench plot results/bs-sweep --kind target --target 0.95\n\n"
    "  dlbench plot results/a results/b --kind lr --format pdf   (compare sweeps)\n\n"
    "  dlbench plot results/small-suite --kind profile          (optimizers across problems)\n\n"
    "  dlbench plot results/quickstart --kind curves --band std"
))
def plot(
    results: Annotated[list[str], typer.Argument(help="One or more results folders.")],
    kind: Annotated[str, Opt(help="curves, lr, heatmap, target, profile, budget, timing or all.")] = "all",
    metric: Annotated[str | None, Opt(help="test_acc, val_acc, test_loss, val_loss, train_loss, ... (default: "
                                           "test_acc or test_loss; target: val_acc or val_loss).")] = None,
    x: Annotated[str, Opt("--x", help="x axis of curves: epoch, step, samples or time.")] = "epoch",
    target: Annotated[float | None, Opt(help="Target value for --kind target (default: 95% of the best).")]
    = None,
    axes: Annotated[str | None, Opt(help="Two axes for the heatmap, e.g. lr,batch_size.")] = None,
    stat: Annotated[str, Opt(help="best: the value at the epoch chosen on validation (as the tables), or final "
                                  "(lr, heatmap).")] = "best",
    band: Annotated[str, Opt(help="Band over seeds (curves, lr): ci (95% interval of the mean, see --ci), std, "
                                  "minmax or none.")] = "ci",
    ci: Annotated[str, Opt(help=CI_HELP)] = "t",
    dataset: Annotated[str | None, Opt(help="Draw these datasets only (comma-separated); default: all, one panel "
                                            "each (up to 12).")] = None,
    stage: Annotated[str | None, Opt(help="Where a [protocol] ran: confirm (the default for curves) or tune.")]
    = None,
    format_: Annotated[str, Opt("--format", help="png, svg or pdf.")] = "png",
    out: Annotated[str | None, Opt(help="Folder for the figures (default: <first folder>/plots).")] = None,
) -> int:
    """Draw figures from results folders: curves, lr sensitivity, heatmap, steps-to-target, performance
    profile, timing."""
    from dlbench.plots import make_plots

    for path in make_plots(results, kind, metric, x, target, axes, format_, out, stat, band, ci, dataset, stage):
        typer.echo(f"wrote {path}")
    return 0


@app.command(epilog=(
    "Examples:\n\n"
    "  dlbench report results/quickstart                      (results/quickstart/report.html)\n\n"
    "  dlbench report results/quickstart --format tex --out table.tex\n\n"
    "  dlbench report results/quickstart --format csv       (report.csv and report-pairs.csv)\n\n"
    "  dlbench report results/a results/b                   (side by side)"
))
def report(
    results: Annotated[list[str], typer.Argument(help="One or more results folders.")],
    format_: Annotated[str, Opt("--format", help="html (one self-contained page), md, tex or csv.")] = "html",
    out: Annotated[str | None, Opt(help="File to write (default: <first folder>/report.<format>).")] = None,
    ci: Annotated[str, Opt(help=CI_HELP)] = "t",
    focus: Annotated[str | None, Opt(help="Put this optimizer against each other one (default: the spec's "
                                          "focus).")] = None,
) -> int:
    """A sweep on one page: the scoreboard first, what ran, each optimizer at its best configuration with N and
    the 95% CI, the pairwise verdicts, the tuning budget, the figures and every table; offline html, or md,
    tex and csv for papers."""
    from dlbench.report import make_report

    for path in make_report(results, format_, out, ci, focus):
        typer.echo(f"wrote {path}")
    return 0


@app.command("compare-devices", epilog=(
    "Examples:\n\n"
    "  dlbench compare-devices --quick\n\n"
    "  dlbench compare-devices --devices cpu,cuda:0 --batch-sizes 1,8,64,512,4096\n\n"
    "  dlbench compare-devices --threads 1,2 --include-sweep experiments/smoke.toml"
))
def compare_devices(
    dataset: Annotated[str, Opt(help="Dataset whose shapes the model takes.")] = "digits",
    model: Annotated[str | None, Opt(help='Model as a TOML table (default: {kind="mlp", hidden=[256, 256]}).')]
    = None,
    batch_sizes: Annotated[str | None, Opt(help="Batch sizes (default: 1,2,4,...,4096).")] = None,
    devices: Annotated[str | None, Opt(help="Devices, e.g. cpu,cuda:0,mps (default: every one present).")] = None,
    threads: Annotated[str | None, Opt(help="CPU intra-op thread counts to compare, e.g. 1,2.")] = None,
    include_sweep: Annotated[str | None, Opt(help="Also time this sweep spec with each engine on each device.")]
    = None,
    out: Annotated[str, Opt(help="Folder that holds results/<name>/.")] = "results",
    name: Annotated[str, Opt(help="Report name (its folder).")] = "devices",
    quick: Annotated[bool, Opt("--quick", help="Fewer batch sizes and repeats (about 30 s on a CPU).")] = False,
) -> int:
    """Time training and inference on each device across batch sizes: when does the GPU win?"""
    from dlbench.compare_devices import run_compare

    return run_compare(dataset, model, batch_sizes, devices, threads, include_sweep, out, name, quick)


@app.command(epilog="Examples:\n\n  dlbench optimizers\n\n  dlbench sweep --optimizer adam,torch.optim:NAdam,"
                    "lion_pytorch:Lion,./my_opt.py:MyOpt")
def optimizers() -> int:
    """List optimizers and schedules: the built-ins with their knobs, every torch.optim class, and the
    optimizers installed packages register (entry points `dlbench.optimizers`)."""
    from dlbench.optim import listing
    from dlbench.output import print_table
    from dlbench.schedules import SCHEDULE_COMMON, SCHEDULES

    for title, columns, rows in listing():
        print_table(title, columns, rows)
    print_table("schedules (stepped once per epoch)", ["kind", "what it does", "parameters (default)"], [
        [sc.name, sc.description, ", ".join(f"{k} = {v}" for k, v in {**sc.defaults, **SCHEDULE_COMMON}.items())]
        for sc in SCHEDULES.values()])
    return 0


lessons_app = typer.Typer(help="Ready experiments that test textbook claims: list them, or run one.",
                          epilog="Examples:\n\n  dlbench lessons\n\n  dlbench lessons run learning-rate")
app.add_typer(lessons_app, name="lessons")


@lessons_app.callback(invoke_without_command=True)
def lessons_list(ctx: typer.Context) -> None:
    """List the lessons: name, claim, trials."""
    if ctx.invoked_subcommand is not None:
        return
    from dlbench.lessons import all_lessons, load_lesson
    from dlbench.output import print_table

    rows = []
    for name in all_lessons():
        sweep = load_lesson(name)
        rows.append([name, sweep.lesson["claim"], str(len(sweep.trials))])
    print_table("lessons (dlbench lessons run NAME)", ["name", "claim", "trials"], rows)


@lessons_app.command("run", epilog="Examples:\n\n  dlbench lessons run gd-vs-sgd\n\n"
                                   "  dlbench lessons run learning-rate --set epochs=3 --out /tmp/r")
def lessons_run(
    name: Annotated[str, typer.Argument(help="A lesson name from `dlbench lessons`, or a path to a lesson spec.")],
    out: Annotated[str, Opt(help="Folder that holds results/<name>/.")] = "results",
    set_: Annotated[list[str] | None, Opt("--set", help="Override a key, e.g. --set epochs=3.")] = None,
    format_: Annotated[str, Opt("--format", help="png, svg or pdf.")] = "png",
    workers: Annotated[int | None, Opt(help="Worker processes (default: one per core).", min=1)] = None,
) -> int:
    """Run a lesson's sweep and draw its figures."""
    from dlbench.lessons import run_lesson

    code, _ = run_lesson(name, out, set_, format_, workers)
    return code


datasets_app = typer.Typer(help="List datasets, or download those that need files.", no_args_is_help=False,
                           epilog="Examples:\n\n  dlbench datasets\n\n  dlbench datasets download mnist")
app.add_typer(datasets_app, name="datasets")


@datasets_app.callback(invoke_without_command=True)
def datasets_list(ctx: typer.Context) -> None:
    """List datasets: task, sizes, input shape, classes, source."""
    if ctx.invoked_subcommand is not None:
        return
    from dlbench.data import listing
    from dlbench.losses import LOSSES
    from dlbench.output import print_table

    print_table("datasets", ["name", "task", "train", "test", "input", "classes", "knobs (default)", "losses",
                             "source"], [
        [d.name, d.task, str(d.n_train), str(d.n_test),
         "×".join(map(str, d.input_shape)) + (f" tokens of {d.vocab}" if d.vocab else ""), str(d.n_classes or "-"),
         ", ".join(f"{k} = {v}" for k, v in d.knobs) or "-", ", ".join(LOSSES[d.task]),
         d.source + (" [needs files]" if d.needs_files else "")] for d in listing()])


@datasets_app.command("download", epilog=(
    "Examples:\n\n  dlbench datasets download mnist\n\n"
    "  dlbench datasets download cifar10 --data-dir /data/cifar10\n\n"
    "  dlbench datasets download fashion_mnist --url https://mirror.example.org/fashion/"))
def datasets_download(
    name: Annotated[str, typer.Argument(help="mnist, fashion_mnist or cifar10.")],
    data_dir: Annotated[str | None, Opt(help="Where to put the files (default: the user cache).")] = None,
    url: Annotated[str | None, Opt(help="Base URL of a mirror holding the same files.")] = None,
) -> int:
    """Download a dataset's standard files, checking each one's SHA-256."""
    from dlbench.data import files

    path = files.download(name, data_dir, base_url=url)
    typer.echo(f"{name}: files in {path}")
    return 0


def _click_modules() -> list:
    """Click's exception modules: typer >= 0.22 vendors click as typer._click, older ones use click."""
    mods = []
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            mods.append(__import__(name, fromlist=["UsageError"]))
        except ImportError:
            pass
    return mods


RESUME_HINT = "interrupted; finished trials are saved, run the same command to resume"


def _stop_early(signum, frame) -> None:
    from dlbench.interrupt import Interrupted

    raise Interrupted(signum)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors are one red line on stderr and exit code 2, never a traceback.
    SIGINT, SIGTERM and SIGHUP end any command with a line saying how to resume and exit code
    128 + the signal number (a sweep handles them itself while it runs: dlbench.interrupt)."""
    import signal

    if argv is None:  # the real command line, not a test calling main() in its own process
        # Ctrl-C too: typer would turn a KeyboardInterrupt into a silent exit code
        for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            if s is not None:
                signal.signal(s, _stop_early)
    mods = _click_modules()
    no_args = tuple(m.NoArgsIsHelpError for m in mods if hasattr(m, "NoArgsIsHelpError"))
    usage = tuple(m.UsageError for m in mods)
    exits = tuple(getattr(m, "Exit", typer.Exit) for m in mods) + (typer.Exit,)
    aborts = tuple(getattr(m, "Abort", typer.Abort) for m in mods) + (typer.Abort, KeyboardInterrupt)
    try:
        rv = app(args=argv, standalone_mode=False)
    except UserError as e:
        _error(str(e))
        sys.exit(2)
    except no_args as e:
        typer.echo(e.ctx.get_help())
        sys.exit(0)
    except usage as e:
        _error(e.format_message().replace("\n", " "))
        sys.exit(2)
    except exits as e:
        sys.exit(e.exit_code)
    except aborts:
        _error(RESUME_HINT)
        sys.exit(130)
    except Exception as e:
        from dlbench.interrupt import Interrupted

        if not isinstance(e, Interrupted):
            raise
        _error(RESUME_HINT)
        sys.exit(e.exit_code)
    sys.exit(rv if isinstance(rv, int) else 0)


def _error(message: str) -> None:
    from rich.markup import escape

    from dlbench.output import console

    console(stderr=True).print(f"[red]error:[/] {escape(message)}", markup=True, highlight=False, soft_wrap=True)
