"""Size and speed of a DeepLabV3+: parameters per part, FLOPs of one forward, measured inference latency."""

from __future__ import annotations

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from paperkd.models.deeplabv3plus import deeplabv3plus, parameter_counts


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def model_summary(backbone: str, input_size: int = 513, device: str | torch.device = "cpu", repeats: int = 3,
                  num_classes: int = 21) -> dict:
    """Parameters, GFLOPs and latency of a randomly initialised DeepLabV3+ ``backbone`` (OS16), batch 1.

    Returns a flat dict (one row of a table): ``backbone``, ``input_size``, ``num_classes``, ``device``,
    ``params_backbone``, ``params_aspp``, ``params_decoder``, ``params_total`` (trainable), ``gflops`` and
    ``latency_ms``, ``repeats``.

    ``gflops`` = FLOPs / 1e9 of one forward of a ``1 x 3 x input_size x input_size`` input, as counted by
    ``torch.utils.flop_counter.FlopCounterMode``: a multiply-add counts as 2 FLOPs, and only matrix products and
    convolutions are counted (BN, ReLU, pooling and the bilinear resizes are not). ``latency_ms`` is the median of
    ``repeats`` timed eval-mode forwards under ``torch.inference_mode`` after two warm-up forwards, synchronising
    the GPU around each when ``device`` is CUDA.
    """
    device = torch.device(device)
    model = deeplabv3plus(backbone, num_classes=num_classes).to(device).eval()
    x = torch.randn(1, 3, input_size, input_size, device=device)
    counts = parameter_counts(model)
    with torch.inference_mode():
        with FlopCounterMode(display=False) as counter:
            model(x)
        flops = counter.get_total_flops()
        for _ in range(2):  # warm-up: allocator, cuDNN algorithm choice
            model(x)
        times = []
        for _ in range(max(1, repeats)):
            _synchronize(device)
            start = time.perf_counter()
            model(x)
            _synchronize(device)
            times.append((time.perf_counter() - start) * 1e3)
    return {
        "backbone": backbone,
        "input_size": input_size,
        "num_classes": num_classes,
        "device": str(device),
        **{f"params_{part}": n for part, n in counts.items()},
        "gflops": flops / 1e9,
        "latency_ms": statistics.median(times),
        "repeats": max(1, repeats),
    }
