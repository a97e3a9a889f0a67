"""Hardware profiles in hw_profiles/: they load, they are sourced, their numbers are plausible,
and a bad profile is a UserError that names the field."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sim.config import load_hardware, profile_names
from sim.config.load import profile_dir
from sim.errors import UserError

REQUIRED = {
    "ascend-910b", "ascend-910c-supernode", "a100-80g", "h100-sxm",
    "h800", "h200", "b200", "gb200-nvl72",
}
NO_FP8 = {"ascend-910b", "ascend-910c-supernode", "a100-80g"}

PROFILE_DIR = Path(__file__).resolve().parents[1] / "hw_profiles"
PROFILE_FILES = sorted(PROFILE_DIR.glob("*.yaml"))


def _ids(paths):
    return [p.stem for p in paths]


def test_profile_dir_is_repository_hw_profiles(monkeypatch):
    monkeypatch.delenv("MOE_SIM_PROFILES", raising=False)
    assert profile_dir().resolve() == PROFILE_DIR


def test_required_profiles_exist():
    stems = {p.stem for p in PROFILE_FILES}
    missing = REQUIRED - stems
    assert not missing, f"missing profiles: {sorted(missing)}"
    assert REQUIRED <= set(profile_names())


@pytest.mark.parametrize("path", PROFILE_FILES, ids=_ids(PROFILE_FILES))
def test_profile_loads_and_name_matches_stem(path):
    hw = load_hardware(path.stem)
    assert hw.name == path.stem
    assert hw.description
    # loading by explicit path gives the same profile
    assert load_hardware(str(path)) == hw


# --- every number carries a comment (a public source or an ASSUMPTION) -----------------------

_LINE = re.compile(r"^(?P<indent>\s*)(?:-\s+)?(?:(?P<key>[A-Za-z_][\w]*)\s*:)?\s*(?P<value>.*)$")


def _split_comment(line: str) -> tuple[str, str | None]:
    """Split 'code  # comment' outside quotes. Returns (code, comment or None)."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i], line[i + 1:].strip()
    return line, None


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _numeric_value(text: str) -> bool:
    """True when a YAML scalar or flow list holds a number (e.g. '353.9' or '[10.0, 0.68]')."""
    text = text.strip()
    if not text:
        return False
    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        return False
    if _is_number(v):
        return True
    return isinstance(v, list) and any(_is_number(x) for x in v)


def numeric_lines_without_source(text: str) -> list[tuple[int, str]]:
    """(line number, line) for every line with a numeric value and no meaningful comment."""
    bad = []
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        code, comment = _split_comment(line)
        m = _LINE.match(code)
        if not m or not _numeric_value(m.group("value")):
            continue
        if comment is None or len(comment) < 8:
            bad.append((no, line))
    return bad


def test_comment_checker_catches_unsourced_numbers():
    text = (
        "device:\n"
        "  hbm_gib: 80.0\n"
        "  hbm_bandwidth_GBps: 2039.0   # NVIDIA A100 datasheet\n"
        "  gemm_efficiency:\n"
        "    - [1.0, 0.4]\n"
        "    - [10.0, 0.8]   # ASSUMPTION: plateau\n"
        "  name: A100 80GB\n"
        'description: "8 x 200 Gb/s"\n'
    )
    assert [no for no, _ in numeric_lines_without_source(text)] == [2, 5]


@pytest.mark.parametrize("path", PROFILE_FILES, ids=_ids(PROFILE_FILES))
def test_every_number_has_a_source_comment(path):
    bad = numeric_lines_without_source(path.read_text())
    assert not bad, f"{path.name}: numbers without a source or ASSUMPTION comment:\n" + "\n".join(
        f"  line {no}: {line.strip()}" for no, line in bad
    )


@pytest.mark.parametrize("path", PROFILE_FILES, ids=_ids(PROFILE_FILES))
def test_assumption_comments_give_a_reason(path):
    for no, line in enumerate(path.read_text().splitlines(), 1):
        _, comment = _split_comment(line)
        if comment and "ASSUMPTION" in comment:
            reason = comment.split("ASSUMPTION", 1)[1].lstrip(": ").strip()
            assert len(reason) >= 10, f"{path.name} line {no}: ASSUMPTION without a reason"


