"""Where a number came from: package versions and the machine, recorded beside every result."""

from __future__ import annotations

import os
import platform
from importlib import metadata

import torch

VERSIONED_PACKAGES = (
    "jacdistill",
    "torch",
    "triton",
    "numpy",
    "scikit-learn",
    "sympy",
    "gplearn",
    "pyoperon",
    "pysr",
    "pluggy",
    "click",
    "pandas",
)


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as cpuinfo:  # Linux; platform.processor() says only x86_64
            models = (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
            return next(models, None)
    except OSError:
        return None


def machine(device: str = "cpu") -> dict:
    info = {
        "platform": platform.platform(),
        "processor": _cpu_model() or platform.processor() or platform.machine(),
        # the vector instructions torch's CPU kernels use: float rounding, so a teacher's digits
        # beyond the seventh and the formulas a student finds from them, can differ between two
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info
