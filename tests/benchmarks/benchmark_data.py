"""Benchmark: two-view training samples per second per worker (one core), ours against a naive baseline.

    .venv/bin/python tests/benchmarks/benchmark_data.py [--seconds 10] [--clips 4] [--samples 40] [--rounds 3] [--gop 8]

Measures `crisscross.data.PretrainViews` (decode the span covering all four windows once, augment each view as tensors,
log-mel) on: the embedded data set, raw 640x360 30 fps H.264 clips (keyframes 250 frames apart, some grain in the
picture), and the same clips prepared by `crisscross.prepare` (short side 128, 16 fps, a keyframe every `--gop` frames (8),
16 kHz mono), once as it does by default (x264's `fastdecode` tuning) and once with `fast_decode=False`. Each sample is
two views of 8x112x112 video and 2 s of audio, 'mild' relaxation, augmentation on. The naive baseline decodes each of
the four windows separately and augments frame by frame with PIL, as the official code did. "decode" is PretrainViews
with its transforms taken out (one `read_span` per sample, the four windows cut out): the most that ours could reach.

Machines differ, and so does one machine from hour to hour, so each row also times a fixed yardstick, interleaved
with it: the two-view span of
issue 3 (12 frames at 16 fps and 3 s of 16 kHz audio) read from a copy at short side 128, 16 fps, a keyframe every 16
frames, without `fastdecode`, which the issue measured at about 159 per second on one core. "ours at 159" scales ours
to a machine that reads the yardstick at 159 per second.

Rates are samples per second of this process's CPU time, on one thread (`torch.set_num_threads(1)`, one decoder
thread): what one data-loader worker delivers per core, and much less disturbed than wall time when other work
shares the machine. Wall-clock rates are printed too. They run alternately in rounds and each figure is the
median over the rounds, so that load elsewhere hits all of them alike; ratios are taken within the run.
Results: `nbs/results.ipynb`. Not a test: nothing is asserted.
"""
import argparse, os, statistics, tempfile, time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter
import torchvision.transforms.functional as TF

from crisscross.data import Item, PretrainViews, index_media
from crisscross.media import probe, read_audio, read_span
from crisscross.testing import write_test_video
from crisscross.prepare import prepare_collection
from crisscross.samplers import sample_windows
from crisscross.embedded import EmbeddedConfig, ensure_embedded
from crisscross.transforms import LogMel


class NaiveViews:
    "The baseline: each window decoded on its own; per-frame PIL augmentation (same parameters for a clip's frames)."
    def __init__(self, items, frames=8, fps=16, size=112, audio_seconds=2.0, relaxation="mild"):
        self.items, self.frames, self.fps, self.size, self.audio_seconds = items, frames, fps, size, audio_seconds
        self.relaxation, self.log_mel = relaxation, LogMel()
        self.infos = index_media([it.path for it in items], progress=False).infos

    def augment(self, frames, rng):
        h, w = frames.shape[1:3]
        area = h * w * rng.uniform(0.08, 1.0)
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = min(w, int(round((area * ratio) ** 0.5))), min(h, int(round((area / ratio) ** 0.5)))
        x0, y0 = rng.integers(0, w - cw + 1), rng.integers(0, h - ch + 1)
        flip, gray, blur = rng.random() < 0.5, rng.random() < 0.2, rng.random() < 0.5
        b, c, s, hue = rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4), rng.uniform(-0.2, 0.2)
        sigma = rng.uniform(0.1, 2.0)
        out = []
        for f in frames:
            img = Image.fromarray(f).crop((x0, y0, x0 + cw, y0 + ch)).resize((self.size, self.size), Image.BILINEAR)
            if flip: img = img.transpose(Image.FLIP_LEFT_RIGHT)
            img = TF.adjust_hue(TF.adjust_saturation(TF.adjust_contrast(TF.adjust_brightness(img, b), c), s), hue)
            if gray: img = img.convert("L").convert("RGB")
            if blur: img = img.filter(ImageFilter.GaussianBlur(sigma))
            out.append(TF.normalize(TF.to_tensor(img), [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]))
        return torch.stack(out, 1)

    def __getitem__(self, i):
        it = self.items[i % len(self.items)]
        rng = np.random.default_rng(i)
        w = sample_windows(self.infos[it.path].duration, self.relaxation, self.frames / self.fps, self.audio_seconds,
                           generator=torch.Generator().manual_seed(i))
        out = {}
        for name, (s, e) in w._asdict().items():
            if name[0] == "v": out[name] = self.augment(read_span(it.path, s, e, fps=self.fps, with_audio=False).video(s, e, self.frames).numpy(), rng)
            else: out[name] = self.log_mel(read_audio(it.path, s, e))
        return out


