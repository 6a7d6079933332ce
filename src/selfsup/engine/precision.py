"""``trainer.precision=auto``: bf16 mixed precision where the device computes in bf16 natively,
fp32 elsewhere, decided once when the config is composed (config.yaml holds the result)."""
from __future__ import annotations

import platform
from pathlib import Path

import torch

CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags of native bf16 arithmetic


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo); empty where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cpu_supports_bf16() -> bool:
    """AMX-bf16 or AVX512-bf16 in the CPU flags; off Linux, PyTorch's dispatch capability
    (AMX kernels imply bf16 tiles; plain AVX512 does not imply bf16, so it counts as no)."""
    if platform.system() == "Linux":
        return any(flag in cpu_flags() for flag in CPU_BF16_FLAGS)
    return "AMX" in torch.backends.cpu.get_cpu_capability().upper()


def cuda_supports_bf16() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def uses_cuda(accelerator: str) -> bool:
    """Whether ``trainer.accelerator`` puts training on CUDA (auto: when CUDA is available)."""
    if accelerator in ("gpu", "cuda"):
        return True
    return accelerator == "auto" and torch.cuda.is_available()


def auto_precision(accelerator: str) -> str:
    """``bf16-mixed`` where the accelerator supports bf16, else ``32-true``."""
    supported = cuda_supports_bf16() if uses_cuda(str(accelerator)) else cpu_supports_bf16()
    return "bf16-mixed" if supported else "32-true"


def resolve_precision(precision, accelerator: str):
    """``trainer.precision`` with ``auto`` replaced by :func:`auto_precision`; others as given."""
    return auto_precision(accelerator) if precision == "auto" else precision
