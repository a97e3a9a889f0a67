"""Smoke tests of the two studies built on the config search (experiments/ultra_moe_config_search,
experiments/npu_vs_gpu): reduced runs complete, results.csv has the expected columns and rows,
run_info.json records the run, plot.py writes non-trivial PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"

ULTRA_COLUMNS = [
    "global_batch_sequences", "point_index", "point_id", "status", "hidden_size", "num_layers",
    "num_experts", "top_k",
    "expert_ffn_hidden_size", "total_params_b", "active_params_b", "published_config", "tp", "pp",
    "vpp", "ep_effective", "micro_batch_sequences", "recompute", "dp", "num_microbatches",
    "layouts_enumerated", "layouts_screened", "step_time_s", "tokens_per_s",
    "tokens_per_s_per_device", "mfu_fraction", "mfu_rank", "tokens_per_s_rank", "bubble_fraction",
    "peak_memory_gib", "exposed_ep_a2a_s", "exposed_pp_p2p_s", "exposed_dp_s", "exposed_tp_s",
    "forward_s", "backward_s", "idle_s", "optimizer_s", "executor", "reason",
]
NPU_COLUMNS = [
    "model", "hardware", "hardware_kind", "num_devices", "global_batch_sequences", "seq_len_tokens",
    "status", "tp", "pp", "vpp", "ep", "micro_batch_sequences", "recompute", "schedule", "dp",
    "num_microbatches", "layout", "layouts_enumerated", "layouts_screened",
    "layouts_des_over_memory",
    "step_time_s", "tokens_per_s", "tokens_per_s_per_device", "mfu_fraction", "peak_bf16_tflops",
    "peak_memory_gib", "memory_limit_gib", "device_power_w", "tokens_per_s_per_kw", "reason",
]
FIGURES = {
    "ultra_moe_config_search": ["pareto_tokens_vs_active.png", "mfu_ranking.png"],
    "npu_vs_gpu": ["throughput_per_device_and_kw.png"],
}


def _run_info(d: Path) -> dict:
    info = json.loads((d / "run_info.json").read_text())
    assert info["config"]["reduced"] is True
    assert "moe_sim_version" in info and "--reduced" in info["command"]
    return info


def test_ultra_moe_config_search_csv(outputs):
    d = outputs["ultra_moe_config_search"]
    df = pd.read_csv(d / "results.csv")
    assert list(df.columns) == ULTRA_COLUMNS
    assert len(df) > 0
    keys = list(zip(df["global_batch_sequences"], df["point_index"], strict=True))
    assert keys == sorted(keys)
    assert df["global_batch_sequences"].nunique() == 2    # sweep.yaml's batch and a larger one
    ok = df[df["status"] == "ok"]
    assert len(ok) > 0 and (ok["tokens_per_s"] > 0).all() and ok["mfu_fraction"].between(0, 1).all()
    for _, g in ok.groupby("global_batch_sequences"):
        # ranks 1..n over the simulated shapes of one batch, best MFU first
        assert sorted(g["mfu_rank"]) == list(range(1, len(g) + 1))
        assert g.sort_values("mfu_rank")["mfu_fraction"].is_monotonic_decreasing
    # the published Pangu Ultra MoE shape is in the table once per batch, simulated, ~718B
    pub = df[df["published_config"]]
    assert len(pub) == 2 and (pub["status"] == "ok").all()
    assert (abs(pub["total_params_b"] - 718) < 5).all()
    # rows ruled out before simulating say why
    assert (df.loc[df["status"] != "ok", "reason"].str.len() > 0).all()
    info = _run_info(d)
    sweeps = info["config"]["sweeps"]
    assert [s["spec_resolved"]["objective"] for s in sweeps] == ["max mfu"] * 2
    batches = sorted(df["global_batch_sequences"].unique())
    assert sorted(s["global_batch_size"] for s in sweeps) == batches


def test_npu_vs_gpu_csv(outputs):
    d = outputs["npu_vs_gpu"]
    df = pd.read_csv(d / "results.csv")
    assert list(df.columns) == NPU_COLUMNS
    assert len(df) > 0
    keys = list(zip(df["model"], df["hardware"], strict=True))
    assert keys == sorted(keys)
    ok = df[df["status"] == "ok"]
    assert len(ok) > 0 and set(ok["hardware_kind"]) <= {"npu", "gpu"}
    assert (ok["peak_memory_gib"] <= ok["memory_limit_gib"]).all()
    per_kw = ok["tokens_per_s_per_device"] / (ok["device_power_w"] / 1000)
    assert ((ok["tokens_per_s_per_kw"] - per_kw).abs() <= 1e-6 * per_kw).all()
    assert (ok["tokens_per_s"] - ok["tokens_per_s_per_device"] * ok["num_devices"]).abs().max() \
        <= 1e-6 * ok["tokens_per_s"].max()
    assert df["num_devices"].nunique() == 1 and df["global_batch_sequences"].nunique() == 1
    _run_info(d)


@pytest.mark.parametrize("study,name", [(s, f) for s, fs in FIGURES.items() for f in fs])
def test_figures_written(outputs, study, name):
    png = outputs[study] / name
    assert png.is_file() and png.stat().st_size > 5_000