# --- plausibility ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", PROFILE_FILES, ids=_ids(PROFILE_FILES))
def test_peaks_and_specs_are_plausible(path):
    hw = load_hardware(path.stem)
    d, p = hw.device, hw.device.peak_tflops
    assert 100 <= p.bf16 <= 5000, "dense BF16 peak out of range (sparse figure by mistake?)"
    if p.fp16 is not None:
        assert p.bf16 <= p.fp16 <= 1.1 * p.bf16
    if p.fp8 is not None:
        assert p.fp8 == pytest.approx(2 * p.bf16, rel=0.01), "dense FP8 peak should be 2 x dense BF16"
    if hw.name in NO_FP8:
        assert p.fp8 is None
        with pytest.raises(ValueError):
            hw.peak_flops("fp8")
    else:
        assert p.fp8 is not None
    assert hw.peak_flops("bf16") == p.bf16 * 1e12

    assert 16 <= d.hbm_gib <= 300
    assert 500 <= d.hbm_bandwidth_GBps <= 10_000
    assert 0 < d.reserved_memory_gib < 0.1 * d.hbm_gib
    assert 0.5 <= d.memory_efficiency <= 0.95
    assert d.power_w is not None and 250 <= d.power_w <= 1500

    xs = [x for x, _ in d.gemm_efficiency]
    ys = [y for _, y in d.gemm_efficiency]
    assert len(xs) >= 4
    assert xs[0] <= 0.1 and xs[-1] >= 1000, "curve should span small to very large GEMMs"
    assert ys == sorted(ys), "efficiency should not fall as GEMMs grow"
    assert ys[0] < 0.2, "tiny GEMMs are launch-bound"
    assert 0.6 <= ys[-1] <= 0.9, "large-GEMM plateau below ~0.9 of dense peak"

    n, s, c = hw.node, hw.scale_out, hw.collective_efficiency
    assert n.devices_per_node >= 8
    assert 100 <= n.intra_node_bandwidth_GBps <= 1000
    assert 100 <= s.nic_bandwidth_Gbps <= 800
    # the scale-up fabric is much faster than the NIC
    assert n.intra_node_bandwidth_GBps > 3 * s.nic_bandwidth_GBps
    assert 0 < n.intra_node_latency_us < s.latency_us <= 10
    assert s.oversubscription >= 1
    for v in (c.intra_node, c.inter_node, c.all_to_all_intra, c.all_to_all_inter):
        assert 0.4 <= v <= 0.95
    assert c.all_to_all_intra <= c.intra_node


def test_kinds():
    for name in REQUIRED:
        hw = load_hardware(name)
        assert hw.kind == ("npu" if name.startswith("ascend") else "gpu")


def test_scale_up_domains():
    assert load_hardware("gb200-nvl72").node.devices_per_node == 72
    sn = load_hardware("ascend-910c-supernode").node
    assert sn.devices_per_node >= 384 and sn.topology == "switch"
    assert load_hardware("ascend-910b").node.topology == "full_mesh"


# --- bad profiles ------------------------------------------------------------------------------

def _write_variant(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load((PROFILE_DIR / "h100-sxm.yaml").read_text())
    edit(data)
    out = tmp_path / "bad-profile.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


def test_negative_bandwidth_is_user_error_naming_field(tmp_path):
    path = _write_variant(tmp_path, lambda d: d["scale_out"].__setitem__("nic_bandwidth_Gbps", -400))
    with pytest.raises(UserError) as exc:
        load_hardware(str(path))
    assert "scale_out.nic_bandwidth_Gbps" in str(exc.value)


def test_negative_intra_node_bandwidth_is_user_error_naming_field(tmp_path):
    path = _write_variant(tmp_path, lambda d: d["node"].__setitem__("intra_node_bandwidth_GBps", -1.0))
    with pytest.raises(UserError) as exc:
        load_hardware(str(path))
    assert "node.intra_node_bandwidth_GBps" in str(exc.value)


def test_unknown_key_is_user_error_naming_field(tmp_path):
    path = _write_variant(tmp_path, lambda d: d["device"].__setitem__("hbm_bandwith_GBps", 3350.0))
    with pytest.raises(UserError) as exc:
        load_hardware(str(path))
    msg = str(exc.value)
    assert "device.hbm_bandwith_GBps" in msg and "unknown key" in msg


def test_unknown_profile_name_is_user_error():
    with pytest.raises(UserError) as exc:
        load_hardware("no-such-accelerator")
    assert "no-such-accelerator" in str(exc.value)
