"""Which precision ``--backend openvino`` runs in on this CPU, and the tag its vectors carry.

Apart from the backend (no numpy, no OpenVINO), so a vector's identity (``artifacts.vector_backend``)
and the footprint check can ask without loading a runtime. bf16 only where the CPU computes it
natively (``avx512_bf16`` or ``amx_bf16`` in /proc/cpuinfo's flags): emulated bf16 is slower than
fp32, and OpenVINO would pick it on its own, so the precision is always set explicitly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from memtui.errors import UsageError

BACKEND = "openvino"
#: The precisions, as memtui names them (the cache tag) and as OpenVINO's hint spells them.
HINTS = {"bf16": "bf16", "fp32": "f32"}
#: The CPU flags that mean native bf16 arithmetic (AVX-512 BF16 or AMX).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
PRECISION_ENV = "MEMTUI_OPENVINO_PRECISION"
_CPUINFO_BOUND = 4 * 2**20


def cpu_flags(cpuinfo: str | None = None) -> frozenset[str]:
    """The first ``flags`` line of /proc/cpuinfo (or of ``cpuinfo``); empty when there is none (arm64)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
                cpuinfo = fh.read(_CPUINFO_BOUND)
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def choose_precision(flags: frozenset[str], env: Mapping[str, str] | None = None) -> str:
    """bf16 where the CPU computes it natively, fp32 otherwise; ``MEMTUI_OPENVINO_PRECISION`` may force fp32."""
    env = os.environ if env is None else env
    native = "bf16" if flags & BF16_FLAGS else "fp32"
    wanted = env.get(PRECISION_ENV, "").strip().lower()
    if not wanted:
        return native
    if wanted not in HINTS:
        raise UsageError(f"{PRECISION_ENV}={wanted!r} is not a precision; set bf16 or fp32, or unset it")
    if wanted == "bf16" and native != "bf16":
        raise UsageError(
            f"{PRECISION_ENV}=bf16 but this CPU has neither {' nor '.join(sorted(BF16_FLAGS))}; set fp32 or unset it"
        )
    return wanted


def precision() -> str:
    """This machine's precision (bf16 or fp32)."""
    return choose_precision(cpu_flags())


def vector_tag(chosen: str | None = None) -> str:
    """The backend as part of a vector's identity: ``openvino/bf16`` or ``openvino/fp32``."""
    return f"{BACKEND}/{chosen or precision()}"


def why(chosen: str, flags: frozenset[str]) -> str:
    if os.environ.get(PRECISION_ENV):
        return f"set by {PRECISION_ENV}"
    have = sorted(flags & BF16_FLAGS)
    return f"the CPU has {', '.join(have)}" if have else "the CPU has no native bf16"
