"""Benchmark: the `paper` preset's training step on one GPU, alone and fed by the loader.

    .venv/bin/python tests/benchmarks/benchmark_gpu.py [--steps 20] [--batch 128] [--workers N] [--cpu-dry-run]

(1) step alone: the trainer's own step (`Pretraining.step`: bf16 autocast, channels_last_3d, LARC) on in-memory batches
already on the GPU: samples per second, how often the step made the host wait for the GPU (sync debug mode; 0 is the aim),
and the share of the GPU's dense bf16 peak it reaches from the FLOP count (~41 GFLOP per two-view sample, forward and
backward: video 8x112x112 17.1 x 2, audio 2 s 3.65 x 2; issue 22). (2) end to end: clips prepared by `crisscross.prepare`
(short side 128, 16 fps), decode-only loader workers (`augment_on="device"`, pinned batches) and `prepare_views` on the
GPU before each step: samples per second, and the share of the time the step waited for data. Under 5 minutes on one
GPU; prints one table. Without a GPU it says so and exits 0; `--cpu-dry-run` runs the same code on tiny shapes on the
CPU (tested by tests/test_transforms.py). Results: `nbs/results.ipynb`. Not a test: nothing is asserted.
"""
import argparse, os, tempfile, time, warnings
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from crisscross.data import Item, PretrainViews, collate_views, prepare_views
from crisscross.engine import DistEnv
from crisscross.testing import write_test_video
from crisscross.prepare import prepare_collection
from crisscross.trainer import Pretraining, config_from_preset, mel_frames, pretrain_augments

GFLOP_PER_SAMPLE = 41.0           # two-view sample, forward and backward, at the paper's shapes
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0}   # dense, no sparsity


def peak_tflops(name: str):
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)


def make_step(cfg, device, batch):
    "The trainer's own optimiser step (`Pretraining.step`: LARC, bf16 autocast and channels_last_3d on CUDA, the loss parts left on the device)."
    run = Pretraining(cfg, DistEnv(0, 1, 0, device, False), [None] * batch, None, Path(tempfile.gettempdir()), None)
    steps = iter(range(1 << 30))
    return lambda views: run.step(lambda: {**views, "skipped": []}, next(steps))["loss"]


def host_syncs(step, views, steps: int = 3):
    "How many times `steps` steps made the host wait for the GPU (torch.cuda's sync debug mode); None on a CPU."
    if views["v1"].device.type != "cuda": return None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(steps): step(views)
        finally: torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def sync(device):
    if device.type == "cuda": torch.cuda.synchronize()


def synthetic(cfg, device, batch, steps):
    "(1): samples per second of the step alone on in-memory batches."
    g = torch.Generator(device=device).manual_seed(0)
    v = lambda: torch.randn(batch, 3, cfg.frames, cfg.size, cfg.size, device=device, generator=g)
    a = lambda: torch.randn(batch, 1, 80, mel_frames(cfg.audio_seconds), device=device, generator=g)
    views = {"v1": v(), "v2": v(), "a1": a(), "a2": a()}
    if device.type == "cuda": views.update({k: views[k].contiguous(memory_format=torch.channels_last_3d) for k in ("v1", "v2")})
    step = make_step(cfg, device, batch)
    for _ in range(3): step(views)
    syncs = host_syncs(step, views)
    sync(device); t0 = time.perf_counter()
    for _ in range(steps): step(views)
    sync(device)
    return batch * steps / (time.perf_counter() - t0), syncs


def end_to_end(cfg, device, batch, steps, workers, work: Path, clips: int):
    "(2): samples per second through decode-only workers and `prepare_views`, and the share of time spent waiting for a batch."
    for i in range(clips): write_test_video(work / "raw" / f"clip{i}.mp4", seconds=8.0, size=(320, 240), fps=25, seed=i, grain=6)
    prepare_collection(work / "raw", work / "prepared", short_side=128, fps=16, gop=8, workers=max(1, workers), progress=False)
    items = [Item(str(p)) for p in sorted((work / "prepared").rglob("*.mp4"))]
    per_clip = -(-batch * (steps + 3) // len(items))
    views = PretrainViews(items, cfg.relaxation, clips_per_video=per_clip, frames=cfg.frames, fps=cfg.fps, size=cfg.size,
                          audio_seconds=cfg.audio_seconds, progress=False, **{**pretrain_augments(cfg), "augment_on": "device"})
    loader = DataLoader(views, batch_size=batch, shuffle=True, num_workers=workers, collate_fn=collate_views,
                        pin_memory=device.type == "cuda", persistent_workers=workers > 0, prefetch_factor=4 if workers else None)
    step, batches = make_step(cfg, device, batch), iter(loader)
    for _ in range(3): step(prepare_views(next(batches), views, device))
    sync(device); t0, waited = time.perf_counter(), 0.0
    for _ in range(steps):
        w0 = time.perf_counter(); raw = next(batches); waited += time.perf_counter() - w0
        step(prepare_views(raw, views, device))
    sync(device)
    total = time.perf_counter() - t0
    return batch * steps / total, waited / total


def main(steps, batch, workers, dry_run, clips):
    if not torch.cuda.is_available() and not dry_run:
        print("benchmark_gpu: no CUDA device on this machine: nothing measured (--cpu-dry-run runs tiny shapes on the CPU)")
        return
    device = torch.device("cpu" if dry_run else "cuda")
    if dry_run: torch.set_num_threads(1)   # as the tiny preset (cpu_threads=1): tiny ops on a shared CPU wait on each other's threads
    cfg = (config_from_preset("tiny", dataset="folder", audio_seconds=0.25, batch_size=batch) if dry_run
           else config_from_preset("paper", dataset="folder", batch_size=batch, channels_last=True))
    name = "cpu dry run (tiny preset)" if dry_run else torch.cuda.get_device_name()
    step_rate, syncs = synthetic(cfg, device, batch, steps)
    peak = None if dry_run else peak_tflops(name)
    share = f"{100 * step_rate * GFLOP_PER_SAMPLE / (peak * 1e3):.1f}%" if peak else "n/a"
    with tempfile.TemporaryDirectory(prefix="crisscross-gpu-bench-") as work:
        e2e_rate, waiting = end_to_end(cfg, device, batch, steps, workers, Path(work), clips)
    print(f"device: {name}; preset {'tiny' if dry_run else 'paper'}; batch {batch}; {steps} timed steps; {workers} loader workers; "
          f"{os.cpu_count()} cores; host synchronisations in 3 steps: {'n/a (CPU)' if syncs is None else syncs}")
    print(f"{'step alone (samples/s)':>24s} {'share of bf16 peak':>19s} {'end to end (samples/s)':>23s} {'waiting for data':>17s}")
    print(f"{step_rate:24.1f} {share:>19s} {e2e_rate:23.1f} {100 * waiting:16.1f}%")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20, help="timed steps of each part (after 3 warm-up steps)")
    ap.add_argument("--batch", type=int, default=128, help="samples per step")
    ap.add_argument("--workers", type=int, default=None, help="loader workers (default: all cores but one)")
    ap.add_argument("--clips", type=int, default=8, help="raw clips written and prepared for the end-to-end part")
    ap.add_argument("--cpu-dry-run", action="store_true", help="tiny shapes on the CPU: checks that the script runs")
    a = ap.parse_args()
    dry = a.cpu_dry_run
    main(a.steps if not dry else 2, a.batch if not dry else 4, a.workers if a.workers is not None else (0 if dry else max(1, (os.cpu_count() or 2) - 1)),
         dry, a.clips if not dry else 2)
