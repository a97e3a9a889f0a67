"""`moe-sim --help`, `moe-sim model` and `moe-sim profiles`: output shape, formats, and bad input
(exit code 2, a single `error:` line on stderr, never a traceback)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sim.cli.main import main

REPO = Path(__file__).resolve().parents[1]
PROFILES = {"ascend-910b", "ascend-910c-supernode", "a100-80g", "h100-sxm", "h800", "h200", "b200", "gb200-nvl72"}


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    """main(argv) -> (exit code, stdout, stderr); SystemExit (argparse, --help) becomes its code."""
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    out, err = capsys.readouterr()
    return rc, out, err


def assert_user_error(rc: int, out: str, err: str, *needles: str) -> None:
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err and "Traceback" not in out
    for n in needles:
        assert n in lines[0], (n, lines[0])


# --- help ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["--help"], ["model", "--help"], ["profiles", "--help"],
                                  ["profiles", "list", "--help"], ["profiles", "show", "--help"]])
def test_help_exits_zero(argv, capsys):
    rc, out, _ = run(argv, capsys)
    assert rc == 0
    assert "usage:" in out


def test_top_help_lists_subcommands(capsys):
    _, out, _ = run(["--help"], capsys)
    assert "model" in out and "profiles" in out


def test_no_command_is_an_error(capsys):
    rc, out, err = run([], capsys)
    assert_user_error(rc, out, err)


# --- model -----------------------------------------------------------------------------------------

def test_model_json(capsys):
    rc, out, err = run(["model", "deepseek-v3", "--format", "json"], capsys)
    assert rc == 0 and err == ""
    d = json.loads(out)
    assert {"total_params", "active_params", "model_flops_per_token"} <= set(d)
    assert d["name"] == "deepseek-v3" and d["seq_len"] == 4096
    assert d["total_params"] == pytest.approx(671e9, rel=0.015)
    assert d["active_params"] == pytest.approx(37e9, rel=0.015)
    assert d["model_flops_per_token"] == pytest.approx(385e12 / 1542, rel=0.02)
    assert isinstance(d["forward_flops_per_token"], dict)


def test_model_seq_changes_attention_flops(capsys):
    _, out1, _ = run(["model", "llama3-70b", "--format", "json", "--seq", "2048"], capsys)
    _, out2, _ = run(["model", "llama3-70b", "--format", "json", "--seq", "8192"], capsys)
    a, b = json.loads(out1), json.loads(out2)
    assert a["seq_len"] == 2048 and b["seq_len"] == 8192
    assert b["model_flops_per_token"] > a["model_flops_per_token"]
    assert a["total_params"] == b["total_params"]


def test_model_table(capsys):
    rc, out, err = run(["model", "mixtral-8x7b"], capsys)
    assert rc == 0 and err == ""
    assert "total_params" in out and "active_params" in out and "model_flops_per_token" in out
    assert "46.70B" in out and "GFLOP" in out


def test_model_custom_yaml(tmp_path, capsys):
    cfg = dict(name="my-moe", num_layers=4, hidden_size=64, num_attention_heads=8, ffn_hidden_size=256,
               vocab_size=1000, moe=dict(num_experts=8, top_k=2, expert_ffn_hidden_size=128))
    p = tmp_path / "custom.yaml"
    p.write_text(yaml.safe_dump(cfg))
    rc, out, err = run(["model", str(p), "--format", "json"], capsys)
    assert rc == 0 and err == ""
    d = json.loads(out)
    assert d["name"] == "my-moe"
    assert 0 < d["active_params"] < d["total_params"]
    rc, out, _ = run(["model", str(p)], capsys)
    assert rc == 0 and "my-moe" in out


def test_model_unknown_preset(capsys):
    rc, out, err = run(["model", "gpt-9000"], capsys)
    assert_user_error(rc, out, err, "gpt-9000")


def test_model_negative_seq(capsys):
    rc, out, err = run(["model", "deepseek-v3", "--seq", "-1"], capsys)
    assert_user_error(rc, out, err, "--seq")


def test_model_non_integer_seq(capsys):
    rc, out, err = run(["model", "deepseek-v3", "--seq", "long"], capsys)
    assert_user_error(rc, out, err, "--seq")


def test_model_missing_file(tmp_path, capsys):
    rc, out, err = run(["model", str(tmp_path / "nope.yaml")], capsys)
    assert_user_error(rc, out, err, "nope.yaml")


def test_model_invalid_yaml_file(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\nnum_layers: [1\n")
    rc, out, err = run(["model", str(p)], capsys)
    assert_user_error(rc, out, err, "bad.yaml", "invalid YAML")


def test_model_bad_field_in_file(tmp_path, capsys):
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(dict(name="x", num_layers=2, hidden_size=64, num_attention_heads=8,
                                     ffn_hidden_size=128, vocab_size=100, num_expertz=4)))
    rc, out, err = run(["model", str(p)], capsys)
    assert_user_error(rc, out, err, "num_expertz")


def test_model_bad_format(capsys):
    rc, out, err = run(["model", "deepseek-v3", "--format", "xml"], capsys)
    assert_user_error(rc, out, err, "--format")


# --- profiles --------------------------------------------------------------------------------------

def test_profiles_list_json(capsys):
    rc, out, err = run(["profiles", "list", "--format", "json"], capsys)
    assert rc == 0 and err == ""
    rows = json.loads(out)
    assert {r["name"] for r in rows} == PROFILES
    assert len(rows) == 8
    for r in rows:
        assert r["bf16_tflops"] > 0 and r["hbm_gib"] > 0 and r["devices_per_node"] > 0


def test_profiles_list_table(capsys):
    rc, out, err = run(["profiles", "list"], capsys)
    assert rc == 0 and err == ""
    lines = out.strip().splitlines()
    assert lines[0].split()[0] == "name"
    assert len(lines) == 2 + len(PROFILES)    # header, rule, one row each
    for name in PROFILES:
        assert any(line.split()[0] == name for line in lines[2:]), name


def test_profiles_show_json(capsys):
    rc, out, err = run(["profiles", "show", "h100-sxm", "--format", "json"], capsys)
    assert rc == 0 and err == ""
    d = json.loads(out)
    assert d["name"] == "h100-sxm"
    assert d["device"]["peak_tflops"]["bf16"] > 0
    assert d["device"]["peak_tflops"]["fp8"] > d["device"]["peak_tflops"]["bf16"]


def test_profiles_show_table(capsys):
    rc, out, err = run(["profiles", "show", "ascend-910b"], capsys)
    assert rc == 0 and err == ""
    assert "device.peak_tflops.bf16" in out
    assert "device.peak_tflops.fp8" in out


def test_profiles_show_unknown(capsys):
    rc, out, err = run(["profiles", "show", "tpu-v9"], capsys)
    assert_user_error(rc, out, err, "tpu-v9")


def test_profiles_show_missing_file(tmp_path, capsys):
    rc, out, err = run(["profiles", "show", str(tmp_path / "gone.yaml")], capsys)
    assert_user_error(rc, out, err, "gone.yaml")


def test_profiles_without_action(capsys):
    rc, out, err = run(["profiles"], capsys)
    assert_user_error(rc, out, err)


# --- the real entry point ----------------------------------------------------------------------------

def test_python_m_sim_subprocess():
    r = subprocess.run([sys.executable, "-m", "sim", "model", "mixtral-8x7b", "--format", "json"],
                       cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["name"] == "mixtral-8x7b"
    assert d["total_params"] == pytest.approx(46.7e9, rel=0.015)
    assert d["active_params"] == pytest.approx(12.9e9, rel=0.015)
