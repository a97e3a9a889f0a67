"""Engine: timeline on tiny cases, invariants, DES vs analytic agreement, CLI."""

from __future__ import annotations

import json

import pytest

from sim.cli.main import main
from sim.config.hardware import HardwareProfile
from sim.engine.des import simulate_des
from sim.engine.run import simulate
from sim.engine.spec import make_runspec
from sim.engine.step import build_step
from sim.schedule.pipeline import interleaved, one_f_one_b
from tests.helpers import device_only

TINY_MODEL = dict(name="tiny", num_layers=4, hidden_size=1024, num_attention_heads=8, ffn_hidden_size=4096,
                  vocab_size=1024, attention="mha", activation="gelu")


def _hw(**over) -> dict:
    d = device_only("h100-sxm")   # the timelines here are counted by hand from the device's work
    for k, v in over.items():
        sect, key = k.split("__")
        d[sect][key] = v
    return d


def _spec(model=None, hw=None, **par):
    p = dict(devices=2, pp=2, global_batch_size=2, micro_batch_size=1, recompute="none",
             distributed_optimizer=False)
    p.update(par)
    return make_runspec(dict(model=model or TINY_MODEL, hardware=hw or _hw(), parallel=p,
                             workload=dict(seq_len=512), routing=dict(mode="balanced")))


def test_1f1b_order_tiny():
    assert one_f_one_b(2, 2, 0) == [("F", 0, 0), ("F", 0, 1), ("B", 0, 0), ("B", 0, 1)]
    assert one_f_one_b(2, 2, 1) == [("F", 0, 0), ("B", 0, 0), ("F", 0, 1), ("B", 0, 1)]


def test_interleaved_covers_every_task_once():
    for s in range(4):
        order = interleaved(4, 2, 8, s)
        assert sorted(order) == sorted([(ph, c, m) for ph in "FB" for c in range(2) for m in range(8)])


def test_timeline_two_stages_two_microbatches():
    """2 stages, 2 micro-batches, one device per stage: every task time is known from the program,
    so the step is (m + p - 1) * (tf + tb) plus p2p sends and the optimizer, by hand."""
    spec = _spec()
    inp = build_step(spec)
    pr = inp.programs
    tf = sum(s[1] for s in pr.fwd[0][0][0] if s[0] == "compute")
    tb = sum(s[1] for s in pr.bwd[0][0][0] if s[0] == "compute")
    tf1 = sum(s[1] for s in pr.fwd[1][0][0] if s[0] == "compute")
    tb1 = sum(s[1] for s in pr.bwd[1][0][0] if s[0] == "compute")
    p2p = inp.comm.time(inp.p2p)
    res = simulate_des(inp, trace=True)
    # stage 0: F0 [0,tf], F1 [tf,2tf]; stage 1: F0 after F0 arrives at tf+p2p, then B0, F1, B1
    tasks = {(e[0], e[2]): (e[4], e[4] + e[5]) for e in res.trace if e[1] == "task"}
    assert tasks[(0, "F0.c0")] == pytest.approx((0.0, tf))
    assert tasks[(0, "F1.c0")] == pytest.approx((tf, 2 * tf))
    assert tasks[(1, "F0.c0")] == pytest.approx((tf + p2p, tf + p2p + tf1))
    assert tasks[(1, "B0.c0")][0] == pytest.approx(tf + p2p + tf1)
    b0_end_s1 = tf + p2p + tf1 + tb1
    assert tasks[(0, "B0.c0")][0] == pytest.approx(max(b0_end_s1 + p2p, 2 * tf))
    order = [name for (st, name), _ in sorted(tasks.items(), key=lambda kv: kv[1][0]) if st == 1]
    assert order == ["F0.c0", "B0.c0", "F1.c0", "B1.c0"]
    assert res.step_time_s == pytest.approx(max(st.end for st in res.stages))
    assert res.step_time_s > 2 * (tf + tb)


def _zero_comm_hw():
    return _hw(node__intra_node_bandwidth_GBps=1e12, node__intra_node_latency_us=0.0,
               scale_out__nic_bandwidth_Gbps=1e13, scale_out__latency_us=0.0)


@pytest.mark.parametrize("pp,m", [(2, 2), (4, 8), (2, 6)])
def test_bubble_fraction_matches_1f1b_formula(pp, m):
    spec = _spec(hw=_zero_comm_hw(), devices=pp, pp=pp, global_batch_size=m)
    model = dict(TINY_MODEL, num_layers=pp * 2, vocab_size=8)   # tiny head so stages are near-uniform
    spec = _spec(model=model, hw=_zero_comm_hw(), devices=pp, pp=pp, global_batch_size=m)
    rep = simulate(spec)
    assert rep.bubble_fraction == pytest.approx((pp - 1) / (m + pp - 1), rel=0.05)


def test_mfu_at_most_one_and_consistent():
    rep = simulate(_spec())
    assert 0 < rep.mfu <= 1
    assert rep.hfu >= rep.mfu
    assert rep.tokens_per_s == pytest.approx(2 * 512 / rep.step_time_s)


