"""Sweeps: spec validation, point expansion, identical tables across executors, kill-and-resume."""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sim.cli.main import main
from sim.search.executors import run_local
from sim.search.paths import stable_hash
from sim.search.points import assignments, build_points, fit_width
from sim.search.results import JOURNAL_SUFFIX
from sim.search.spec import SweepSpec

REPO = Path(__file__).resolve().parents[1]

# A 4-layer, 8-expert GQA MoE: a few milliseconds per analytic point.
TINY_MODEL = dict(name="tiny-moe", num_layers=4, hidden_size=1024, num_attention_heads=8, num_query_groups=8,
                  attention="gqa", ffn_hidden_size=2048, vocab_size=4096,
                  moe=dict(num_experts=8, top_k=2, expert_ffn_hidden_size=2048))

# 3 x 4 = 12 points: 6 experts do not divide ep 4 (3 points, infeasible in the worker); 16 experts x
# 8 layers exceed the 0.5B constraint (ruled out before simulating); the other 8 simulate.
TINY_SPEC = dict(
    name="tiny",
    base=dict(model=TINY_MODEL, hardware="h100-sxm", workload=dict(seq_len=1024),
              parallel=dict(devices=16, tp=2, pp=2, ep=4, global_batch_size=64)),
    axes={"model.num_layers": [2, 4, 8], "model.moe.num_experts": [4, 8, 16, 6]},
    constraints={"total_params_b": [None, 0.5]},
    objective="max tokens_per_s",
)


def write_spec(path: Path, spec: dict = TINY_SPEC, **over) -> Path:
    path.write_text(yaml.safe_dump({**spec, **over}, sort_keys=False))
    return path


def sweep(*argv) -> int:
    return main(["sweep", *map(str, argv)])


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[Path, bytes]:
    """The tiny sweep run once, uninterrupted, in this process: (spec path, CSV bytes)."""
    d = tmp_path_factory.mktemp("ref")
    spec = write_spec(d / "tiny.yaml")
    assert sweep(spec, "--out", d / "ref.csv", "--workers", 1) == 0
    return spec, (d / "ref.csv").read_bytes()


def _rows(data: bytes) -> list[dict]:
    import csv
    import io
    return list(csv.DictReader(io.StringIO(data.decode())))


# ---------------------------------------------------------------- spec validation

BAD_SPECS = {
    "unknown top-level key": ({"axis": {"model.hidden_size": [1024]}}, "axis: unknown key"),
    "unknown axis field": ({"axes": {"model.hiden_size": [1024]}}, "model has no key 'hiden_size'"),
    "axis into a null block": ({"axes": {"model.mla.kv_lora_rank": [512]}}, "model.mla is null"),
    "bad objective": ({"objective": "max speed"}, "unknown column 'speed'"),
    "zip lengths": ({"axes": [{"zip": {"model.num_layers": [2, 4], "model.hidden_size": [1024]}}]}, "equal lengths"),
    "two kinds in a group": ({"axes": [{"grid": {"model.num_layers": [2]}, "zip": {"model.hidden_size": [1024]}}]},
                             "exactly one of grid, zip, random"),
    "range without step in a grid": ({"axes": {"model.num_layers": {"min": 2, "max": 8}}}, "needs a step"),
    "constraint on a report column": ({"constraints": {"mfu": [0.1, None]}}, "constraints apply before simulating"),
    "unknown executor": ({"executor": "fast"}, "executor"),
    "unknown preset on an axis": ({"axes": {"model": ["mixtral-8x7b", "no-such-model"]}}, "unknown model preset"),
    "searched field pinned in base": ({"layout": "search"}, "chosen by the layout search"),
    "ZeRO switch pinned in base while layout.zero searches it": (
        {"layout": {"mode": "search", "zero": [1, 3]},
         "base": dict(TINY_SPEC["base"], parallel=dict(devices=16, global_batch_size=64, shard_gradients=True))},
        "pin it with layout.zero"),
    "search options with a fixed layout": ({"layout": {"mode": "fixed", "tp": [2]}}, "only with mode search"),
    "same field twice": ({"axes": [{"grid": {"model.num_layers": [2]}}, {"grid": {"model.num_layers": [4]}}]},
                         "more than one group"),
}


