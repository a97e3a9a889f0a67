"""Parallel-layout search: valid, fitting, ranked layouts; counts that add up; the CLI."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from sim.cli.main import main
from sim.config.load import load_hardware, parse
from sim.config.model import ModelConfig
from sim.config.routing import RoutingConfig
from sim.config.workload import Workload
from sim.engine.spec import make_runspec
from sim.search.layouts import LayoutOptions, enumerate_layouts, reason_key, search_layouts
from sim.search.objective import parse_objective

TINY_MODEL = dict(name="tiny-moe", num_layers=4, hidden_size=1024, num_attention_heads=8, num_query_groups=8,
                  attention="gqa", ffn_hidden_size=2048, vocab_size=4096,
                  moe=dict(num_experts=8, top_k=2, expert_ffn_hidden_size=2048))


@pytest.fixture(scope="module")
def tiny():
    return (parse(ModelConfig, TINY_MODEL, "tiny"), load_hardware("h100-sxm"), Workload(seq_len=1024),
            RoutingConfig())


@pytest.fixture(scope="module")
def result(tiny):
    model, hw, work, routing = tiny
    return search_layouts(model, hw, work, routing, {"devices": 16, "global_batch_size": 64},
                          LayoutOptions(top=2), parse_objective("max tokens_per_s"), executor="des")


def test_search_finds_a_fitting_layout(result):
    best = result.best
    assert best is not None and best.executor == "des"
    assert best.report["fits"] and best.report["peak_memory_gib"] <= best.report["memory_limit_gib"]
    assert best.report["tokens_per_s"] > 0


def test_every_reported_layout_is_valid_and_fits(result):
    for lay in result.layouts:
        spec = make_runspec(dict(model=TINY_MODEL, hardware="h100-sxm", workload=dict(seq_len=1024),
                                 parallel=lay.parallel.model_dump()))     # raises on an invalid layout
        assert spec.parallel.devices == 16 and spec.parallel.global_batch_size == 64
        assert lay.report["fits"] is True


def test_ranking_and_counts(result):
    obj = parse_objective("max tokens_per_s")
    des = [lay for lay in result.layouts if lay.executor == "des"]
    rest = result.layouts[len(des):]
    assert len(des) == result.simulated == 2
    assert all(lay.executor == "analytic" for lay in rest)
    for part in (des, rest):
        vals = [obj.value(lay.report) for lay in part]
        assert vals == sorted(vals, reverse=True)
    # every enumerated layout is either dropped once (by reason) or ranked
    assert result.enumerated == sum(result.infeasible.values()) + len(result.layouts)
    assert result.screened >= len(result.layouts)


def test_layouts_that_do_not_fit_are_dropped(tiny):
    model, hw, work, routing = tiny
    small = hw.model_copy(update={"device": hw.device.model_copy(update={"hbm_gib": hw.device.reserved_memory_gib + 0.3})})
    res = search_layouts(model, small, work, routing, {"devices": 16, "global_batch_size": 64},
                         LayoutOptions(top=1), parse_objective("max tokens_per_s"), executor="des")
    assert res.infeasible.get("does not fit memory", 0) > 0 and res.layouts
    assert all(lay.report["peak_memory_gib"] <= 0.3 + 1e-9 for lay in res.layouts)


def test_options_bound_the_enumeration(tiny):
    model, hw, work, _ = tiny
    opts = LayoutOptions(tp=[2], pp=[2], vpp=[1], micro_batch_size=[1], recompute=["full"])
    got = list(enumerate_layouts(model, hw, {"devices": 16, "global_batch_size": 64}, opts))
    assert got and all((d["tp"], d["pp"], d["vpp"], d["micro_batch_size"], d["recompute"]) == (2, 2, 1, 1, "full")
                       for d in got)
    # default ep: every size whose experts and ranks divide (8 experts, tp*cp*dp = 8 ranks per stage)
    assert sorted(d["ep"] for d in got) == [1, 2, 4, 8]


def test_tp_comm_overlap_is_searched_only_where_tp_splits(tiny):
    model, hw, work, routing = tiny
    opts = LayoutOptions(tp=[1, 2], pp=[1], vpp=[1], ep=[1], micro_batch_size=[1], recompute=["full"],
                         tp_comm_overlap=[False, True])
    got = [(d["tp"], d["tp_comm_overlap"]) for d in enumerate_layouts(model, hw, {"devices": 8, "global_batch_size": 64}, opts)]
    assert sorted(got) == [(1, False), (2, False), (2, True)]
    only = LayoutOptions(tp=[1], pp=[1], vpp=[1], ep=[1], micro_batch_size=[1], recompute=["full"], tp_comm_overlap=[True])
    assert [d["tp_comm_overlap"] for d in enumerate_layouts(model, hw, {"devices": 8, "global_batch_size": 64}, only)] == [False]
    res = search_layouts(model, hw, work, routing, {"devices": 8, "global_batch_size": 64}, opts,
                         parse_objective("min step_time_s"), executor="analytic")
    assert {lay.parallel.tp_comm_overlap for lay in res.layouts} == {False, True}


def test_default_tp_stays_inside_a_node(tiny):
    model, hw, _, _ = tiny
    tps = {d["tp"] for d in enumerate_layouts(model, hw, {"devices": 64, "global_batch_size": 64}, LayoutOptions())}
    assert tps == {1, 2, 4, 8} and hw.node.devices_per_node == 8


def test_reason_key_drops_numbers():
    assert reason_key("devices (6144) must be divisible by tp*pp*cp (8*5*1=40)") == "devices must be divisible by tp*pp*cp"


def test_analytic_only_search_simulates_nothing(tiny):
    model, hw, work, routing = tiny
    res = search_layouts(model, hw, work, routing, {"devices": 16, "global_batch_size": 64},
                         LayoutOptions(tp=[2], micro_batch_size=[1]), parse_objective("min step_time_s"),
                         executor="analytic")
    assert res.simulated == 0 and res.best is not None and res.best.executor == "analytic"


# ---------------------------------------------------------------- CLI

@pytest.fixture()
def model_yaml(tmp_path):
    p = tmp_path / "tiny.yaml"
    p.write_text(yaml.safe_dump(TINY_MODEL))
    return str(p)


def _search(model_yaml, *extra) -> list[str]:
    return ["search", "--model", model_yaml, "--hardware", "h100-sxm", "--devices", "16", "--gbs", "64",
            "--seq", "1024", *extra]


def test_cli_table_json_and_out(model_yaml, tmp_path, capsys):
    assert main(_search(model_yaml, "--top", "2", "--show", "4")) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["rank", "executor", "tp"]
    assert "enumerated" in out and "screened" in out and "simulated 2 (des)" in out
    assert main(_search(model_yaml, "--top", "1", "--tp", "1,2", "--format", "json", "--out", str(tmp_path / "l.csv"))) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["counts"]["simulated"] == 1 and doc["layouts"][0]["executor"] == "des"
    assert {lay["tp"] for lay in doc["layouts"]} <= {1, 2}
    with open(tmp_path / "l.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1)) and "tokens_per_s" in rows[0]


def test_cli_nothing_fits_exits_1(model_yaml, capsys):
    assert main(_search(model_yaml, "--tp", "4", "--pp", "8", "--executor", "analytic")) == 1   # 4 x 8 > 16 devices
    assert "infeasible" in capsys.readouterr().out


@pytest.mark.parametrize("extra,needle", [
    (["--tp", "a,b"], "--tp a,b"),
    (["--objective", "max speed"], "unknown column 'speed'"),
    (["--recompute", "some"], "--recompute some"),
    (["--out", "x.txt"], "--out x.txt"),
])
def test_cli_errors_are_one_line(model_yaml, capsys, extra, needle):
    assert main(_search(model_yaml, *extra)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err


def test_unknown_model_is_one_line(capsys):
    assert main(["search", "--model", "nope", "--hardware", "h100-sxm", "--devices", "8", "--gbs", "8"]) == 2
    assert "unknown model preset 'nope'" in capsys.readouterr().err


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["search", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--model", "--devices", "--gbs", "--seq", "--top", "--executor", "--format", "--out"):
        assert flag in out
