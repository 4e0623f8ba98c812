"""Ranges that reach the optimum: a range with `extend` grows beyond the edge the tuning stage
chooses, one point at a time, until the choice is inside it (or K points later); the points are
stored before they train, so a sweep killed mid-extension resumes to the same trials."""

import tomllib

import pandas as pd
import pytest

from dlbench.errors import UserError
from dlbench.spec import build_sweep
from tests.conftest import result_tables, write

SPEC = """
name = "e"
dataset = "iris"
epochs = 3
seeds = [0, 1]
optimizer = "adam"
lr = { log = [1e-4, 1e-3], num = 2, extend = 3 }
"""


def test_a_range_that_stops_short_of_the_optimum_extends_and_chooses_inside(tmp_path, cli):
    """Adam on iris wants an lr near 0.1: the range [1e-4, 1e-3] chose its top twice, grew to 0.01
    and 0.1 and 1, and the choice is inside (0.1, not the largest value tried)."""
    spec = write(tmp_path / "e.toml", SPEC)
    r = cli("sweep", spec, "--out", tmp_path, "--workers", "1")
    assert r.code == 0, r.err
    said = [ln for ln in r.out.splitlines() if ln.startswith("extend")]  # one line per round, nothing else
    assert said == [f"extend, round {i}: 1 choice at the edge of its range; adding lr={v}"
                    for i, v in ((1, "0.01"), (2, "0.1"), (3, "1"))]
    assert r.out.count("plan:") == 1
    t = pd.read_parquet(tmp_path / "e" / "trials.parquet")
    assert sorted(t.lr.unique()) == [1e-4, 1e-3, 0.01, 0.1, 1.0] and len(t) == 10
    stored = tomllib.loads((tmp_path / "e" / "spec.toml").read_text())
    assert [p["value"] for p in stored["extensions"]["points"]] == [0.01, 0.1, 1.0]
    shown = cli("show", tmp_path / "e")
    assert "lr=0.1 " in shown.out and "largest value tried" not in shown.out  # an interior choice: no edge note
    again = cli("sweep", spec, "--out", tmp_path, "--workers", "1")  # the same spec resumes: nothing to run
    assert again.code == 0 and "10 done, 0 to run" in again.out and "extend, round" not in again.out
    # the stored spec.toml runs the same trials on its own
    s = build_sweep(stored, base_dir=str(tmp_path))
    assert sorted(x["id"] for x in s.trials) == sorted(t.trial_id)


def test_a_choice_still_at_the_edge_after_k_points_is_said(tmp_path, cli):
    spec = write(tmp_path / "e.toml", SPEC.replace("extend = 3", "extend = 1").replace("adam", "sgd"))
    r = cli("sweep", spec, "--out", tmp_path, "--workers", "1")
    assert r.code == 0, r.err
    out = " ".join(r.out.split())
    assert "lr=0.01 is the largest value tried, after 1 extension of its range" in out


@pytest.mark.parametrize("value,message", [
    ({"log": [1e-4, 1e-3], "num": 1, "extend": 2}, "extend with num >= 2"),
    ({"log": [1e-4, 1e-3], "num": 3, "extend": 0}, "extend = 0 is not allowed"),
    ({"log": [1e-4, 1e-3], "extend": 2}, "has no num"),
])
def test_bad_extend_is_one_line(value, message):
    with pytest.raises(UserError, match=message):
        build_sweep({"dataset": "iris", "grid": {"lr": value}})


@pytest.mark.slow
def test_killed_mid_extension_it_resumes_to_the_same_trials_and_numbers(tmp_path):
    """Adam on digits from lr [1e-5, 1e-4]: the range grows to 1e-3 and beyond; killed (SIGKILL) once
    the second point is announced, the same command ends with the trials and numbers of a run that
    was never killed."""
    from tests.conftest import count_records, run_dlbench, start_dlbench, wait_for_line

    spec = write(tmp_path / "e.toml", SPEC.replace("iris", "digits").replace("1e-4, 1e-3", "1e-5, 1e-4"))
    whole = run_dlbench("sweep", spec, "--out", tmp_path / "whole", "--workers", "1")
    assert whole.code == 0, whole.err
    p = start_dlbench("sweep", spec, "--out", tmp_path / "cut", "--workers", "1")
    wait_for_line(p, r"adding lr=0\.01$")
    p.kill()
    p.wait()
    assert count_records(tmp_path / "cut" / "e") < count_records(tmp_path / "whole" / "e")
    resumed = run_dlbench("sweep", spec, "--out", tmp_path / "cut", "--workers", "1")
    assert resumed.code == 0, resumed.err
    a, b = result_tables(tmp_path / "whole" / "e"), result_tables(tmp_path / "cut" / "e")
    pd.testing.assert_frame_equal(a[0], b[0])
    pd.testing.assert_frame_equal(a[1], b[1])
    spec_a = tomllib.loads((tmp_path / "whole" / "e" / "spec.toml").read_text())
    spec_b = tomllib.loads((tmp_path / "cut" / "e" / "spec.toml").read_text())
    assert spec_a["extensions"] == spec_b["extensions"]