@pytest.mark.parametrize("name", list(BAD_SPECS))
def test_bad_spec_is_one_clear_line(tmp_path, capsys, name):
    over, needle = BAD_SPECS[name]
    spec = write_spec(tmp_path / "bad.yaml", **over)
    assert sweep(spec, "--out", tmp_path / "r.csv", "--workers", 1) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert needle in err and "Traceback" not in err
    assert not (tmp_path / "r.csv").exists()


def test_cli_errors_exit_2_in_a_subprocess(tmp_path):
    spec = write_spec(tmp_path / "bad.yaml", objective="max speed")
    p = subprocess.run([sys.executable, "-m", "sim.cli.main", "sweep", str(spec), "--out", str(tmp_path / "r.txt")],
                       capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 2 and p.stderr.startswith("error: ") and "Traceback" not in p.stderr


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["sweep", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--out", "--workers", "--dask-scheduler", "--limit"):
        assert flag in out


# ---------------------------------------------------------------- points

def test_axis_groups_grid_zip_random_are_deterministic():
    spec = SweepSpec.model_validate(dict(
        base=dict(model="mixtral-8x7b", hardware="h100-sxm", parallel=dict(devices=8, global_batch_size=8)),
        axes=[{"grid": {"model.num_layers": {"min": 8, "max": 16, "step": 4}}},
              {"zip": {"model.hidden_size": [4096, 6144], "model.num_attention_heads": [32, 48]}},
              {"random": {"samples": 3, "fields": {"routing.skew": {"min": 0.1, "max": 10.0, "log": True},
                                                   "routing.seed": {"min": 0, "max": 9}}}}],
        seed=7))
    pts = assignments(spec)
    assert len(pts) == 3 * 2 * 3
    assert [p["model.num_layers"] for p in pts[::6]] == [8, 12, 16]
    assert {(p["model.hidden_size"], p["model.num_attention_heads"]) for p in pts} == {(4096, 32), (6144, 48)}
    assert all(0.1 <= p["routing.skew"] <= 10 and isinstance(p["routing.seed"], int) for p in pts)
    assert assignments(spec) == pts                                    # same seed, same points
    assert assignments(spec.model_copy(update={"seed": 8})) != pts


def test_points_ids_reasons_and_derived_columns():
    spec = SweepSpec.model_validate(TINY_SPEC)
    pts, dup = build_points(spec, "tiny")
    assert dup == 0 and [p.index for p in pts] == list(range(12))
    assert len({p.point_id for p in pts}) == 12
    out = [p for p in pts if p.task is None]
    assert len(out) == 1 and out[0].reason.startswith("constraint total_params_b")
    assert out[0].inputs["model.num_layers"] == 8 and out[0].inputs["model.moe.num_experts"] == 16
    assert all(p.inputs["total_params_b"] > p.inputs["active_params_b"] > 0 for p in pts)
    again, _ = build_points(SweepSpec.model_validate(TINY_SPEC), "tiny")
    assert [p.point_id for p in again] == [p.point_id for p in pts]   # ids are stable


def test_duplicate_points_are_evaluated_once():
    spec = SweepSpec.model_validate({**TINY_SPEC, "axes": {"model.num_layers": [2, 4, 2]}, "constraints": {}})
    pts, dup = build_points(spec, "dup")
    assert dup == 1 and len(pts) == 2


def test_derive_hits_the_published_expert_width():
    """At hidden 7680 / 61 layers / 256 experts, a 718B target gives Pangu Ultra MoE's released
    moe_intermediate_size 2048 (sim/presets/pangu-ultra-moe-718b.yaml)."""
    from sim.config.load import load_model
    from sim.search.spec import FitRule
    m = load_model("pangu-ultra-moe-718b").model_dump()
    m["moe"]["expert_ffn_hidden_size"] = 999
    rule = FitRule(fit="total_params_b", target=718, multiple_of=128,
                   fields=["model.moe.expert_ffn_hidden_size", "model.moe.shared_expert_ffn_hidden_size"])
    assert fit_width(m, rule) == 2048


def test_example_spec_plans_and_holds_the_published_point():
    spec_path = REPO / "experiments" / "ultra_moe_config_search" / "sweep.yaml"
    from sim.search.sweep import plan
    spec, pts, _ = plan(str(spec_path))
    hit = [p for p in pts if (p.inputs["model.hidden_size"], p.inputs["model.num_layers"],
                              p.inputs["model.moe.num_experts"], p.inputs["model.moe.top_k"]) == (7680, 61, 256, 8)]
    assert len(hit) == 1 and hit[0].task is not None
    assert hit[0].inputs["model.moe.expert_ffn_hidden_size"] == 2048
    assert 650 <= hit[0].inputs["total_params_b"] <= 750


# ---------------------------------------------------------------- tables and executors

def test_rows_statuses_and_columns(reference):
    rows = _rows(reference[1])
    assert [int(r["point_index"]) for r in rows] == list(range(12))
    assert len({r["point_id"] for r in rows}) == 12
    status = [r["status"] for r in rows]
    assert status.count("ok") == 8 and status.count("infeasible") == 4 and "error" not in status
    bad = {r["model.moe.num_experts"]: r["reason"] for r in rows if r["status"] == "infeasible"}
    assert "must divide moe.num_experts" in bad["6"] and bad["16"].startswith("constraint total_params_b")
    cols = list(rows[0])
    assert cols[:3] == ["point_index", "point_id", "status"] and cols[-1] == "reason"
    for c in ("model_preset", "model.num_layers", "hardware.name", "parallel.ep", "routing.seed", "total_params_b",
              "active_params_b", "step_time_s", "tokens_per_s", "mfu", "peak_memory_gib", "exposed_comm_s.ep_a2a"):
        assert c in cols, c
    assert all(float(r["tokens_per_s"]) > 0 for r in rows if r["status"] == "ok")


def test_identical_tables_for_1_and_2_workers_and_a_dask_cluster(tmp_path, reference):
    spec, ref = reference
    assert sweep(spec, "--out", tmp_path / "w2.csv", "--workers", 2) == 0
    assert (tmp_path / "w2.csv").read_bytes() == ref
    assert not (tmp_path / f"w2.csv{JOURNAL_SUFFIX}").exists()     # complete: the journal is gone
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as c:
        assert sweep(spec, "--out", tmp_path / "dask.csv", "--dask-scheduler", c.scheduler_address) == 0
    assert (tmp_path / "dask.csv").read_bytes() == ref


def test_parquet_is_deterministic(tmp_path, reference):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    spec, ref = reference
    assert sweep(spec, "--out", tmp_path / "a.parquet", "--workers", 1) == 0
    assert sweep(spec, "--out", tmp_path / "b.parquet", "--workers", 2) == 0
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    df = pd.read_parquet(tmp_path / "a.parquet")
    assert len(df) == 12 and df["point_id"].is_unique and set(df["status"]) == {"ok", "infeasible"}


def _crash_once(marker: str, batch: list) -> list:
    """A batch function whose first call (across processes) kills its worker process."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return [x * 10 for x in batch]
    os.close(fd)
    os._exit(1)


def test_process_pool_resubmits_after_a_worker_dies(tmp_path):
    batches = [[i, i + 100] for i in range(6)]
    out = list(run_local(batches, functools.partial(_crash_once, str(tmp_path / "crashed")), workers=2))
    assert (tmp_path / "crashed").exists()
    assert sorted(out) == sorted([[i * 10, (i + 100) * 10] for i in range(6)])   # every batch exactly once


def test_missing_dask_is_one_line(tmp_path, capsys, monkeypatch, reference):
    monkeypatch.setitem(sys.modules, "distributed", None)        # import distributed -> ImportError
    assert sweep(reference[0], "--out", tmp_path / "r.csv", "--dask-scheduler", "tcp://127.0.0.1:1") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --dask-scheduler needs dask.distributed") and err.count("\n") == 1


# ---------------------------------------------------------------- resume

def _journal_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines()[1:]:
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
    return rows


def test_kill_and_resume_gives_the_uninterrupted_table(tmp_path, reference):
    spec, ref = reference
    out = tmp_path / "killed.csv"
    journal = Path(f"{out}{JOURNAL_SUFFIX}")
    env = {**os.environ, "MOE_SIM_SWEEP_POINT_DELAY_S": "0.25", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "sim.cli.main", "sweep", str(spec), "--out", str(out),
                             "--workers", "1"], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while sum(r["status"] == "ok" for r in _journal_rows(journal)) < 2:
            assert proc.poll() is None, "sweep finished before it could be killed"
            assert time.monotonic() < deadline, "no rows reached the journal"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not out.exists()
    done = _journal_rows(journal)
    assert 2 <= len(done) < 12
    with open(journal, "a") as f:
        f.write('{"point_index": 11, "point_id": "torn wri')   # a write cut short by the kill
    assert sweep(spec, "--out", out, "--workers", 2) == 0
    assert out.read_bytes() == ref
    ids = [r["point_id"] for r in _rows(out.read_bytes())]
    assert len(ids) == len(set(ids)) == 12
    assert not journal.exists()


def test_limit_keeps_the_journal_and_a_later_run_continues(tmp_path, reference, capsys):
    spec, ref = reference
    out = tmp_path / "r.csv"
    assert sweep(spec, "--out", out, "--workers", 1, "--limit", 5) == 0
    assert len(_rows(out.read_bytes())) == 5
    assert len(_journal_rows(Path(f"{out}{JOURNAL_SUFFIX}"))) == 5
    assert sweep(spec, "--out", out, "--workers", 1) == 0
    assert out.read_bytes() == ref
    assert "5 from an earlier run" in capsys.readouterr().out


def test_a_different_spec_with_the_same_out_is_refused(tmp_path, capsys):
    spec = write_spec(tmp_path / "a.yaml")
    out = tmp_path / "r.csv"
    assert sweep(spec, "--out", out, "--workers", 1, "--limit", 3) == 0
    other = write_spec(tmp_path / "b.yaml", axes={"model.num_layers": [2, 4]})
    capsys.readouterr()
    assert sweep(other, "--out", out, "--workers", 1) == 2
    err = capsys.readouterr().err
    assert "different sweep spec" in err and err.count("\n") == 1


def test_point_id_is_a_hash_of_the_inputs():
    spec = SweepSpec.model_validate(TINY_SPEC)
    p = build_points(spec, "tiny")[0][0]
    assert p.point_id == stable_hash({"run": p.task["run"], "executor": "analytic", "check_memory": True,
                                      "layout": None, "objective": None})


def test_a_second_sweep_on_the_same_out_is_refused_while_the_first_runs(tmp_path, capsys, reference):
    from sim.search.results import Journal
    spec = reference[0]
    out = tmp_path / "r.csv"
    from sim.search.sweep import plan
    held = Journal(Path(f"{out}{JOURNAL_SUFFIX}"), plan(str(spec))[0].spec_hash())
    try:
        assert sweep(spec, "--out", out, "--workers", 1) == 2
        assert "in use by another moe-sim sweep" in capsys.readouterr().err
    finally:
        held.close()


def test_progress_line_has_rate_and_eta():
    import io

    from sim.search.progress import Progress
    buf = io.StringIO()
    bar = Progress(10, stream=buf, enabled=True, min_interval_s=0.0)
    bar.update(4)
    bar.close()
    text = buf.getvalue()
    assert "4/10 points (40%)" in text and "points/s" in text and "ETA" in text
    quiet = io.StringIO()
    Progress(10, stream=quiet).update(10)          # StringIO is not a terminal: nothing written
    assert quiet.getvalue() == ""
