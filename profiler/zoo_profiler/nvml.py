"""Measured GPU energy from NVML's total-energy counter (mJ since the driver loaded, Volta or newer).

The counter updates every ~20-100 ms, so the forward pass is repeated over a window of seconds and
the energy is divided by the number of passes. Idle power is measured over a short pause first, so
the report gives both the raw energy and the energy above idle (spec section 3). pynvml is used when
installed, else libnvidia-ml through ctypes; on a machine without CUDA nothing is measured.
"""

from __future__ import annotations

import ctypes
import time
from typing import Any, Callable

import torch
import torch.nn as nn

from zoo_profiler.counter import run_model


def _nvml_index(device: torch.device) -> int:
    try:  # honours CUDA_VISIBLE_DEVICES; private in torch, so fall back to the CUDA index
        return torch.cuda._get_nvml_device_index(device)
    except Exception:  # noqa: BLE001
        return device.index if device.index is not None else torch.cuda.current_device()


def energy_counter(device: torch.device) -> tuple[Callable[[], float] | None, str]:
    """(read() -> joules so far, how) for the GPU `device`, or (None, why not)."""
    index = _nvml_index(device)
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        return (lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1000.0), "pynvml"
    except ImportError:
        pass
    except Exception as error:  # noqa: BLE001 - e.g. a GPU older than Volta
        return None, f"pynvml: {type(error).__name__}: {error}"
    try:
        lib = ctypes.CDLL("libnvidia-ml.so.1")
    except OSError as error:
        return None, f"libnvidia-ml.so.1 not found ({error})"
    handle = ctypes.c_void_p()
    if lib.nvmlInit_v2() != 0 or lib.nvmlDeviceGetHandleByIndex_v2(ctypes.c_uint(index), ctypes.byref(handle)) != 0:
        return None, "NVML could not be initialised"
    value = ctypes.c_ulonglong()

    def read() -> float:
        rc = lib.nvmlDeviceGetTotalEnergyConsumption(handle, ctypes.byref(value))
        if rc != 0:
            raise RuntimeError(f"nvmlDeviceGetTotalEnergyConsumption failed with NVML error {rc}")
        return value.value / 1000.0

    try:
        read()
    except RuntimeError as error:
        return None, str(error)
    return read, "libnvidia-ml (ctypes)"


def measure_gpu_energy(model: nn.Module, inputs: Any, seconds: float = 2.0, idle_seconds: float = 1.0) -> dict[str, Any]:
    """Energy of one forward pass measured by NVML, or {"available": False, "reason": ...}.

    Runs the forward pass repeatedly for at least `seconds` (after 3 warm-up passes) and idles for
    `idle_seconds` to estimate idle power. The caller sets no_grad/eval.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    if device.type != "cuda":
        return {"available": False, "reason": f"the model is on {device.type}, not a CUDA GPU"}
    read, how = energy_counter(device)
    if read is None:
        return {"available": False, "reason": how}
    result = measure(lambda: run_model(model, inputs), read, lambda: torch.cuda.synchronize(device),
                     seconds, idle_seconds)
    return {"available": True, "device": torch.cuda.get_device_name(device),
            "method": f"NVML total energy ({how})", **result}


def measure(run: Callable[[], Any], read: Callable[[], float], sync: Callable[[], Any], seconds: float,
            idle_seconds: float, clock: Callable[[], float] = time.perf_counter,
            sleep: Callable[[float], Any] = time.sleep) -> dict[str, Any]:
    """The measuring loop, apart from NVML so that it can be checked with a simulated counter.

    `read()` returns the energy counter in joules. Returns forwards, window_s, idle_power_w,
    energy_j (counter delta per forward) and adjusted_energy_j (minus idle power x time).
    """
    for _ in range(3):
        run()
    sync()
    e0, t0 = read(), clock()
    sleep(idle_seconds)
    idle_power = (read() - e0) / (clock() - t0)
    forwards = 0
    e0, t0 = read(), clock()
    while True:
        run()
        forwards += 1
        sync()
        elapsed = clock() - t0
        if elapsed >= seconds:
            break
    spent = read() - e0
    return {
        "forwards": forwards, "window_s": elapsed, "idle_power_w": idle_power,
        "energy_j": spent / forwards, "adjusted_energy_j": (spent - idle_power * elapsed) / forwards,
        "note": "energy_j = counter delta / forwards; adjusted_energy_j subtracts idle power x time. "
                "The counter updates every ~20-100 ms: windows of seconds, one warm GPU.",
    }
