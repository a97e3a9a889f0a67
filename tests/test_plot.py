"""`moe-sim plot`: the Pareto frontier, labels, each figure kind as PNG and SVG, one-line errors."""

import json

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.text import Text

import sim.plot as plot
from sim.cli.main import main
from sim.errors import UserError
from sim.plot.labels import column_label
from sim.plot.table import filter_rows

RUN = ["run", "--model", "mixtral-8x7b", "--hardware", "h100-sxm", "--devices", "64", "--tp", "2",
       "--pp", "4", "--ep", "8", "--mbs", "1", "--gbs", "64", "--seq", "2048", "--ignore-memory"]


def _results() -> pd.DataFrame:
    """24 sweep-like rows: 3 routers x 2 EP x 2 hidden x 2 seeds; the largest EP=8 rows fail."""
    rows = []
    for i, (router, ep, hidden, seed) in enumerate(
            (r, e, h, s) for r in ("topk", "group_limited", "moge") for e in (8, 16)
            for h in (4096, 7680) for s in (0, 1)):
        ok = not (hidden == 7680 and ep == 8)
        step = 1.0 + 0.1 * i
        rows.append({
            "model.hidden_size": hidden, "model.num_layers": 61 if hidden == 7680 else 48,
            "model.moe.num_experts": 256, "model.moe.top_k": 8, "model.moe.router": router,
            "parallel.ep": ep, "hardware": "ascend-910b",
            "total_params_b": hidden / 10.0, "active_params_b": hidden / 200.0 + seed,
            "status": "ok" if ok else "infeasible", "reason": "" if ok else "memory",
            "step_time_s": step if ok else np.nan, "tokens_per_s": 1e6 / step if ok else np.nan,
            "mfu": 0.3 + 0.01 * i if ok else np.nan,
            "imbalance_score": {"topk": 0.2, "group_limited": 0.1, "moge": 0.0}[router] + 0.01 * seed,
            "peak_memory_gib": hidden / 100.0 / ep * 8,
        })
    return pd.DataFrame(rows)


TRACE = {"traceEvents": [
    {"ph": "M", "pid": 0, "name": "process_name", "args": {"name": "stage 0"}},
    {"ph": "M", "pid": 0, "tid": 1, "name": "thread_name", "args": {"name": "compute"}},
    {"ph": "M", "pid": 0, "tid": 2, "name": "thread_name", "args": {"name": "comm"}},
    {"ph": "X", "pid": 0, "tid": 0, "name": "F0", "cat": "task", "ts": 0, "dur": 4000},
    {"ph": "X", "pid": 0, "tid": 1, "name": "F0", "cat": "compute", "ts": 0, "dur": 3000},
    {"ph": "X", "pid": 0, "tid": 2, "name": "a2a", "cat": "ep_a2a", "ts": 3000, "dur": 1000},
    {"ph": "X", "pid": 1, "tid": 1, "name": "F0", "cat": "compute", "ts": 4500, "dur": 3000},
    {"ph": "X", "pid": 1, "tid": 3, "name": "recv", "cat": "pp_p2p", "ts": 4000, "dur": 500},
    {"ph": "X", "pid": 1, "tid": 4, "name": "grads", "cat": "dp", "ts": 7500, "dur": 2500},
]}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("plot")
    _results().to_csv(d / "results.csv", index=False)
    (d / "trace.json").write_text(json.dumps(TRACE))
    return d


@pytest.fixture(scope="module")
def real_trace(tmp_path_factory):
    path = tmp_path_factory.mktemp("trace") / "t.json"
    assert main([*RUN, "--trace", str(path), "--format", "json"]) == 0
    return path


def _text_sizes(fig) -> list[float]:
    return [t.get_fontsize() for t in fig.findobj(Text) if t.get_text()]


# --- the frontier itself -------------------------------------------------------------------------

def test_pareto_front_exact_indices():
    x = [1, 2, 3, 4, 2, 1, 5, np.nan, 0.5]
    y = [1, 3, 2, 5, 3, 0.5, 5, 9, np.nan]
    # min x, max y: (1,1) beats (1,0.5); the two (2,3) tie and both stay; (5,5) loses to (4,5)
    assert plot.pareto_front(x, y).tolist() == [0, 1, 4, 3]
    assert plot.pareto_front(x, y, maximize_x=True).tolist() == [6]
    assert plot.pareto_front(x, y, maximize_y=False).tolist() == [5]
    assert plot.pareto_front(x, y, maximize_x=True, maximize_y=False).tolist() == [5, 2, 6]
    assert plot.pareto_front([], []).tolist() == []
    assert plot.pareto_front([np.nan], [1.0]).tolist() == []


