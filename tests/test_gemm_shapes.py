"""GEMM shape inventory (sim.model.gemm_shapes) and the measured-curve tools (sim.cluster.gemm_fit).

The inventory must carry exactly the GEMM FLOPs the FLOP accounting counts (independently written, in
sim.model.flops), and its backward shapes the transposes the backward of a GEMM runs. The fit tools are
checked by round trips: data generated from a known curve gives that curve back.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from sim.cluster.compute import ComputeModel
from sim.cluster.gemm_fit import Measured, curve_vs_measured, fit_curve, read_sweep, sustained_ratio
from sim.config import ParallelConfig, Workload, load_hardware, load_model
from sim.model import flops_per_token
from sim.model.gemm_shapes import gemm_inventory, unique_shapes

ROOT = Path(__file__).resolve().parents[1]

CASES = {
    # name: (model, parallel kwargs, seq)
    "gpt3-175b tp4 pp8 sp": ("gpt3-175b", dict(devices=512, tp=4, pp=8, sequence_parallel=True,
                                                micro_batch_size=1, global_batch_size=256), 2048),
    "qwen3 tp2 ep32 pp8 sp": ("qwen3-235b-a22b", dict(devices=256, tp=2, pp=8, ep=32, sequence_parallel=True,
                                                      micro_batch_size=1, global_batch_size=256), 4096),
    "deepseek-v2 (MLA) ep40 pp4": ("deepseek-v2", dict(devices=160, tp=1, pp=4, ep=40,
                                                       micro_batch_size=1, global_batch_size=160), 4096),
    "llama3-405b tp8 cp2 pp9": ("llama3-405b", dict(devices=2304, tp=8, cp=2, pp=9, sequence_parallel=True,
                                                    micro_batch_size=1, global_batch_size=1008), 8192),
}


def _case(name, **extra):
    model_name, par_kw, seq = CASES[name]
    model = load_model(model_name)
    par = ParallelConfig(**{"recompute": "none", **par_kw, **extra})
    return model, par, Workload(seq_len=seq)


@pytest.mark.parametrize("name", list(CASES))
def test_inventory_forward_flops_match_the_flop_accounting(name):
    """Forward GEMM FLOPs of one step summed over all devices = tokens x per-token GEMM FLOPs."""
    model, par, work = _case(name)
    inv = gemm_inventory(model, par, work)
    per_device = sum(g.step_flops for g in inv if g.pass_ == "fprop")
    fpt = flops_per_token(model, work.seq_len)
    gemm_per_token = (fpt.attention_proj + fpt.dense_ffn + fpt.routed_experts + fpt.shared_experts
                      + fpt.router + fpt.lm_head)
    tokens = par.global_batch_size * work.seq_len
    assert per_device * par.devices == pytest.approx(tokens * gemm_per_token, rel=1e-3)


@pytest.mark.parametrize("name", list(CASES))
def test_backward_gemms_are_the_transposes_with_the_same_flops(name):
    model, par, work = _case(name)
    inv = gemm_inventory(model, par, work)
    by = {(g.name, g.pass_): g for g in inv}
    for (gname, pass_), f in by.items():
        if pass_ != "fprop":
            continue
        d, w = by[(gname, "dgrad")], by[(gname, "wgrad")]
        assert (d.m, d.n, d.k) == (f.m, f.k, f.n)          # dX = dY @ W^T
        assert (w.m, w.n, w.k) == (f.k, f.n, f.m)          # dW = X^T @ dY: the reduction runs over tokens
        assert d.count == w.count == f.count               # no recompute here
        assert d.flops == w.flops == f.flops


def test_full_recompute_doubles_only_the_forward_gemms():
    model, par, work = _case("gpt3-175b tp4 pp8 sp")
    base = gemm_inventory(model, par, work)
    full = gemm_inventory(model, par.model_copy(update={"recompute": "full"}), work)
    for a, b in zip(base, full, strict=True):
        assert b.count == (2 * a.count if a.pass_ == "fprop" else a.count)


def test_selective_recompute_repeats_the_named_modules_only():
    model, par, work = _case("deepseek-v2 (MLA) ep40 pp4")
    sel = gemm_inventory(model, par.model_copy(update={"recompute": "selective",
                                                       "recompute_modules": ["mla_up_proj"]}), work)
    base = {(g.name, g.pass_): g.count for g in gemm_inventory(model, par, work)}
    for g in sel:
        doubled = g.pass_ == "fprop" and g.name in ("attn.q_up", "attn.kv_up")
        assert g.count == (2 * base[(g.name, g.pass_)] if doubled else base[(g.name, g.pass_)])


def test_fp8_keeps_router_and_lm_head_in_bf16_and_experts_are_grouped():
    model, par, work = _case("qwen3 tp2 ep32 pp8 sp")
    inv = gemm_inventory(model, par, Workload(seq_len=4096, precision="fp8"))
    prec = {g.name: g.precision for g in inv}
    assert prec["moe.router"] == prec["lm_head"] == "bf16"
    assert prec["attn.qkv"] == prec["expert.fc1"] == "fp8"
    e = model.moe
    fc1 = next(g for g in inv if g.name == "expert.fc1" and g.pass_ == "fprop")
    assert fc1.grouped == e.num_experts // par.ep_effective
    # balanced load: each of the ep ranks' tsp tokens goes to top_k of E experts
    assert fc1.m == 4096 // 2 * e.top_k * par.ep_effective // e.num_experts


def test_unique_shapes_shares_sum_to_one_and_merge_equal_shapes():
    model, par, work = _case("qwen3 tp2 ep32 pp8 sp")
    inv = gemm_inventory(model, par, work)
    rows = unique_shapes(inv)
    assert sum(r[5] for r in rows) == pytest.approx(1.0)
    assert len({r[:5] for r in rows}) == len(rows)
    assert len(rows) < len(inv)                              # e.g. dgrad of one GEMM = fprop of another shape
    assert [r[5] for r in rows] == sorted((r[5] for r in rows), reverse=True)


# ---- measured-curve tools -------------------------------------------------------------------------

def _synthetic(hw_name: str, scale: float = 1.0, mode: str = "burst") -> list[Measured]:
    """Rows 'measured' as the profile's own curve x scale at the validation shapes of that profile."""
    hw = load_hardware(hw_name)
    cm = ComputeModel(hw)
    rows = []
    with open(ROOT / "benchmarks" / "gpu" / "shapes.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["hardware"] != hw_name or r["precision"] != "bf16":
                continue
            m, n, k = int(r["m"]), int(r["n"]), int(r["k"])
            eff = float(cm.efficiency(2.0 * m * n * k)) * scale
            rows.append(Measured(m, n, k, "bf16", mode, eff, float(r["share"])))
    return rows


def test_profile_compared_with_its_own_curve_is_exact_and_scales_with_the_data():
    hw = load_hardware("h100-sxm")
    ratio, pairs = curve_vs_measured(_synthetic("h100-sxm"), hw)
    assert len(pairs) > 20 and ratio == pytest.approx(1.0)
    ratio, _ = curve_vs_measured(_synthetic("h100-sxm", scale=0.8), hw)
    assert ratio == pytest.approx(1 / 0.8)                   # the profile would be 25% optimistic


def test_fit_recovers_the_generating_curve_where_shapes_exist():
    hw = load_hardware("h100-sxm")
    cm = ComputeModel(hw)
    pts = fit_curve(_synthetic("h100-sxm"))
    assert pts, "the validation shapes cover some grid points"
    for g, eff, n in pts:
        assert n >= 1
        # a weighted median of curve values within half a decade lies between the curve's values at the
        # window's edges (the curve is monotone)
        lo, hi = (float(cm.efficiency(g * 1e9 * 10 ** s)) for s in (-0.5, 0.5))
        assert lo - 1e-12 <= eff <= hi + 1e-12


def test_sustained_ratio_pairs_shapes_measured_both_ways():
    burst = _synthetic("h100-sxm")
    sus = [Measured(r.m, r.n, r.k, r.precision, "sustained", r.efficiency * 0.9, r.share) for r in burst[:3]]
    assert sustained_ratio(burst + sus) == pytest.approx(0.9)
    assert sustained_ratio(burst) is None


def test_sweep_csv_round_trip(tmp_path):
    path = tmp_path / "m.csv"
    cols = ["device", "precision", "m", "n", "k", "grouped", "share", "mode", "efficiency"]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        w.writerow(dict(device="x", precision="bf16", m=4096, n=4096, k=4096, grouped=1, share=0.5,
                        mode="burst", efficiency=0.79))
    (row,) = read_sweep(str(path))
    assert (row.m, row.precision, row.mode, row.efficiency) == (4096, "bf16", "burst", 0.79)
    assert row.flops == 2.0 * 4096**3


def test_shapes_csv_is_current():
    """benchmarks/gpu/shapes.csv is what benchmarks/gpu/shapes.py writes from validation/ today."""
    sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))
    try:
        from shapes import shape_table
    finally:
        sys.path.pop(0)
    rows = shape_table()
    with open(ROOT / "benchmarks" / "gpu" / "shapes.csv", newline="") as f:
        committed = list(csv.DictReader(f))
    assert [{k: str(v) for k, v in r.items()} for r in rows] == committed


