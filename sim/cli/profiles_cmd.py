"""`moe-sim profiles list|show NAME`: the hardware profiles."""

from __future__ import annotations

from sim.cli.output import add_format_arg, emit
from sim.config import load_hardware, profile_names


def add_parser(sub):
    p = sub.add_parser("profiles", help="list or show hardware profiles",
                       description="Hardware profiles live in hw_profiles/*.yaml; every number cites its source.")
    ps = p.add_subparsers(dest="action", metavar="ACTION")
    ps.required = True
    lp = ps.add_parser("list", help="one line per profile")
    add_format_arg(lp)
    sp = ps.add_parser("show", help="every field of one profile")
    sp.add_argument("name", metavar="NAME_OR_YAML")
    add_format_arg(sp)
    return p


def run(args) -> int:
    if args.action == "list":
        rows = []
        for n in profile_names():
            hw = load_hardware(n)
            d = hw.device
            rows.append({
                "name": hw.name, "kind": hw.kind, "device": d.name,
                "bf16_tflops": d.peak_tflops.bf16, "fp8_tflops": d.peak_tflops.fp8,
                "hbm_gib": d.hbm_gib, "devices_per_node": hw.node.devices_per_node,
                "intra_node_GBps": hw.node.intra_node_bandwidth_GBps,
                "nic_Gbps": hw.scale_out.nic_bandwidth_Gbps,
            })
        emit(rows, args.format)
        return 0
    hw = load_hardware(args.name)
    data = hw.model_dump(mode="json")
    if args.format == "table":
        flat: dict = {}

        def walk(prefix: str, v) -> None:
            if isinstance(v, dict):
                for k, x in v.items():
                    walk(f"{prefix}.{k}" if prefix else k, x)
            else:
                flat[prefix] = v

        walk("", data)
        emit(flat, "table")
    else:
        emit(data, "json")
    return 0