def test_pareto_front_is_nondominated_and_complete():
    rng = np.random.default_rng(3)
    x, y = rng.integers(0, 6, 60).astype(float), rng.integers(0, 6, 60).astype(float)
    front = set(plot.pareto_front(x, y).tolist())
    for i in range(60):
        dominated = any(x[j] <= x[i] and y[j] >= y[i] and (x[j] < x[i] or y[j] > y[i])
                        for j in range(60))
        assert (i in front) == (not dominated)


# --- labels, tables -----------------------------------------------------------------------------

@pytest.mark.parametrize("col, label", [
    ("step_time_s", "step time (s)"),
    ("peak_memory_gib", "peak memory (GiB)"),
    ("total_params_b", "total parameters (billions)"),
    ("tokens_per_s", "throughput (tokens/s)"),
    ("mfu", "MFU (%)"),
    ("exposed_comm_s.ep_a2a", "exposed EP all-to-all comm (s)"),
    ("model.moe.num_experts", "routed experts"),
    ("a2a_time_ms", "a2a time (ms)"),
    ("model.moe.shared_experts", "moe shared experts"),
])
def test_column_label(col, label):
    assert column_label(col) == label


def test_where_accepts_bare_dotted_names():
    df = _results()
    out = filter_rows(df, "parallel.ep == 16 and model.moe.router != 'moge'")
    assert len(out) == 8 and set(out["parallel.ep"]) == {16}
    with pytest.raises(UserError, match="no rows match"):
        filter_rows(df, "parallel.ep > 100")


def test_bar_stats():
    s = plot.bar_stats(_results(), "model.moe.router", "imbalance_score", group="parallel.ep")
    topk8 = s[(s["model.moe.router"] == "topk") & (s["parallel.ep"] == 8)].iloc[0]
    # only the 2 ok rows (hidden 4096, seeds 0 and 1) count
    assert topk8["n"] == 2 and topk8["min"] == pytest.approx(0.2) and topk8["max"] == pytest.approx(0.21)
    assert topk8["mean"] == pytest.approx(0.205)
    assert s["n"].sum() == 18


# --- Python API ---------------------------------------------------------------------------------

def test_scatter_api_colorbar_legend_and_infeasible():
    df = _results()
    fig = plot.scatter(df, "total_params_b", "peak_memory_gib", color="mfu")
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "MFU (%)"  # colorbar
    ax = fig.axes[0]
    assert ax.get_xlabel() == "total parameters (billions)" and ax.get_title()
    assert any("infeasible" in t for t in ax.get_legend_handles_labels()[1])
    fig = plot.scatter(df, "step_time_s", "mfu", color="model.moe.router")
    labels = fig.axes[0].get_legend().get_texts()
    assert [t.get_text() for t in labels] == ["group_limited", "moge", "topk"]
    assert "6 of 24 rows not shown" in fig.get_supxlabel()
    assert min(_text_sizes(fig)) >= 9


def test_pareto_api_marks_chosen_config():
    df = _results()
    fig = plot.pareto(df, "step_time_s", "total_params_b",
                      mark="model.hidden_size=7680,model.num_layers=61,parallel.ep=16",
                      mark_labels=["Pangu Ultra MoE"])
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert len(texts) == 1 and texts[0].startswith("Pangu Ultra MoE")
    assert "on frontier" in texts[0]  # hidden 7680 at EP 16 holds the largest-model frontier point
    assert min(_text_sizes(fig)) >= 9
    with pytest.raises(UserError, match="no row matches"):
        plot.pareto(df, "step_time_s", "total_params_b", mark={"model.hidden_size": 1234})


def test_api_draws_on_given_axes():
    from matplotlib.figure import Figure
    fig = Figure()
    ax1, ax2 = fig.subplots(1, 2)
    assert plot.routing_bars(_results(), "model.moe.router", "imbalance_score", ax=ax2) is fig
    assert len(ax2.patches) == 3 and not ax1.patches


def test_timeline_rows_stages_and_window(files):
    fig = plot.timeline(files / "trace.json")
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks == ["stage 0: stream 0", "stage 0: compute", "stage 0: comm",
                     "stage 1: stream 1", "stage 1: stream 3", "stage 1: stream 4"]
    assert ax.get_xlabel() == "time (ms)"
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["compute", "EP all-to-all", "PP p2p", "DP grad/param comm", "task (span)"]
    fig = plot.timeline(files / "trace.json", stages=1, start_s=0.001, end_s=0.0035)
    ax = fig.axes[0]
    assert len(ax.get_yticks()) == 3 and ax.get_xlim() == pytest.approx((1.0, 3.5))


