# Copyright 2026 The hf-multinomial Authors. Apache-2.0.
"""What every benchmark script prints: the machine (with the CPU flags the kernels depend on) and markdown tables.

The scripts import it as a sibling module (`sys.path` gets this folder first)."""

import os
import platform
import subprocess
from typing import Any, Dict, List, Optional

import torch


def machine_info() -> Dict[str, Any]:
    """CPU model and cores, torch's CPU capability, the CPU flags that decide the bf16 and int8 kernels and what
    `precision="auto"` picks, threads, the 1-minute load, torch and Python versions, and the git commit."""
    from hf_multinomial.inference import cpu_features, resolve_precision

    model_name = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            model_name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model_name)
    except OSError:
        pass
    features = cpu_features()
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        commit = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "cpu": model_name,
        "cores": os.cpu_count(),
        "cpu_capability": features["capability"],
        "cpu_flags": sorted(flag for flag, present in features["flags"].items() if present),
        "auto_precision": resolve_precision("auto", "cpu"),
        "threads": torch.get_num_threads(),
        "load_1min": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "git_commit": commit,
    }


def print_table(title: Optional[str], rows: List[Dict[str, Any]], columns: List[str], digits: int = 4) -> None:
    """A markdown table of `rows` (dicts) over `columns`, floats to `digits` significant digits, after a
    `### title` line when `title` is given."""
    if title:
        print(f"\n### {title}\n")
    print("| " + " | ".join(columns) + " |")
    print("|" + "|".join("---" for _ in columns) + "|")
    for row in rows:
        cells = [row.get(c, "") for c in columns]
        print("| " + " | ".join(f"{v:.{digits}g}" if isinstance(v, float) else ("" if v is None else str(v))
                                for v in cells) + " |")
