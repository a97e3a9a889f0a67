"""Engine speed: wall time and peak RSS of full-size simulated steps, and analytic configs/s.

Run: python benchmarks/bench_engine.py   (prints figures; not a test: machines are noisy)
Each case runs in a fresh subprocess so RSS is per case.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

CASES = {
    "deepseek-v3 2048xH800 PP16 EP64 DP128": dict(
        model="deepseek-v3", hardware="h800", workload=dict(seq_len=4096, precision="fp8"),
        parallel=dict(devices=2048, pp=16, ep=64, global_batch_size=15360, recompute="selective", schedule="dualpipe"),
        routing=dict(a2a="hierarchical")),
    "deepseek-v3 100352xH800 (same pipeline, DP 6272)": dict(
        model="deepseek-v3", hardware="h800", workload=dict(seq_len=4096, precision="fp8"),
        parallel=dict(devices=100352, pp=16, ep=64, global_batch_size=752640, recompute="selective", schedule="dualpipe"),
        routing=dict(a2a="hierarchical")),
    "pangu-ultra-moe 6144xAscend-910B TP8 PP16 VPP2 EP4(xTP)": dict(
        model="pangu-ultra-moe-718b", hardware="ascend-910b", workload=dict(seq_len=4096),
        parallel=dict(devices=6144, tp=8, pp=16, vpp=2, ep=4, tp_extends_ep=True, micro_batch_size=2,
                      global_batch_size=1536, recompute="selective")),
}

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from sim.engine.spec import make_runspec
from sim.engine.run import simulate
spec = make_runspec(json.loads(sys.argv[1]))
t1 = time.perf_counter()
rep = simulate(spec, check_memory=False)
t2 = time.perf_counter()
print(json.dumps({"sim_s": t2 - t1, "rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                  "step_time_s": rep.step_time_s, "tokens_per_s_per_device": rep.tokens_per_s_per_device,
                  "fits": rep.fits}))
"""


def analytic_rate(n: int = 200) -> float:
    from sim.engine.run import simulate
    from sim.engine.spec import make_runspec
    specs = []
    for i in range(n):
        tp, pp = (1, 2, 4, 8)[i % 4], (1, 2, 4, 8)[(i // 4) % 4]
        specs.append(make_runspec(dict(model="mixtral-8x7b", hardware="h100-sxm", workload=dict(seq_len=4096),
                                       parallel=dict(devices=256, tp=tp, pp=pp, ep=8, global_batch_size=512,
                                                     micro_batch_size=1 + (i // 16) % 2),
                                       routing=dict(seed=i))))
    t = time.perf_counter()
    for s in specs:
        simulate(s, executor="analytic", check_memory=False)
    return n / (time.perf_counter() - t)


def main() -> None:
    for name, spec in CASES.items():
        out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True, text=True,
                             check=True, env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                                              "PATH": "/usr/bin:/bin"})
        d = json.loads(out.stdout)
        print(f"{name:58s} sim {d['sim_s']:6.2f} s  RSS {d['rss_gib']:.2f} GiB  "
              f"step {d['step_time_s']:.2f} s  {d['tokens_per_s_per_device']:.0f} tok/s/dev  fits={d['fits']}")
    print(f"analytic estimate: {analytic_rate():.0f} configs/s (one core)")


if __name__ == "__main__":
    main()
