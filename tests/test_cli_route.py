"""`moe-sim route`: help, JSON keys, the MoGE vs top-k contrast, one-line errors with exit 2."""

import json
import subprocess
import sys

import pytest

from sim.cli.main import main

BASE = ["route", "--experts", "64", "--top-k", "8", "--devices", "8", "--tokens", "16", "--trials", "200",
        "--skew", "balanced", "--format", "json"]
KEYS = {"imbalance_score_mean", "p_imbalance_positive", "max_over_mean_device_load", "drop_rate"}


def _json(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["route", "--help"])
    assert e.value.code == 0 and "--capacity-factor" in capsys.readouterr().out


def test_moge_vs_topk(capsys):
    topk = _json(capsys, [*BASE, "--router", "topk"])
    moge = _json(capsys, [*BASE, "--router", "moge", "--groups", "8"])
    assert KEYS <= topk.keys() and KEYS <= moge.keys()
    assert moge["imbalance_score_mean"] == 0 and moge["p_imbalance_positive"] == 0
    assert moge["max_over_mean_device_load"] == 1.0
    assert topk["p_imbalance_positive"] > 0.99 and topk["max_over_mean_device_load"] > 1.1


def test_capacity_reports_drops_and_seed_is_deterministic(capsys):
    argv = ["route", "--experts", "32", "--top-k", "4", "--router", "group_limited", "--groups", "4",
            "--topk-groups", "2", "--devices", "4", "--tokens", "512", "--trials", "5", "--skew", "no_balancing",
            "--capacity-factor", "1.0", "--seed", "7", "--format", "json"]
    a, b = _json(capsys, argv), _json(capsys, argv)
    assert a == b and 0 < a["drop_rate"] < 1


def test_table_output(capsys):
    assert main([*BASE[:-2], "--router", "balanced"]) == 0
    out = capsys.readouterr().out
    assert "imbalance_score_mean" in out and "drop_rate" in out


@pytest.mark.parametrize("extra, msg", [
    (["--router", "topk", "--devices", "7"], "must divide"),
    (["--router", "moge", "--groups", "3"], "divisible"),
    (["--router", "topk", "--skew", "lumpy"], "unknown skew preset"),
    (["--router", "topk", "--tokens", "-5"], "--tokens"),
    (["--router", "group_limited", "--groups", "8"], "topk_groups"),
    (["--router", "topk", "--capacity-factor", "0"], "capacity_factor"),
])
def test_bad_input_one_line_exit_2(capsys, extra, msg):
    assert main([*BASE, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and msg in err and err.count("\n") == 1


def test_subprocess_module_entry():
    r = subprocess.run([sys.executable, "-m", "sim", *BASE, "--router", "moge"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["imbalance_score_mean"] == 0
