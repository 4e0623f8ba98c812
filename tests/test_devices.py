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

    def fake_measure(dataset, model, device, batch_sizes, threads=None, repeats=7, epoch_batches=50):
        if device == "cpu":
            return real_measure(dataset, model, device, batch_sizes, threads=threads, repeats=2, epoch_batches=2)
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
    r = cli("compare-devices", "--batch-sizes", "4", "--include-sweep", spec, "--out", tmp_path / "o")
    assert r.code == 1 and "ended with exit code 1; its time is not reported" in r.err
    assert not (tmp_path / "o").exists()
