"""Benchmark: two-view training samples per second per worker (one core), ours against a naive baseline.

    .venv/bin/python tests/benchmark_data.py [--seconds 10] [--clips 4] [--samples 40]

Measures `crisscross.data.PretrainViews` (decode the span covering all four windows once, batched tensor
augmentation, log-mel) on: the embedded data set, raw 640x360 30 fps H.264 clips, and the same clips prepared by
`crisscross.prepare` (short side 128, 16 fps, a keyframe every 16 frames, 16 kHz mono). The naive baseline decodes
each of the four windows separately and augments frame by frame with PIL, as the official code did. Every figure
is printed with its ratio to the baseline on the same files in the same run. Not a test: nothing is asserted.
"""
import argparse, os, tempfile, time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter
import torchvision.transforms.functional as TF

from crisscross.data import Item, PretrainViews, index_media
from crisscross.media import read_audio, read_span
from crisscross.prepare import prepare_collection, write_test_clip
from crisscross.samplers import sample_windows
from crisscross.synthetic import SyntheticConfig, ensure_embedded
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


def rate(dataset, n):
    "Samples per second over `n` samples (after one warm-up sample)."
    dataset[0]
    t0 = time.perf_counter()
    for i in range(1, n + 1): dataset[i % len(dataset)] if hasattr(dataset, "__len__") else dataset[i]
    return n / (time.perf_counter() - t0)


def main(seconds=10.0, clips=4, samples=40):
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    work = Path(tempfile.mkdtemp(prefix="crisscross-bench-"))
    raw = work / "raw"
    for i in range(clips): write_test_clip(raw / f"clip{i}.mp4", seconds=seconds, size=(640, 360), fps=30, audio_rate=44100)
    prepare_collection(raw, work / "prepared", short_side=128, fps=16, gop=16, workers=2, progress=False)
    embedded = ensure_embedded(work / "embedded", SyntheticConfig(n_classes=4, clips_per_class=3, val_per_class=1, test_per_class=1))
    sets = {"embedded (128p, 16 fps)": sorted(embedded.rglob("*.mp4")),
            "raw 640x360 30 fps H.264": sorted(raw.rglob("*.mp4")),
            "prepared 128p 16 fps gop 16": sorted((work / "prepared").rglob("*.mp4"))}
    print(f"two-view samples per second, one core (8x112x112 video + 2 s audio per view, 'mild' relaxation, augmentation on); "
          f"{samples} samples each")
    print(f"{'files':32s} {'ours':>8s} {'naive':>8s} {'ratio':>7s}")
    for name, paths in sets.items():
        items = [Item(str(p)) for p in paths]
        ours = rate(PretrainViews(items, "mild", clips_per_video=samples, frames=8, size=112, audio_seconds=2.0, progress=False), samples)
        naive = rate(NaiveViews(items), max(samples // 4, 5))
        print(f"{name:32s} {ours:8.1f} {naive:8.1f} {ours / naive:6.1f}x")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0); ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--samples", type=int, default=40)
    a = ap.parse_args()
    main(a.seconds, a.clips, a.samples)
