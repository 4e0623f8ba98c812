"""compare-devices: the report logic with a faked accelerator, absent devices, CPU only."""

import json

import pandas as pd
import pytest

from dlbench import devices as dev
from dlbench.errors import UserError


def rows_for(device, speeds, kind="train"):
    return [{"device": device, "batch_size": b, "kind": kind, "samples_per_s": v} for b, v in speeds.items()]


CPU = {1: 1000, 8: 7000, 64: 40000, 512: 90000, 4096: 100000}


@pytest.mark.parametrize("gpu,expected", [
    ({1: 100, 8: 800, 64: 50000, 512: 400000, 4096: 3e6}, 64),  # crosses at 64
    ({1: 100, 8: 800, 64: 6000, 512: 50000, 4096: 90000}, None),  # never within range
    ({1: 2000, 8: 9000, 64: 80000, 512: 900000, 4096: 9e6}, 1),  # faster everywhere
    ({1: 100, 8: 8000, 64: 30000, 512: 100000, 4096: 2e5}, 512),  # wins at 8, loses at 64: crossover 512
])
def test_crossover_is_where_the_accelerator_wins_from_then_on(gpu, expected):
    rows = rows_for("cpu×2", CPU) + rows_for("cuda:0", gpu)
    assert dev.crossover(rows, "cpu×2", "cuda:0", "train") == expected
    report = dev.summary(rows, ["cpu×2", "cuda:0"])
    assert report["baseline"] == "cpu×2" and report["crossover"]["cuda:0"]["train"] == expected
    assert report["crossover"]["cuda:0"]["inference"] is None  # nothing measured: not within range


def test_devices_asked_for_but_absent_are_errors():
    assert dev.resolve_devices(None, ["cpu"]) == ["cpu"]
    assert dev.resolve_devices(["cuda"], ["cpu", "cuda:0"]) == ["cpu", "cuda:0"]
    assert dev.resolve_devices(["mps", "cpu"], ["cpu", "mps"]) == ["mps", "cpu"]
    with pytest.raises(UserError, match="device = 'cuda:1' is not available on this machine; allowed: cpu, cuda:0"):
        dev.resolve_devices(["cuda:1"], ["cpu", "cuda:0"])


def test_cli_absent_device_and_bad_flags(cli, tmp_path):
    r = cli("compare-devices", "--devices", "cpu,cuda:0", "--out", tmp_path)
    assert r.code == 2 and "not available on this machine" in r.err
    for args, message in ((["--batch-sizes", "1,x"], "not a list of whole numbers"),
                          (["--batch-sizes", "0,4"], "whole numbers from 1"),
                          (["--threads", "0"], "--threads"), (["--devices", "gpu"], "device = 'gpu' is unknown"),
                          (["--dataset", "imagenet"], "is unknown")):
        r = cli("compare-devices", *args, "--out", tmp_path)
        assert r.code == 2 and message in r.err and len(r.err.strip().splitlines()) == 1, (args, r.err)
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_cpu_only_report(cli, tmp_path):
    r = cli("compare-devices", "--quick", "--batch-sizes", "1,32", "--dataset", "iris", "--out", tmp_path,
            "--name", "cpu-only")
    assert r.code == 0, r.err
    assert "CPU-only report" in r.out and "crossover not applicable" in r.out
    d = tmp_path / "cpu-only"
    rows = pd.read_parquet(d / "devices.parquet")
    assert set(rows.kind) == {"train", "inference", "epoch"} and set(rows.batch_size) == {1, 32}
    assert (rows.samples_per_s > 0).all() and (rows.q1_samples_per_s <= rows.q3_samples_per_s).all()
    env = json.loads((d / "env.json").read_text())
    assert env["cpu"] and env["torch"] and env["torch_threads"] >= 1 and env["gpu"] == []
    assert (d / "plots" / "throughput.png").exists() and not (d / "plots" / "speedup.png").exists()


def test_report_with_a_faked_accelerator(cli, tmp_path, monkeypatch):
    real_measure = dev.measure

    def fake_measure(dataset, model, device, batch_sizes, threads=None, min_run_time=1.0, epoch_batches=50):
        if device == "cpu":
            return real_measure(dataset, model, device, batch_sizes, threads=threads, min_run_time=0.02,
                                epoch_batches=2)
        rows = []
        for b in batch_sizes:  # far slower than any CPU below 4096, far faster at 4096
            for kind in ("train", "inference", "epoch"):
                rate = 10.0 if b < 4096 else 1e10
                rows.append({"device": device, "threads": None, "batch_size": b, "kind": kind, "samples_per_s": rate,
                             "q1_samples_per_s": rate * 0.9, "q3_samples_per_s": rate * 1.1,
                             "seconds_per_call": b / rate, "blocks": 3, "calls_per_block": 1,
                             "peak_memory_bytes": b * 4096 if kind == "train" else None})
        return rows

    monkeypatch.setattr(dev, "available_devices", lambda: ["cpu", "cuda:0"])
    monkeypatch.setattr(dev, "measure", fake_measure)
    r = cli("compare-devices", "--batch-sizes", "1,64,4096", "--dataset", "iris", "--out", tmp_path, "--name", "f")
    assert r.code == 0, r.err
    assert "cuda:0 beats" in r.out and "batch size 4096" in r.out
    summary = json.loads((tmp_path / "f" / "summary.json").read_text())
    assert summary["accelerators"] == ["cuda:0"] and summary["crossover"]["cuda:0"]["train"] == 4096
    assert (tmp_path / "f" / "plots" / "speedup.png").exists()


