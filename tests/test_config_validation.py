"""Every validation rule of the config layer: a bad config is rejected with a message naming
the field and the problem; loaders turn every failure into a one-line UserError."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from sim.config import (
    HardwareProfile,
    ModelConfig,
    MoEConfig,
    ParallelConfig,
    Workload,
    compat_errors,
    load_hardware,
    load_model,
)
from sim.config.load import parse
from sim.errors import UserError

REPO = Path(__file__).resolve().parents[1]
H100 = REPO / "hw_profiles" / "h100-sxm.yaml"


# --- helpers ------------------------------------------------------------------------------------

def dense(**kw) -> dict:
    d = dict(name="tiny", num_layers=4, hidden_size=64, num_attention_heads=8, ffn_hidden_size=256, vocab_size=1000)
    d.update(kw)
    return d


def moe_block(**kw) -> dict:
    d = dict(num_experts=16, top_k=2, expert_ffn_hidden_size=128)
    d.update(kw)
    return d


def moe_model(**moe_kw) -> dict:
    return dense(moe=moe_block(**moe_kw))


MLA = dict(q_lora_rank=32, kv_lora_rank=16, qk_nope_head_dim=16, qk_rope_head_dim=8, v_head_dim=16)


def model_error(data: dict) -> str:
    """The one-line UserError message for a bad model dict."""
    with pytest.raises(UserError) as ei:
        parse(ModelConfig, data, "model test")
    msg = str(ei.value)
    assert "\n" not in msg, msg
    assert msg.startswith("model test: ")
    return msg


def par_error(**kw) -> str:
    with pytest.raises(UserError) as ei:
        parse(ParallelConfig, kw, "parallel")
    msg = str(ei.value)
    assert "\n" not in msg, msg
    return msg


def par(**kw) -> ParallelConfig:
    kw.setdefault("global_batch_size", 64)
    return ParallelConfig(**kw)


# --- ModelConfig ----------------------------------------------------------------------------------

def test_valid_models_parse():
    assert parse(ModelConfig, dense(), "m").moe is None
    m = parse(ModelConfig, moe_model(), "m")
    assert m.is_moe and m.num_moe_layers == 4
    assert parse(ModelConfig, dense(attention="mla", mla=MLA), "m").mla.kv_lora_rank == 16
    assert parse(ModelConfig, dense(attention="gqa", num_query_groups=2), "m").kv_heads == 2


def test_top_k_must_not_exceed_num_experts():
    msg = model_error(moe_model(num_experts=4, top_k=5))
    assert "moe.top_k (5)" in msg and "num_experts (4)" in msg


def test_moge_needs_num_groups():
    msg = model_error(moe_model(router="moge"))
    assert "moe.num_groups" in msg and "moge" in msg


def test_moge_needs_num_experts_divisible_by_groups():
    msg = model_error(moe_model(router="moge", num_experts=16, top_k=3, num_groups=3))
    assert "num_experts (16)" in msg and "num_groups (3)" in msg


def test_moge_needs_top_k_divisible_by_groups():
    msg = model_error(moe_model(router="moge", num_experts=16, top_k=2, num_groups=4))
    assert "moe.top_k (2)" in msg and "num_groups (4)" in msg and "moge" in msg


def test_moge_valid():
    m = parse(ModelConfig, moe_model(router="moge", num_experts=16, top_k=4, num_groups=4), "m")
    assert m.moe.router == "moge"


def test_group_limited_needs_num_groups():
    msg = model_error(moe_model(router="group_limited", topk_groups=2))
    assert "moe.num_groups" in msg and "group_limited" in msg


def test_group_limited_needs_topk_groups():
    msg = model_error(moe_model(router="group_limited", num_groups=4))
    assert "moe.topk_groups" in msg and "group_limited" in msg


def test_group_limited_topk_groups_le_num_groups():
    msg = model_error(moe_model(router="group_limited", num_groups=4, topk_groups=5))
    assert "moe.topk_groups (5)" in msg and "num_groups (4)" in msg


def test_group_limited_groups_must_hold_top_k():
    # 16 experts / 8 groups = 2 per group; 1 group x 2 experts < top_k 4
    msg = model_error(moe_model(router="group_limited", num_groups=8, topk_groups=1, top_k=4))
    assert "moe.topk_groups (1)" in msg and "moe.top_k (4)" in msg


def test_gqa_needs_num_query_groups():
    msg = model_error(dense(attention="gqa"))
    assert "num_query_groups" in msg and "gqa" in msg


def test_num_query_groups_must_divide_heads():
    msg = model_error(dense(attention="gqa", num_query_groups=3))
    assert "num_query_groups (3)" in msg and "num_attention_heads (8)" in msg


def test_mla_needs_mla_block():
    msg = model_error(dense(attention="mla"))
    assert msg.startswith("model test: mla:") and "required" in msg


def test_mla_block_without_mla_attention():
    msg = model_error(dense(attention="mha", mla=MLA))
    assert "mla" in msg and "'mha'" in msg


def test_hidden_must_divide_by_heads_without_head_dim():
    msg = model_error(dense(hidden_size=60, num_attention_heads=8))
    assert "hidden_size (60)" in msg and "num_attention_heads (8)" in msg
    # an explicit head_dim lifts the rule
    assert parse(ModelConfig, dense(hidden_size=60, num_attention_heads=8, head_dim=8), "m").dim_per_head == 8


def test_first_k_dense_layers_le_num_layers():
    msg = model_error(dense(first_k_dense_layers=5, num_layers=4))
    assert "first_k_dense_layers (5)" in msg and "num_layers (4)" in msg


def test_unknown_key_forbidden():
    msg = model_error(dense(num_expertz=8))
    assert "num_expertz: unknown key" in msg


def test_unknown_nested_key_forbidden():
    msg = model_error(moe_model(topk=2))
    assert "moe.topk: unknown key" in msg


def test_wrong_type():
    msg = model_error(dense(num_layers="many"))
    assert "num_layers" in msg and "integer" in msg


def test_wrong_literal():
    msg = model_error(dense(attention="flash"))
    assert "attention" in msg


@pytest.mark.parametrize("field", ["num_layers", "hidden_size", "num_attention_heads", "vocab_size", "ffn_hidden_size"])
def test_positive_fields(field):
    msg = model_error(dense(**{field: 0}))
    assert field in msg and "greater than 0" in msg


def test_missing_required_field():
    d = dense()
    del d["vocab_size"]
    msg = model_error(d)
    assert "vocab_size" in msg and "required" in msg.lower()


def test_moe_config_rule_direct():
    with pytest.raises(ValidationError, match=r"moe\.top_k \(9\) must be <= moe\.num_experts \(8\)"):
        MoEConfig(num_experts=8, top_k=9, expert_ffn_hidden_size=16)


# --- ParallelConfig --------------------------------------------------------------------------------

def test_parallel_defaults():
    p = par(devices=16, tp=2, pp=2)
    assert p.dp == 4 and p.ep_effective == 1 and p.etp == 1 and p.num_microbatches == 16
    assert p.schedule_name == "1f1b"


def test_devices_divisible_by_tp_pp_cp():
    msg = par_error(devices=10, tp=4, global_batch_size=8)
    assert "devices (10)" in msg and "tp*pp*cp" in msg


def test_devices_divisible_by_tp_pp_cp_with_cp():
    msg = par_error(devices=16, tp=2, pp=2, cp=3, global_batch_size=8)
    assert "devices (16)" in msg and "2*2*3=12" in msg


def test_ep_times_expert_tp_must_divide_attention_ranks():
    msg = par_error(devices=8, ep=3, global_batch_size=8)
    assert "ep*expert_tp (3*1)" in msg and "tp*cp*dp = 8" in msg


def test_expert_tp_counts_against_attention_ranks():
    # ep 4 x expert_tp 4 = 16 > the 8 ranks of a stage
    msg = par_error(devices=8, ep=4, expert_tp=4, global_batch_size=8)
    assert "ep*expert_tp (4*4)" in msg and "16" in msg


def test_gbs_divisible_by_mbs_dp():
    msg = par_error(devices=8, global_batch_size=12, micro_batch_size=1)
    assert "global_batch_size (12)" in msg and "micro_batch_size*dp" in msg and "1*8=8" in msg


def test_vpp_needs_pp():
    msg = par_error(devices=8, vpp=2, global_batch_size=8)
    assert "vpp > 1 needs pp > 1" in msg


def test_interleaved_needs_microbatches_divisible_by_pp():
    # dp = 2, m = 6 / 2 = 3, pp = 4
    msg = par_error(devices=8, pp=4, vpp=2, global_batch_size=6)
    assert "micro-batches (3)" in msg and "pp (4)" in msg
    assert par(devices=8, pp=4, vpp=2, global_batch_size=8).schedule_name == "interleaved"


def test_explicit_interleaved_needs_vpp():
    msg = par_error(devices=8, pp=2, schedule="interleaved", global_batch_size=8)
    assert "interleaved" in msg and "vpp > 1" in msg


def test_1f1b_takes_vpp_1():
    msg = par_error(devices=8, pp=2, vpp=2, schedule="1f1b", global_batch_size=8)
    assert "'1f1b'" in msg and "vpp = 1" in msg


def test_dualpipe_needs_even_pp():
    msg = par_error(devices=9, pp=3, schedule="dualpipe", global_batch_size=9)
    assert "dualpipe" in msg and "even pp" in msg


def test_tp_extends_ep_semantics():
    p = par(devices=16, tp=4, ep=2, tp_extends_ep=True)
    assert p.ep_effective == 8
    assert p.etp == 1
    assert p.expert_dp == (4 * 1 * 4) // 8
    q = par(devices=16, tp=4, ep=2, expert_tp=2)
    assert q.ep_effective == 2 and q.etp == 2 and q.expert_dp == 4


def test_tp_extends_ep_rejects_expert_tp():
    msg = par_error(devices=16, tp=4, ep=2, expert_tp=2, tp_extends_ep=True, global_batch_size=8)
    assert "expert_tp must be 1" in msg and "tp_extends_ep" in msg


def test_tp_extends_ep_group_must_fit_stage():
    # ep 2 x tp 8 = 16 expert ranks, but a stage has only tp*cp*dp = 8
    msg = par_error(devices=8, tp=8, ep=2, tp_extends_ep=True, global_batch_size=8)
    assert "ep*tp (2*8)" in msg and "16" in msg and "tp*cp*dp = 8" in msg


def test_parallel_unknown_key_and_type():
    assert "pipeline: unknown key" in par_error(devices=8, pipeline=2, global_batch_size=8)
    assert "tp" in par_error(devices=8, tp="two", global_batch_size=8)
    assert "devices" in par_error(devices=0, global_batch_size=8)
    assert "recompute" in par_error(devices=8, recompute="some", global_batch_size=8)


# --- frozen -----------------------------------------------------------------------------------------

def test_configs_are_frozen():
    m = ModelConfig(**moe_model())
    p = par(devices=8)
    w = Workload()
    hw = load_hardware("h100-sxm")
    for obj, field, value in [(m, "num_layers", 8), (m.moe, "top_k", 1), (p, "tp", 2), (w, "seq_len", 8),
                              (hw.device, "hbm_gib", 1.0)]:
        with pytest.raises((ValidationError, TypeError, AttributeError)):
            setattr(obj, field, value)
    assert m.num_layers == 4 and p.tp == 1 and w.seq_len == 4096


# --- compat_errors ---------------------------------------------------------------------------------

def test_compat_valid_is_empty():
    m = ModelConfig(**moe_model())
    assert compat_errors(m, par(devices=16, tp=2, pp=2, ep=4), Workload(seq_len=1024), load_hardware("h100-sxm")) == []


def test_compat_tp_divides_heads():
    m = ModelConfig(**dense(hidden_size=96, num_attention_heads=12, ffn_hidden_size=384))
    errs = compat_errors(m, par(devices=8, tp=8))
    assert any("parallel.tp (8)" in e and "num_attention_heads (12)" in e for e in errs), errs


def test_compat_tp_and_kv_heads():
    m = ModelConfig(**dense(attention="gqa", num_query_groups=2, num_attention_heads=12, hidden_size=96,
                            ffn_hidden_size=384))
    errs = compat_errors(m, par(devices=6, tp=3, global_batch_size=2))
    assert any("num_query_groups (2)" in e and "parallel.tp (3)" in e for e in errs), errs


def test_compat_tp_divides_ffn():
    m = ModelConfig(**dense(ffn_hidden_size=250))
    errs = compat_errors(m, par(devices=4, tp=4))
    assert any("ffn_hidden_size (250)" in e for e in errs), errs


def test_compat_layers_ge_pp_vpp():
    m = ModelConfig(**dense(num_layers=4))
    errs = compat_errors(m, par(devices=4, pp=4, vpp=2, global_batch_size=8))
    assert any("num_layers (4)" in e and "pp*vpp (8)" in e for e in errs), errs
    assert not compat_errors(m, par(devices=4, pp=2, vpp=2, global_batch_size=8))


def test_compat_ep_on_dense_model():
    m = ModelConfig(**dense())
    errs = compat_errors(m, par(devices=8, ep=2))
    assert any("parallel.ep (2)" in e and "dense" in e for e in errs), errs


def test_compat_ep_divides_num_experts():
    m = ModelConfig(**moe_model(num_experts=12))
    errs = compat_errors(m, par(devices=8, ep=8))
    assert any("expert-parallel size (8)" in e and "moe.num_experts (12)" in e for e in errs), errs


def test_compat_ep_effective_divides_num_experts():
    # ep 2 x tp 4 = 8 under tp_extends_ep; 12 experts do not divide over 8 devices
    m = ModelConfig(**moe_model(num_experts=12))
    assert not [e for e in compat_errors(m, par(devices=8, tp=4, ep=2)) if "expert-parallel" in e]
    errs = compat_errors(m, par(devices=8, tp=4, ep=2, tp_extends_ep=True))
    assert any("expert-parallel size (8)" in e for e in errs), errs


def test_compat_expert_tp_divides_expert_ffn():
    m = ModelConfig(**moe_model(expert_ffn_hidden_size=100))
    errs = compat_errors(m, par(devices=8, ep=1, expert_tp=8))
    assert any("parallel.expert_tp (8)" in e and "expert_ffn_hidden_size (100)" in e for e in errs), errs


def test_compat_cp_divides_seq():
    m = ModelConfig(**dense())
    errs = compat_errors(m, par(devices=6, cp=3, global_batch_size=2), Workload(seq_len=1000))
    assert any("parallel.cp (3)" in e and "seq_len (1000)" in e for e in errs), errs


def test_compat_sequence_parallel_needs_tp_cp_dividing_seq():
    m = ModelConfig(**dense())
    errs = compat_errors(m, par(devices=8, tp=4, cp=2, global_batch_size=1), Workload(seq_len=1004))
    assert any("tp*cp (8)" in e and "seq_len (1004)" in e for e in errs), errs
    p = par(devices=8, tp=4, cp=2, sequence_parallel=False, global_batch_size=1)
    assert not [e for e in compat_errors(m, p, Workload(seq_len=1004)) if "tp*cp" in e]


def test_compat_fp8_needs_fp8_hardware():
    m = ModelConfig(**dense())
    p = par(devices=8)
    w = Workload(seq_len=1024, precision="fp8")
    errs = compat_errors(m, p, w, load_hardware("ascend-910b"))
    assert any("fp8" in e and "ascend-910b" in e for e in errs), errs
    assert compat_errors(m, p, w, load_hardware("h100-sxm")) == []
    assert compat_errors(m, p, Workload(seq_len=1024), load_hardware("ascend-910b")) == []


def test_compat_reports_every_error():
    m = ModelConfig(**dense(num_layers=2, hidden_size=96, num_attention_heads=12, ffn_hidden_size=390))
    errs = compat_errors(m, par(devices=8, tp=8, ep=2, global_batch_size=1))
    assert len(errs) == 3, errs   # heads, ffn, ep on dense


# --- loaders: bad files are one-line UserErrors ------------------------------------------------------

def write(tmp_path: Path, name: str, data) -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert msg and "\n" not in msg, msg
    assert "Traceback" not in msg
    return msg


def test_load_model_from_yaml(tmp_path):
    p = write(tmp_path, "custom.yaml", moe_model())
    assert load_model(str(p)).moe.num_experts == 16


def test_load_model_unknown_key(tmp_path):
    p = write(tmp_path, "bad.yaml", dense(layers=3))
    with pytest.raises(UserError) as ei:
        load_model(str(p))
    msg = one_line(ei)
    assert "bad.yaml" in msg and "layers: unknown key" in msg


def test_load_model_wrong_type(tmp_path):
    p = write(tmp_path, "bad.yaml", dense(hidden_size="wide"))
    with pytest.raises(UserError) as ei:
        load_model(str(p))
    assert "hidden_size" in one_line(ei)


def test_load_model_rule_violation(tmp_path):
    p = write(tmp_path, "bad.yaml", moe_model(num_experts=4, top_k=8))
    with pytest.raises(UserError) as ei:
        load_model(str(p))
    assert "moe.top_k (8)" in one_line(ei)


def _h100() -> dict:
    return yaml.safe_load(H100.read_text())


def test_load_hardware_negative_bandwidth(tmp_path):
    d = _h100()
    d["device"]["hbm_bandwidth_GBps"] = -5.0
    p = write(tmp_path, "neg.yaml", d)
    with pytest.raises(UserError) as ei:
        load_hardware(str(p))
    msg = one_line(ei)
    assert "device.hbm_bandwidth_GBps" in msg and "greater than 0" in msg


def test_load_hardware_negative_nic_bandwidth(tmp_path):
    d = _h100()
    d["scale_out"]["nic_bandwidth_Gbps"] = -400
    p = write(tmp_path, "neg.yaml", d)
    with pytest.raises(UserError) as ei:
        load_hardware(str(p))
    assert "scale_out.nic_bandwidth_Gbps" in one_line(ei)


def test_load_hardware_unknown_key_and_wrong_type(tmp_path):
    d = _h100()
    d["node"]["nvlink"] = 5
    d["device"]["hbm_gib"] = "lots"
    p = write(tmp_path, "bad.yaml", d)
    with pytest.raises(UserError) as ei:
        load_hardware(str(p))
    msg = one_line(ei)
    assert "node.nvlink: unknown key" in msg and "device.hbm_gib" in msg


def test_load_hardware_reserved_above_hbm(tmp_path):
    d = _h100()
    d["device"]["reserved_memory_gib"] = d["device"]["hbm_gib"] + 1
    p = write(tmp_path, "bad.yaml", d)
    with pytest.raises(UserError) as ei:
        load_hardware(str(p))
    assert "reserved_memory_gib" in one_line(ei)


def test_load_hardware_bad_gemm_curve(tmp_path):
    d = _h100()
    d["device"]["gemm_efficiency"] = [[10.0, 0.5], [1.0, 0.4]]
    p = write(tmp_path, "bad.yaml", d)
    with pytest.raises(UserError) as ei:
        load_hardware(str(p))
    msg = one_line(ei)
    assert "device.gemm_efficiency" in msg and "increasing" in msg


def test_load_missing_file(tmp_path):
    p = tmp_path / "missing.yaml"
    for loader in (load_model, load_hardware):
        with pytest.raises(UserError) as ei:
            loader(str(p))
        msg = one_line(ei)
        assert "cannot read" in msg and "missing.yaml" in msg


def test_load_unreadable_file(tmp_path):
    d = tmp_path / "dir.yaml"      # a directory cannot be read as a file
    d.mkdir()
    with pytest.raises(UserError) as ei:
        load_model(str(d))
    assert "cannot read" in one_line(ei)


def test_load_invalid_yaml(tmp_path):
    p = write(tmp_path, "broken.yaml", "name: x\nnum_layers: [1, 2\nhidden_size: 4\n")
    for loader in (load_model, load_hardware):
        with pytest.raises(UserError) as ei:
            loader(str(p))
        msg = one_line(ei)
        assert "broken.yaml" in msg and "invalid YAML" in msg


def test_load_non_mapping(tmp_path):
    p = write(tmp_path, "list.yaml", "- 1\n- 2\n")
    with pytest.raises(UserError) as ei:
        load_model(str(p))
    assert "mapping" in one_line(ei)


def test_unknown_preset_and_profile_names():
    with pytest.raises(UserError) as ei:
        load_model("gpt-9000")
    msg = one_line(ei)
    assert "unknown model preset 'gpt-9000'" in msg and "deepseek-v3" in msg
    with pytest.raises(UserError) as ei:
        load_hardware("tpu-v9")
    msg = one_line(ei)
    assert "unknown hardware profile 'tpu-v9'" in msg and "h100-sxm" in msg


def test_metadata_file_is_not_a_preset():
    with pytest.raises(UserError):
        load_model("_published_params")


def test_hardware_profile_parse_via_parse():
    hw = parse(HardwareProfile, _h100(), "hardware h100")
    assert hw.peak_flops("bf16") == hw.device.peak_tflops.bf16 * 1e12
