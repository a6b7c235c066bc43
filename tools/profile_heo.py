"""Where a distillation step's time goes on a GPU: kernels launched, GPU-busy time and wall time per step, for the
benchmark's rows (plain ResNet-18 step, teacher forward, Heo et al., proposed), plus the profiler's top operators of
the Heo step. Wrote results/bench/checks/profile-heo-gpu.json (its numbers, with what and how).

    PYTHONPATH=. python tools/profile_heo.py            # crop 513, batch 6, on CUDA; OUT=folder for the JSON
    DEV=cpu SIZE=65 PYTHONPATH=. python tools/profile_heo.py   # a quick check that the script runs, on a CPU
"""
import json
import os
import time

import torch
from torch.profiler import ProfilerActivity, profile

from paperkd.bench import TeacherSettings, build_rows
from paperkd.train import StepTimer

dev = torch.device(os.environ.get("DEV", "cuda"))
size = int(os.environ.get("SIZE", "513"))


def sync() -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


rows = build_rows(["r18-heo", "r18-both"], size, 6 if size > 100 else 2, dev, TeacherSettings(), teacher_step=False)
timer = StepTimer(dev)
out = {}
for row in rows:
    for _ in range(4):  # warm-up: cuDNN autotuning, allocator
        row.step(timer)
        timer.current = {}
    sync()
    walls = []
    for _ in range(10):
        start = time.perf_counter()
        row.step(timer)
        sync()
        walls.append(time.perf_counter() - start)
        timer.current = {}
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        for _ in range(3):
            row.step(timer)
            timer.current = {}
        sync()
    kernels = [e for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
               and "memcpy" not in e.name.lower() and "memset" not in e.name.lower()]
    key = f"{row.preset}/{row.kind}"
    out[key] = {"kernels_per_step": len(kernels) / 3,
                "gpu_busy_ms_per_step": sum(e.device_time_total for e in kernels) / 1000 / 3,
                "wall_ms_median": 1000 * sorted(walls)[len(walls) // 2]}
    print(key, out[key], flush=True)
    if row.preset == "r18-heo":
        print(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=25, max_name_column_width=60))
with open(os.path.join(os.environ.get("OUT", "."), "profile-heo.json"), "w") as f:
    json.dump(out, f, indent=1)