def test_a_timed_sweep_that_does_not_finish_cleanly_is_not_reported(cli, tmp_path, monkeypatch):
    import dlbench.runner

    spec = tmp_path / "s.toml"
    spec.write_text('dataset = "iris"\nepochs = 1\n')
    monkeypatch.setattr(dlbench.runner, "run_sweep", lambda *a, **k: 1)  # a trial failed
    r = cli("compare-devices", "--quick", "--batch-sizes", "4", "--include-sweep", spec, "--out", tmp_path / "o")
    assert r.code == 1 and "ended with exit code 1; its time is not reported" in r.err
    assert not (tmp_path / "o").exists()


class FakeClock:
    """A clock that only moves when the timed function runs: each call costs `cost(now)` seconds.
    blocked_autorange reads it at both ends of every block."""

    def __init__(self, cost):
        self.t, self.cost, self.calls = 0.0, cost, 0

    def now(self) -> float:
        return self.t

    def call(self) -> None:
        self.t += self.cost(self.t)
        self.calls += 1


def test_a_quiet_clock_gives_its_time_and_no_flag():
    clock = FakeClock(lambda t: 1e-3)
    t = dev.time_calls(clock.call, "cpu", min_run_time=0.5, warmup_s=0.05, clock=clock.now)
    assert t.median_s == pytest.approx(1e-3) and t.spread == pytest.approx(0, abs=1e-9)
    assert t.blocks >= 5 and t.number >= 1 and t.blocks * t.number * 1e-3 >= 0.5


def test_a_busy_machine_is_flagged_noisy_everywhere_it_shows():
    """The clock runs at half speed in every other 20 ms stretch (another program took the cores):
    the blocks disagree, the IQR is a large part of the median, and the point is flagged."""
    clock = FakeClock(lambda t: 1e-3 if int(t / 0.02) % 2 == 0 else 2e-3)
    t = dev.time_calls(clock.call, "cpu", min_run_time=0.5, warmup_s=0.05, clock=clock.now)
    assert t.spread > dev.NOISY_SPREAD
    per = 32 / t.median_s
    rows = [{"device": "cpu", "batch_size": 32, "kind": "train", "samples_per_s": per, "q1_samples_per_s": 32 / t.q3_s,
             "q3_samples_per_s": 32 / t.q1_s, "iqr_ratio": t.spread},
            # quiet, but faster per sample than its own train step: impossible on a quiet machine
            {"device": "cpu", "batch_size": 32, "kind": "epoch", "samples_per_s": per * 1.3,
             "q1_samples_per_s": per * 1.29, "q3_samples_per_s": per * 1.31, "iqr_ratio": 0.01},
            {"device": "cpu", "batch_size": 64, "kind": "train", "samples_per_s": 1e4, "q1_samples_per_s": 0.97e4,
             "q3_samples_per_s": 1.03e4, "iqr_ratio": 0.06}]
    report = dev.summary(rows, ["cpu"])
    flagged = {(p["batch_size"], p["kind"]): p["reason"] for p in report["noisy"]}
    assert set(flagged) == {(32, "train"), (32, "epoch")}
    assert flagged[(32, "train")] == f"IQR {100 * t.spread:.0f}% of the median"
    assert flagged[(32, "epoch")].startswith("epoch faster than its train step")
    assert rows[2]["noisy"] == ""
    assert dev.noise_line(report["noisy"][0]) == (f"noisy: cpu batch 32 train step: IQR {100 * t.spread:.0f}% of "
                                                 "the median; close other programs and re-run")


def test_noisy_points_reach_the_terminal_the_json_and_the_figure(cli, tmp_path, monkeypatch):
    def fake_measure(dataset, model, device, batch_sizes, threads=None, min_run_time=1.0, epoch_batches=50):
        rows = []
        for b in batch_sizes:
            for kind, rate, spread in (("train", 1000.0 * b, 0.4 if b == 1 else 0.02),
                                       ("inference", 3000.0 * b, 0.02), ("epoch", 900.0 * b, 0.03)):
                rows.append({"device": "cpu", "threads": None, "batch_size": b, "kind": kind, "samples_per_s": rate,
                             "q1_samples_per_s": rate / (1 + spread / 2), "q3_samples_per_s": rate / (1 - spread / 2),
                             "seconds_per_call": b / rate, "blocks": 9, "calls_per_block": 10, "iqr_ratio": spread,
                             "peak_memory_bytes": None})
        return rows

    monkeypatch.setattr(dev, "measure", fake_measure)
    r = cli("compare-devices", "--batch-sizes", "1,64", "--dataset", "iris", "--out", tmp_path, "--name", "n")
    assert r.code == 0, r.err
    assert ("noisy: cpu batch 1 train step: IQR 40% of the median; close other programs and re-run"
            in " ".join(r.out.split()))
    summary = json.loads((tmp_path / "n" / "summary.json").read_text())
    assert summary["noisy"] == [{"device": "cpu", "batch_size": 1, "kind": "train",
                                 "reason": "IQR 40% of the median"}]
    rows = pd.read_parquet(tmp_path / "n" / "devices.parquet")
    assert list(rows.loc[rows.noisy != "", ["batch_size", "kind"]].itertuples(index=False)) == [(1, "train")]
    from dlbench.plots.devices import devices_info

    train = next(s for s in devices_info(rows.to_dict("records")) if s.kind == "train")
    assert train.noisy == [True, False]
