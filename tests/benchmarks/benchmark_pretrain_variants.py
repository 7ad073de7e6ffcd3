"""What does a change to the main job's training do to its features? A measurement on the validation split, not a test.

    .venv/bin/python tests/benchmarks/benchmark_pretrain_variants.py NAME ['{"terms": ["sync", "async"]}'] [--out /tmp/variants]
    .venv/bin/python tests/benchmarks/benchmark_pretrain_variants.py random          # the randomly initialised baseline
    .venv/bin/python tests/benchmarks/benchmark_pretrain_variants.py random --layers # ... also scored on conv4x/conv5x, avg/max pooled

Trains the `cpu` preset with the given `TrainConfig` overrides (JSON; "aug" holds extra `VideoAugment` arguments, e.g.
'{"aug": {"blur_p": 0.0, "max_cutout": 0}}'), then scores the backbones' features of the embedded set's **validation**
clips against its training clips: a 5-NN vote and a logistic regression on standardised features (C=0.1), 2 clips per
file. `--layers` also scores the last two stages' maps (conv4x, conv5x), each average- and max-pooled. The test split
is never read, so variants can be compared and chosen here. Results: `nbs/results.ipynb`. Nothing is asserted.
"""
import argparse, json, time
from pathlib import Path

import torch
from torch import nn
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

import crisscross.trainer as trainer
from crisscross.data import LabelledClips, labelled_csv
from crisscross.evaluation import extract_features, knn_accuracy
from crisscross.embedded import ensure_embedded


def linear_accuracy(tx, ty, vx, vy) -> float:
    scale = StandardScaler().fit(tx)
    model = LogisticRegression(max_iter=2000, C=0.1).fit(scale.transform(tx), ty)
    return float((model.predict(scale.transform(vx)) == vy).mean())


class PooledStage(nn.Module):
    "A backbone cut after stage `name`, its map pooled over time and space by `pool` ('avg' or 'max')."
    def __init__(self, net, name: str, pool: str):
        super().__init__(); self.net, self.name, self.pool = net, name, pool

    def forward(self, x):
        h = self.net.feature_maps(x)[self.name].flatten(2)
        return h.amax(-1) if self.pool == "max" else h.mean(-1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", help="the variant's name ('random': no training, the random-init baseline)")
    ap.add_argument("overrides", nargs="?", default="{}", help="TrainConfig overrides as JSON")
    ap.add_argument("--out", default="/tmp/variants", help="where each variant's run folder goes")
    ap.add_argument("--layers", action="store_true", help="also score conv4x and conv5x maps, average- and max-pooled")
    args = ap.parse_args()
    over = json.loads(args.overrides)
    if aug := over.pop("aug", {}):
        video_augment = trainer.VideoAugment
        trainer.VideoAugment = lambda **kw: video_augment(**{**kw, **aug})
    cfg = trainer.check_config(trainer.config_from_preset("cpu", resume=False, progress=False, tensorboard=False, **over))
    start, out = time.time(), Path(args.out) / args.name
    if args.name == "random":
        torch.manual_seed(cfg.seed); model = trainer.build_model(cfg); nets = (model.video, model.audio)
    else:
        last = trainer.train(cfg, trainer.make_dataset(cfg), out)["step_log"][-1]
        print(args.name, f"trained in {time.time() - start:.0f} s:",
              {k: round(last[k], 3) for k in ("loss", "intra", "sync", "async", "z_std_video", "z_std_audio")})
        nets = trainer.load_backbones(out / "backbones.pt")
    root = ensure_embedded(cfg.data_root or None, progress=False)
    scores = {}
    for modality, net in zip(("video", "audio"), nets):
        kw = dict(frames=cfg.frames, fps=cfg.fps, size=cfg.size) if modality == "video" else dict(audio_seconds=cfg.audio_seconds)
        heads = {"": net}
        if args.layers: heads.update({f" {n} {p}": PooledStage(net, n, p) for n in ("conv4x", "conv5x") for p in ("avg", "max")})
        for head, features in heads.items():
            (tx, ty), (vx, vy) = (extract_features(features, LabelledClips(labelled_csv(root, split), modality, clips=2, progress=False, **kw),
                                                   progress=False) for split in ("train", "val"))
            scores[f"{modality}{head} k-NN"] = round(knn_accuracy(tx, ty, vx, vy, k=5), 3)
            scores[f"{modality}{head} linear"] = round(linear_accuracy(tx.numpy(), ty.numpy(), vx.numpy(), vy.numpy()), 3)
    print(args.name, "validation accuracy:", scores, f"({time.time() - start:.0f} s in all)")


if __name__ == "__main__":
    main()
