"""Can the `cpu` preset's video network learn the embedded set's classes at all? A supervised check, not a test.

    .venv/bin/python tests/benchmarks/benchmark_embedded_learnable.py [--clips-per-class 40] [--steps 600] [--held-out 4]

Self-supervision can only find what a network is able to pick up from the pictures, so this trains the `cpu` preset's
video backbone (R(2+1)D, width 16, one block a stage) *with labels* on the embedded set's pictures and prints the
accuracy on held-out clips every 100 steps, next to a 5-NN probe on its features and on those of an untrained copy.
Frames come straight from `crisscross.embedded.render_clip` (nothing is encoded) and are shrunk to 64x64 as the
`cpu` preset's views are; each step draws 8 frames at 8 fps, a random crop of 40-100% of the area and a flip. The
held-out clips are the last ones of each class; nothing is selected on them. Results: `nbs/results.ipynb`.
Nothing is asserted.
"""
import argparse, math, time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from crisscross.encoders import r2plus1d_18
from crisscross.evaluation import knn_accuracy
from crisscross.embedded import CLASSES, GENERATOR_VERSION, EmbeddedConfig, render_clip, seed_for_clip

SIZE, FRAMES = 64, 8


def pictures(job):
    "One clip's frames at 8 fps, shrunk to SIZE x SIZE: float (3, T, SIZE, SIZE) in [0, 1]."
    cfg, k, i = job
    frames = torch.from_numpy(render_clip(cfg, k, seed_for_clip(cfg.seed, k, i))[0][::2]).permute(3, 0, 1, 2).float() / 255
    return F.interpolate(frames, size=(SIZE, SIZE), mode="area")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips-per-class", type=int, default=40)
    ap.add_argument("--held-out", type=int, default=4, help="clips per class kept out of training")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed); rng = np.random.default_rng(args.seed)
    cfg = EmbeddedConfig(clips_per_class=args.clips_per_class, val_per_class=0, test_per_class=args.held_out, seed=args.seed)
    jobs = [(cfg, k, i) for k in range(len(CLASSES)) for i in range(cfg.clips_per_class)]
    start = time.time()
    with ProcessPoolExecutor(2) as pool: x = torch.stack(list(pool.map(pictures, jobs, chunksize=8)))
    y = torch.tensor([k for _, k, _ in jobs])
    held = torch.tensor([i >= cfg.clips_per_class - args.held_out for _, _, i in jobs])
    print(f"generator version {GENERATOR_VERSION}: {len(jobs)} clips rendered in {time.time() - start:.0f} s; "
          f"{int((~held).sum())} to train on, {int(held.sum())} held out")
    mean = x[~held].mean((0, 2, 3, 4), keepdim=True)[0]  # per-channel mean of the training clips

    def augment(clips):
        out = torch.empty(len(clips), 3, FRAMES, SIZE, SIZE)
        for b, clip in enumerate(clips):
            side = int(SIZE * math.sqrt(rng.uniform(0.4, 1.0)))
            top, left, t0 = rng.integers(0, SIZE - side + 1), rng.integers(0, SIZE - side + 1), rng.integers(0, clip.shape[1] - FRAMES + 1)
            view = F.interpolate(clip[:, t0:t0 + FRAMES, top:top + side, left:left + side], size=(SIZE, SIZE), mode="bilinear", align_corners=False)
            out[b] = view.flip(-1) if rng.random() < 0.5 else view
        return out - mean

    @torch.no_grad()
    def features(net, clips):
        net.eval()
        return torch.cat([net(clips[i:i + 32, :, :FRAMES] - mean) for i in range(0, len(clips), 32)])

    def knn(net): return knn_accuracy(features(net, x[~held]), y[~held], features(net, x[held]), y[held], k=5)

    net, untrained = r2plus1d_18(width=16, depth=1), r2plus1d_18(width=16, depth=1)
    untrained.load_state_dict(net.state_dict())
    head = nn.Linear(net.out_dim, len(CLASSES))
    opt = torch.optim.Adam([*net.parameters(), *head.parameters()], 1e-3, weight_decay=1e-4)
    train_idx = torch.nonzero(~held)[:, 0].numpy()
    print(f"untrained: 5-NN held-out accuracy {knn(untrained):.3f} (chance {1 / len(CLASSES):.3f})")
    start = time.time()
    for step in range(1, args.steps + 1):
        net.train(); head.train()
        i = torch.from_numpy(rng.choice(train_idx, args.batch))
        loss = F.cross_entropy(head(net(augment(x[i]))), y[i])
        opt.zero_grad(); loss.backward(); opt.step()
        if step % 100 == 0 or step == args.steps:
            head.eval()
            with torch.no_grad():
                acc = lambda m: (head(features(net, x[m])).argmax(1) == y[m]).float().mean().item()
                train_acc, held_acc = acc(~held), acc(held)
            print(f"step {step:4d}: loss {loss.item():.3f}  accuracy train {train_acc:.3f} held-out {held_acc:.3f}  "
                  f"5-NN held-out {knn(net):.3f}  ({time.time() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