# --- CLI: every kind to PNG and SVG -------------------------------------------------------------

def _kinds(d):
    r, t = str(d / "results.csv"), str(d / "trace.json")
    return {
        "scatter": ["scatter", r, "--x", "total_params_b", "--y", "tokens_per_s", "--color", "mfu"],
        "scatter_cat": ["scatter", r, "--x", "step_time_s", "--y", "mfu", "--color", "parallel.ep",
                        "--where", "model.moe.router != 'moge'"],
        "pareto": ["pareto", r, "--x", "step_time_s", "--y", "total_params_b", "--mark",
                   "model.hidden_size=7680,model.num_layers=61", "--mark-label", "Pangu"],
        "routing": ["routing", r, "--by", "model.moe.router", "--metric", "imbalance_score",
                    "--group", "parallel.ep"],
        "timeline": ["timeline", t, "--stages", "2"],
    }


@pytest.mark.parametrize("ext", ["png", "svg"])
@pytest.mark.parametrize("kind", ["scatter", "scatter_cat", "pareto", "routing", "timeline"])
def test_cli_writes_figure(files, tmp_path, capsys, kind, ext):
    out = tmp_path / f"{kind}.{ext}"
    assert main(["plot", *_kinds(files)[kind], "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {out}"
    assert out.stat().st_size > 8_000
    if ext == "png":
        img = mpimg.imread(out)
        assert img.ndim == 3 and img.shape[0] > 300 and img.std() > 0
    else:
        head = out.read_text()[:400]
        assert "<svg" in head and "<dc:date>" not in out.read_text()


def test_cli_timeline_real_trace(real_trace, tmp_path, capsys):
    out = tmp_path / "timeline.png"
    assert main(["plot", "timeline", str(real_trace), "--start", "0.03", "--end", "0.1",
                 "--out", str(out)]) == 0
    assert out.stat().st_size > 20_000 and mpimg.imread(out).std() > 0


def test_cli_output_is_deterministic(files, tmp_path, capsys):
    a, b = tmp_path / "a.svg", tmp_path / "b.svg"
    argv = ["plot", *_kinds(files)["pareto"]]
    assert main([*argv, "--out", str(a)]) == 0 and main([*argv, "--out", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()


# --- CLI: help and one-line user errors ---------------------------------------------------------

@pytest.mark.parametrize("kind", [None, "scatter", "pareto", "routing", "timeline"])
def test_help(capsys, kind):
    with pytest.raises(SystemExit) as e:
        main(["plot", "--help"] if kind is None else ["plot", kind, "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and ("KIND" in out if kind is None else "--out" in out)


def test_unknown_column_is_one_line_exit_2(files, capsys):
    rc = main(["plot", "scatter", str(files / "results.csv"), "--x", "step_tim_s", "--y", "mfu",
               "--out", str(files / "x.png")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: unknown column 'step_tim_s'")
    assert "did you mean 'step_time_s'" in err and "available:" in err


@pytest.mark.parametrize("argv, message", [
    (["scatter", "{d}/missing.csv", "--x", "a", "--y", "b", "--out", "{d}/x.png"], "no such file"),
    (["scatter", "{d}/results.csv", "--x", "mfu", "--y", "mfu", "--out", "{d}/x.pdf"], ".png or .svg"),
    (["routing", "{d}/empty.csv", "--by", "a", "--metric", "b", "--out", "{d}/x.png"], "empty table"),
    (["scatter", "{d}/results.csv", "--x", "mfu", "--y", "hardware", "--out", "{d}/x.png"],
     "not numeric"),
    (["pareto", "{d}/results.csv", "--x", "mfu", "--y", "mfu", "--where", "parallel.ep > 99",
      "--out", "{d}/x.png"], "no rows match"),
    (["pareto", "{d}/results.csv", "--x", "mfu", "--y", "mfu", "--mark", "parallel.ep=3",
      "--out", "{d}/x.png"], "no row matches"),
    (["timeline", "{d}/trace.json", "--start", "5", "--out", "{d}/x.png"], "time window is empty"),
    (["timeline", "{d}/results.csv", "--out", "{d}/x.png"], "Chrome trace"),
])
def test_user_errors(files, capsys, argv, message):
    (files / "empty.csv").write_text("a,b\n")
    rc = main(["plot", *(a.format(d=files) for a in argv)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and message in err


def test_read_table_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    _results().to_parquet(tmp_path / "r.parquet")
    df = plot.read_table(tmp_path / "r.parquet")
    assert len(df) == 24 and df.attrs["source"].endswith("r.parquet")
    fig = plot.scatter(df, "step_time_s", "mfu")
    assert fig.axes[0].get_ylabel() == "MFU (%)"