class ReferenceSpans:
    "The yardstick: the two-view span of issue 3 (3 s of sound, 12 frames at 16 fps in its middle), at random starts."
    def __init__(self, paths):
        self.paths = [str(p) for p in paths]
        self.infos = {p: probe(p) for p in self.paths}

    def __getitem__(self, i):
        path = self.paths[i % len(self.paths)]
        start = np.random.default_rng(i).uniform(0, self.infos[path].duration - 3.0)
        return read_span(path, start, start + 3.0, info=self.infos[path], short_side=128,
                         video_range=(start + 1.125, start + 1.875)).frames


REFERENCE_RATE = 159.0  # yardstick spans per second on one core, as issue 3 measured them


def unchanged(x, generator=None): return x


def decode_only(items, samples):
    "PretrainViews without its transforms: what decoding alone delivers."
    ds = PretrainViews(items, "mild", clips_per_video=samples, frames=8, size=112, audio_seconds=2.0, progress=False,
                       video_augment=unchanged, audio_augment=unchanged)
    ds.log_mel = unchanged
    return ds


def rates(dataset, start, n):
    "Samples per second of CPU time and of wall time, over samples start .. start + n - 1."
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(start, start + n): dataset[i % len(dataset)] if hasattr(dataset, "__len__") else dataset[i]
    return n / (time.process_time() - c0), n / (time.perf_counter() - t0)


def main(seconds=10.0, clips=4, samples=40, rounds=3, gop=8):
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="crisscross-bench-") as work: measure(Path(work), seconds, clips, samples, rounds, gop)


def measure(work: Path, seconds, clips, samples, rounds, gop=8):
    "Write the clips under `work`, prepare them, and print the table."
    raw = work / "raw"
    for i in range(clips): write_test_video(raw / f"clip{i}.mp4", seconds=seconds, size=(640, 360), fps=30, seed=i, grain=6)
    prepare_collection(raw, work / "prepared", short_side=128, fps=16, gop=gop, workers=2, progress=False)
    prepare_collection(raw, work / "prepared-cabac", short_side=128, fps=16, gop=gop, workers=2, progress=False, fast_decode=False)
    prepare_collection(raw, work / "reference", short_side=128, fps=16, gop=16, workers=2, progress=False, fast_decode=False)
    reference = ReferenceSpans(sorted((work / "reference").rglob("*.mp4")))
    embedded = ensure_embedded(work / "embedded", EmbeddedConfig(n_classes=4, clips_per_class=3, val_per_class=1, test_per_class=1),
                               progress=False)
    sets = {"embedded (128p, 16 fps)": sorted(embedded.rglob("*.mp4")),
            "raw 640x360 30 fps H.264": sorted(raw.rglob("*.mp4")),
            f"prepared 128p 16 fps gop {gop}": sorted((work / "prepared").rglob("*.mp4")),
            "  the same, fast_decode=False": sorted((work / "prepared-cabac").rglob("*.mp4"))}
    print(f"two-view samples per second of CPU time, one thread (8x112x112 video + 2 s audio per view, 'mild' relaxation, "
          f"augmentation on); median of {rounds} rounds of {samples} samples (naive: {max(samples // 4, 5)})")
    print(f"machine: {os.cpu_count()} cores, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} at the start; "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'files':30s} {'decode':>7s} {'ours':>7s} {'naive':>7s} {'ours/naive':>10s} {'ours/decode':>11s} {'yardstick':>9s} "
          f"{'ours at 159':>11s}   wall: ours, naive")
    for name, paths in sets.items():
        items = [Item(str(p)) for p in paths]
        runs = {"decode": decode_only(items, samples * rounds),
                "ours": PretrainViews(items, "mild", clips_per_video=samples * rounds, frames=8, size=112, audio_seconds=2.0, progress=False),
                "naive": NaiveViews(items), "yardstick": reference}
        for ds in runs.values(): ds[0]                                   # warm up (opens, caches)
        got = {k: [] for k in runs}
        for r in range(rounds):
            for k, ds in runs.items():
                n = max(samples // 4, 5) if k == "naive" else samples
                got[k].append(rates(ds, 1 + r * n, n))
        cpu = {k: statistics.median(c for c, _ in v) for k, v in got.items()}
        wall = {k: statistics.median(w for _, w in v) for k, v in got.items()}
        print(f"{name:30s} {cpu['decode']:7.1f} {cpu['ours']:7.1f} {cpu['naive']:7.1f} {cpu['ours'] / cpu['naive']:9.1f}x "
              f"{cpu['ours'] / cpu['decode']:10.2f} {cpu['yardstick']:9.1f} {cpu['ours'] * REFERENCE_RATE / cpu['yardstick']:11.1f}"
              f"   {wall['ours']:5.1f}, {wall['naive']:5.1f}")
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="length of each raw clip")
    ap.add_argument("--clips", type=int, default=4, help="raw clips (each also prepared)")
    ap.add_argument("--samples", type=int, default=40, help="samples per round for ours and decode (a quarter for naive)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; each figure is the median over them")
    ap.add_argument("--gop", type=int, default=8, help="keyframe interval of the prepared copies (frames)")
    a = ap.parse_args()
    main(a.seconds, a.clips, a.samples, a.rounds, a.gop)
