"""Smoke tests of the studies under experiments/: reduced runs, CSV shape, figures, determinism."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_study_script

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"

MOGE_COLUMNS = [
    "part", "model", "hardware", "router", "skew", "ep_devices", "tokens_per_batch", "num_devices",
    "pp_stages", "dp_ranks", "global_batch_sequences", "executor", "num_samples",
    "imbalance_score_ratio", "p_imbalance_gt0_prob", "max_over_mean_device_load_ratio",
    "step_time_s", "tokens_per_s_per_device", "mfu_frac", "exposed_ep_a2a_s",
    "peak_memory_gib", "fits_memory_bool",
]
A2A_COLUMNS = [
    "hardware", "devices_per_node", "a2a_algorithm", "ep_devices", "nodes_spanned", "num_devices",
    "pp_stages", "dp_ranks", "global_batch_sequences", "executor", "skew",
    "step_time_s", "exposed_ep_a2a_s", "ep_a2a_share_of_step_frac", "tokens_per_s_per_device",
    "mfu_frac", "imbalance_score_ratio", "max_over_mean_device_load_ratio", "peak_memory_gib",
    "fits_memory_bool",
]
FIGURES = {
    "moge_vs_moe": ["imbalance_vs_ep.png", "step_time_vs_ep.png", "p_imbalance_vs_tokens.png"],
    "a2a_flat_vs_hierarchical": ["a2a_share_vs_nodes.png", "a2a_time_vs_ep.png"],
    "validation": ["validation.png"],
    "zero_sharding": ["zero_throughput_vs_devices.png", "zero_memory_256.png"],
}


def _finite(s: pd.Series) -> bool:
    return bool(len(s)) and all(math.isfinite(float(v)) for v in s)


def test_moge_vs_moe_csv(outputs):
    df = pd.read_csv(outputs["moge_vs_moe"] / "results.csv")
    assert list(df.columns) == MOGE_COLUMNS
    step, mc = df[df["part"] == "step"], df[df["part"] == "mc"]
    assert len(step) > 0 and len(mc) > 0
    assert set(step["router"]) == {"topk", "group_limited", "moge", "balanced"}
    for col in ("imbalance_score_ratio", "max_over_mean_device_load_ratio", "step_time_s",
                "tokens_per_s_per_device", "exposed_ep_a2a_s", "peak_memory_gib"):
        assert _finite(step[col]), col
    assert (step["step_time_s"] > 0).all()
    assert (step["max_over_mean_device_load_ratio"] >= 1 - 1e-12).all()
    for col in ("imbalance_score_ratio", "p_imbalance_gt0_prob", "max_over_mean_device_load_ratio"):
        assert _finite(mc[col]), col
    assert mc["p_imbalance_gt0_prob"].between(0, 1).all()
    # MoGE with one group per device is perfectly balanced: in the MC and at EP = groups = 8
    assert (mc.loc[mc["router"] == "moge", "imbalance_score_ratio"] == 0).all()
    assert (step.loc[(step["router"] == "moge") & (step["ep_devices"] == 8),
                     "imbalance_score_ratio"] == 0).all()
    assert (mc.loc[mc["router"] == "topk", "p_imbalance_gt0_prob"] > 0.9).all()
    info = json.loads((outputs["moge_vs_moe"] / "run_info.json").read_text())
    assert info["config"]["reduced"] is True and "moe_sim_version" in info and "--reduced" in info["command"]


def test_validation_csv(outputs):
    df = pd.read_csv(outputs["validation"] / "results.csv")
    assert list(df.columns) == ["name", "metric", "kind", "published", "predicted", "error_pct", "fits"]
    assert len(df) >= 1 and _finite(df["predicted"]) and _finite(df["error_pct"])


def test_skew_sensitivity_runs_every_variant(tmp_path):
    """One fast dropless entry: its stated preset and the two measured-jitter variants, each more
    imbalanced (max/mean) than the last and so slower (step time up: a higher error)."""
    run_study_script("validation", "skew_sensitivity.py", "--out", str(tmp_path),
                     "--only", "qwen3-235b-256xh100-tp2ep8-fsdp")
    df = pd.read_csv(tmp_path / "skew_sensitivity.csv")
    assert list(df["skew"]) == ["aux_loss", "aux_loss_dynamic", "global_batch_dynamic"]
    assert list(df["stated"]) == [True, False, False]
    assert df["max_over_mean"].is_monotonic_increasing and df["max_over_mean"].iloc[0] > 1.0
    assert df["error_pct"].is_monotonic_increasing and df["error_pct"].iloc[2] > df["error_pct"].iloc[0]


def test_zero_sharding_csv(outputs):
    """Reduced run: 256 GPUs, ZeRO-1/2/3 x fp32/bf16. The memory parts add up to the peak, only the
    weights differ between ZeRO-2 and ZeRO-3, and ZeRO-3 with fp32 reductions is the slowest."""
    df = pd.read_csv(outputs["zero_sharding"] / "results.csv")
    assert len(df) == 6 and set(df["zero_stage"]) == {1, 2, 3}
    parts = df[["weights_gib", "gradients_gib", "optimizer_gib", "activations_gib", "transient_gib"]].sum(axis=1)
    assert ((parts - df["peak_memory_gib"]).abs() < 1e-6).all()
    z = df.set_index(["zero_stage", "grad_reduce_dtype"])
    assert z.loc[(3, "bf16"), "weights_gib"] < z.loc[(2, "bf16"), "weights_gib"] / 5
    assert z.loc[(3, "bf16"), "gradients_gib"] == pytest.approx(z.loc[(2, "bf16"), "gradients_gib"])
    assert z.loc[(2, "bf16"), "gradients_gib"] < z.loc[(1, "bf16"), "gradients_gib"] / 5
    assert df["step_time_s"].idxmax() == df.index[(df["zero_stage"] == 3) & (df["grad_reduce_dtype"] == "fp32")][0]


def test_a2a_csv(outputs):
    df = pd.read_csv(outputs["a2a_flat_vs_hierarchical"] / "results.csv")
    assert list(df.columns) == A2A_COLUMNS
    assert len(df) > 0
    assert set(df["a2a_algorithm"]) == {"flat", "hierarchical"}
    for col in ("step_time_s", "exposed_ep_a2a_s", "ep_a2a_share_of_step_frac", "peak_memory_gib"):
        assert _finite(df[col]), col
    assert df["ep_a2a_share_of_step_frac"].between(0, 1).all()
    assert (df["nodes_spanned"] * df["devices_per_node"] >= df["ep_devices"]).all()
    # inside one node the two algorithms are the same
    one = df[df["nodes_spanned"] == 1].pivot_table(index=["hardware", "ep_devices"],
                                                   columns="a2a_algorithm", values="step_time_s")
    assert len(one) and (one["flat"] == one["hierarchical"]).all()


@pytest.mark.parametrize("study", list(FIGURES))
def test_figures_written(outputs, study):
    for name in FIGURES[study]:
        p = outputs[study] / name
        assert p.exists() and p.stat().st_size > 5000, name


@pytest.mark.parametrize("study", list(FIGURES))
def test_reduced_run_is_deterministic(outputs, study, tmp_path):
    run_study_script(study, "run.py", "--reduced", "--out", str(tmp_path))
    assert (tmp_path / "results.csv").read_bytes() == (outputs[study] / "results.csv").read_bytes()