def test_sweep_script_without_torch_or_gpu_says_so_in_one_line(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu" / "gemm_sweep.py"),
                          "--out", str(tmp_path / "x.csv")], capture_output=True, text=True)
    try:
        import torch  # noqa: F401
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        pytest.skip("a GPU is present: the sweep would run")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "gemm_sweep:" in out.stderr


def test_hopper_small_gemm_points_are_the_openxla_measurement():
    """The h100-sxm / h800 / h200 curve points at 0.1, 1 and 10 GFLOP are recomputed from the committed
    public measurement (hw_profiles/measurements/openxla-sm90-bf16-gemm.csv), as the profile comments say."""
    path = ROOT / "hw_profiles" / "measurements" / "openxla-sm90-bf16-gemm.csv"
    with open(path, newline="") as f:
        rows = [Measured(int(r["m"]), int(r["n"]), int(r["k"]), "bf16", "burst",
                         int(r["bf16_flop_per_s"]) / 989.4e12, 1.0) for r in csv.DictReader(f)]
    assert len(rows) == 125
    fitted = {g: round(e, 3) for g, e, _ in fit_curve(rows) if g in (0.1, 1.0, 10.0)}
    assert len(fitted) == 3
    for name in ("h100-sxm", "h800", "h200"):
        curve = dict(map(tuple, load_hardware(name).device.gemm_efficiency))
        assert {g: curve[g] for g in fitted} == fitted, name
