"""Benchmark: where the augmentation runs. (a) CPU cost per two-view sample in a loader worker, (b) device augmentation throughput.

    .venv/bin/python tests/benchmarks/benchmark_device_augment.py [--seconds 10] [--clips 4] [--samples 30] [--rounds 3] [--batch 32] [--part a|b]

(a) On clips prepared as `benchmark_data.py` prepares them (`crisscross.prepare`: short side 128, 16 fps, a keyframe
every 8 frames, 16 kHz mono), one thread: samples per second of this process's CPU time for bare decoding (PretrainViews
with its transforms taken out), today's loader path (`augment_on="loader"`: decode, augment, log-mel in the worker) and the
decode-only worker (`augment_on="device"`: decode and draw every parameter). They run alternately in rounds; each figure
is the median over the rounds, and the ratios are taken within the run.
(b) `prepare_views` on collated decode-only batches of `--batch` samples (crop-resize-flip, colour, grey, blur, cutout,
log-mel and audio augmentation of both views): samples per second on the CPU (all its threads) and on CUDA where present,
with the batched kernels (one call per operation) and with the per-clip ones.
Results: `nbs/results.ipynb`. Not a test: nothing is asserted.
"""
import argparse, os, statistics, sys, tempfile, time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from benchmark_data import decode_only, rates   # the same bare decoding and the same timer
from crisscross.data import Item, PretrainViews, collate_views, prepare_views
from crisscross.testing import write_test_video
from crisscross.prepare import prepare_collection


def worker_costs(items, samples, rounds):
    "(a): median samples per CPU-second of decode, loader and device over `rounds` interleaved rounds."
    kw = dict(clips_per_video=samples * rounds + 1, frames=8, size=112, audio_seconds=2.0, progress=False)
    runs = {"decode": decode_only(items, samples * rounds + 1), "loader": PretrainViews(items, "mild", **kw),
            "device": PretrainViews(items, "mild", augment_on="device", **kw)}
    for ds in runs.values(): ds[0]
    got = {k: [] for k in runs}
    for r in range(rounds):
        for k, ds in runs.items(): got[k].append(rates(ds, 1 + r * samples, samples)[0])
    return {k: statistics.median(v) for k, v in got.items()}, runs["device"]


def device_rate(views, batch, device, batched, repeats=3):
    "(b): samples per second of `prepare_views` on `device` for one collated batch (best of `repeats`, after a warm-up)."
    raw = collate_views([views[i] for i in range(batch)])
    prepare_views(raw, views, device, batched)
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda": torch.cuda.synchronize()
        t0 = time.perf_counter(); prepare_views(raw, views, device, batched)
        if device.type == "cuda": torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return batch / best


def print_costs(items, samples, rounds):
    "(a): the table of samples per CPU-second in one worker, one thread; returns the decode-only data set."
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    cost, views = worker_costs(items, samples, rounds)
    torch.set_num_threads(threads)
    print(f"(a) two-view samples per CPU-second in one worker, one thread, prepared 128p 16 fps gop 8 "
          f"(8x112x112 + 2 s audio per view); median of {rounds} interleaved rounds of {samples}")
    print(f"{'decode':>8s} {'loader':>8s} {'device':>8s} {'device/loader':>14s} {'device/decode':>14s}")
    print(f"{cost['decode']:8.1f} {cost['loader']:8.1f} {cost['device']:8.1f} {cost['device'] / cost['loader']:13.2f}x "
          f"{cost['device'] / cost['decode']:13.2f}")
    return views


def print_device_rates(views, batch):
    "(b): `prepare_views` samples per second on the CPU (all its threads) and on CUDA where present, batched and per clip."
    threads = torch.get_num_threads()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"(b) prepare_views on a collated batch of {batch} decode-only samples (both views, video and audio), best of 3")
    for d in devices:
        for batched in (True, False):
            label = (f"cpu ({threads} threads)" if d.type == "cpu" else torch.cuda.get_device_name()) + (", batched" if batched else ", per clip")
            print(f"{label:40s} {device_rate(views, batch, d, batched):10.1f} samples/s")
    if len(devices) == 1: print("(no CUDA device here: the CUDA row is left out)")


def main(seconds=10.0, clips=4, samples=30, rounds=3, batch=32, part="ab"):
    with tempfile.TemporaryDirectory(prefix="crisscross-bench-") as work:
        work = Path(work)
        for i in range(clips): write_test_video(work / "raw" / f"clip{i}.mp4", seconds=seconds, size=(640, 360), fps=30, seed=i, grain=6)
        prepare_collection(work / "raw", work / "prepared", short_side=128, fps=16, gop=8, workers=2, progress=False)
        items = [Item(str(p)) for p in sorted((work / "prepared").rglob("*.mp4"))]
        print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the start")
        views = print_costs(items, samples, rounds) if "a" in part else None
        if "b" in part:
            views = views or PretrainViews(items, "mild", clips_per_video=batch, frames=8, size=112, audio_seconds=2.0,
                                           progress=False, augment_on="device")
            print_device_rates(views, batch)
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each raw clip")
    ap.add_argument("--clips", type=int, default=4, help="raw clips (each prepared)")
    ap.add_argument("--samples", type=int, default=30, help="samples per round and path")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; each figure is the median over them")
    ap.add_argument("--batch", type=int, default=32, help="batch size of (b)")
    ap.add_argument("--part", choices=("a", "b", "ab"), default="ab", help="run only (a) or only (b) (default both)")
    a = ap.parse_args()
    main(a.seconds, a.clips, a.samples, a.rounds, a.batch, a.part)