def test_more_bandwidth_never_slower():
    moe = make_runspec(dict(model="mixtral-8x7b", hardware="h100-sxm", workload=dict(seq_len=2048),
                            parallel=dict(devices=32, pp=2, ep=8, global_batch_size=32)))
    base = moe.hardware.model_dump()
    prev = None
    for nic in (100, 400, 1600):
        hw = dict(base)
        hw["scale_out"] = dict(base["scale_out"], nic_bandwidth_Gbps=nic)
        spec = moe.model_copy(update={"hardware": HardwareProfile.model_validate(hw)})
        t = simulate(spec, check_memory=False).step_time_s
        if prev is not None:
            assert t <= prev * (1 + 1e-9)
        prev = t


def test_skewed_never_beats_balanced():
    kw = dict(model="mixtral-8x7b", hardware="h100-sxm", workload=dict(seq_len=2048),
              parallel=dict(devices=32, pp=2, ep=8, global_batch_size=32))
    bal = simulate(make_runspec(dict(kw, routing=dict(mode="balanced"))), check_memory=False)
    for skew in ("aux_loss", "no_balancing"):
        sk = simulate(make_runspec(dict(kw, routing=dict(mode="dropless", skew=skew))), check_memory=False)
        assert sk.step_time_s >= bal.step_time_s
        assert sk.max_over_mean_device_load > bal.max_over_mean_device_load


@pytest.mark.parametrize("model,par", [
    ("mixtral-8x7b", dict(devices=64, tp=2, pp=2, ep=8, global_batch_size=128)),
    ("llama3-70b", dict(devices=64, tp=8, pp=4, vpp=2, global_batch_size=64)),
])
def test_analytic_agrees_with_des_on_balanced_routing(model, par):
    spec = make_runspec(dict(model=model, hardware="h100-sxm", parallel=par, workload=dict(seq_len=4096),
                             routing=dict(mode="balanced")))
    des = simulate(spec, check_memory=False)
    ana = simulate(spec, executor="analytic", check_memory=False)
    assert ana.step_time_s == pytest.approx(des.step_time_s, rel=0.03)


def test_same_seed_same_report():
    kw = dict(model="mixtral-8x7b", hardware="h100-sxm", parallel=dict(devices=32, pp=2, ep=8, global_batch_size=32))
    a = simulate(make_runspec(kw), check_memory=False).to_dict()
    b = simulate(make_runspec(kw), check_memory=False).to_dict()
    assert json.dumps(a) == json.dumps(b)


def test_not_fitting_is_reported_not_simulated():
    spec = make_runspec(dict(model="llama3-405b", hardware="h100-sxm", parallel=dict(devices=8, tp=8, global_batch_size=8)))
    rep = simulate(spec)
    assert rep.fits is False and rep.step_time_s is None
    assert rep.memory_shortfall_gib > 0 and "stage" in rep.reason


def test_run_cli_json_and_trace(tmp_path, capsys):
    out = tmp_path / "trace.json"
    rc = main(["run", "--model", "mixtral-8x7b", "--hardware", "h100-sxm", "--devices", "32", "--pp", "2",
               "--ep", "8", "--gbs", "32", "--seq", "2048", "--trace", str(out), "--format", "json"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    for k in ("step_time_s", "tokens_per_s", "tokens_per_s_per_device", "model_tflops_per_device", "mfu", "hfu",
              "bubble_fraction", "exposed_comm_s", "imbalance_score", "max_over_mean_device_load",
              "peak_memory_gib", "fits"):
        assert k in d
    assert set(d["exposed_comm_s"]) == {"tp", "cp", "ep_a2a", "pp_p2p", "dp"}
    tr = json.loads(out.read_text())
    assert {e["pid"] for e in tr["traceEvents"] if e["ph"] == "X"} == {0, 1}


def test_run_cli_spec_yaml(tmp_path, capsys):
    p = tmp_path / "spec.yaml"
    p.write_text("model: mixtral-8x7b\nhardware: h100-sxm\nparallel: {devices: 16, ep: 8, global_batch_size: 16}\n"
                 "workload: {seq_len: 2048}\n")
    assert main(["run", str(p), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["fits"] in (True, False)


@pytest.mark.parametrize("argv,needle", [
    (["run", "--model", "mixtral-8x7b", "--hardware", "h100-sxm", "--devices", "64", "--tp", "3", "--gbs", "64"], "tp*pp*cp"),
    (["run", "--model", "nope", "--hardware", "h100-sxm", "--devices", "8", "--gbs", "8"], "unknown model preset"),
    (["run", "--model", "mixtral-8x7b", "--hardware", "h100-sxm", "--devices", "8", "--gbs", "8", "--routing", "x"], "--routing"),
    (["run", "--model", "mixtral-8x7b", "--hardware", "h100-sxm"], "--devices"),
])
def test_run_cli_bad_input(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and needle in err and "\n" not in err
