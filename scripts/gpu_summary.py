"""Summary of scripts/gpu_check.sh: achieved TFLOP/s against the device's matmul peak.

    python scripts/gpu_summary.py throughput-bfloat16.json throughput-float16.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def fmt(v, spec: str = ".3g") -> str:
    return "-" if v is None else format(v, spec)


def summarize(path: Path) -> list[str]:
    data = json.loads(path.read_text())
    mi = data.get("machine_info", {})
    lines = [f"{path.name}: {mi.get('cuda_device', '?')} ({mi.get('device', '?')}, "
             f"sm {mi.get('cuda_capability', '?')}), dtype {mi.get('dtype', '?')}"]
    for b in data["benchmarks"]:
        e, name = b["extra_info"], b["name"]
        if name.startswith("test_matmul_limit"):
            lines.append(f"  matmul {e['n']}^3 x{e['matmuls_per_round']}/round: {fmt(e['tflops'])} TFLOP/s of "
                         f"{fmt(e.get('device_peak_tflops'))} peak = {fmt(e.get('fraction_of_device_peak'), '.2f')}")
        elif name.startswith("test_native_rwkv6"):
            lines.append(f"  native RWKV-6 12x768, layers 1..11: {fmt(e['tokens_per_second'], '.0f')} tokens/s"
                         f" = {fmt(e.get('fraction_of_limit'), '.2f')} of the matmul limit; peak"
                         f" {fmt(e.get('peak_memory_mb'), '.0f')} MB for {fmt(e.get('model_weights_mb'), '.0f')} MB")
        elif name.startswith("test_layer_sweep"):
            lines.append(f"  Finch-1B6 shape full pass: {fmt(e['full_pass_tflops'])} TFLOP/s = "
                         f"{fmt(e.get('full_pass_fraction_of_device_peak'), '.3f')} of device peak, "
                         f"{fmt(e.get('full_pass_fraction_of_matmul_limit'), '.2f')} of the matmul limit; "
                         f"sweep 1..11 = {fmt(e['sweep_fraction_of_full_pass'], '.2f')} of the full pass; peak"
                         f" {fmt(e.get('peak_memory_mb'), '.0f')} MB for {fmt(e.get('model_weights_mb'), '.0f')} MB")
    return lines


def main(paths: list[str]) -> int:
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        print(f"gpu_summary: no benchmark JSON at {', '.join(missing)} (did the throughput step fail?)",
              file=sys.stderr)
        return 2
    for p in paths:
        print("\n".join(summarize(Path(p))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
