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


def machine(device: str = "cpu") -> dict:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": device,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info
