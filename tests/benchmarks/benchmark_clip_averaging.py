"""How much of a probe's score comes from the representation, and how much from averaging many clips of a file?

    .venv/bin/python tests/benchmarks/benchmark_clip_averaging.py runs/main/backbones.pt [--clips 1,2,5,10] [--random-seeds 0,1,2]
                     [--data-root DIR] [--out /tmp/clip-averaging]

Runs `crisscross.evaluation.evaluate` (video and audio; k-NN, linear SVM, FC probe, retrieval; hyper-parameters chosen
on the validation split, the test split scored once) on the pretrained backbones and on randomly initialised ones of
the same shape (one model per seed), once for each number of uniformly spaced clips per file. It prints one table of
test top-1 / recall@1 (the random rows as mean and spread over the seeds), with the validation top-1 of each linear
probe beside it, and draws `clip_averaging.png` in `--out`: score against clips per file, pretrained vs random.
Results: `nbs/results.ipynb`. Nothing is asserted.
"""
import argparse, json, statistics, time
from pathlib import Path

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

from crisscross.evaluation import check_eval_config, eval_config, evaluate

PROBES = ("knn", "svm", "linear", "retrieval")
LABELS = {"knn": "k-NN", "svm": "SVM", "linear": "FC", "retrieval": "R@1"}


def scores(metrics: dict, modality: str) -> dict:
    "Test top-1 (%) of each probe and retrieval recall@1, and the validation top-1 of the chosen setting of each classifier."
    r = metrics["splits"][0]["results"][modality]
    out = {p: 100 * (r[p]["recall@1"] if p == "retrieval" else r[p]["top1"]) for p in PROBES}
    out.update({f"val_{p}": 100 * max(r[p]["val_top1"].values()) for p in ("knn", "svm", "linear")})
    return out


def run(checkpoint: str, clips: int, seed: int, args) -> dict:
    tag = f"{'random-' + str(seed) if checkpoint == 'random' else 'pretrained'}-{clips}"
    cfg = check_eval_config(eval_config(checkpoint=checkpoint, preset=args.checkpoint if checkpoint == "random" else "cpu", seed=seed,
                                        dataset="embedded", data_root=args.data_root, modality="both", protocol=",".join(PROBES),
                                        clips=clips, progress=False))
    t0 = time.time()
    m = evaluate(cfg, Path(args.out) / tag)
    print(f"{tag}: {time.time() - t0:.0f} s", flush=True)
    return {mod: scores(m, mod) for mod in ("video", "audio")}


def spread(xs): return f"{statistics.mean(xs):.1f} ± {statistics.stdev(xs):.1f}" if len(xs) > 1 else f"{xs[0]:.1f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="a backbones.pt (or training checkpoint) pretrained on the embedded set")
    ap.add_argument("--clips", default="1,2,5,10", help="clip counts per file, comma-separated")
    ap.add_argument("--random-seeds", default="0,1,2", help="seeds of the randomly initialised models")
    ap.add_argument("--data-root", default="", help="the embedded set's folder ('' for its default place)")
    ap.add_argument("--out", default="/tmp/clip-averaging")
    args = ap.parse_args()
    clips = [int(c) for c in args.clips.split(",")]
    seeds = [int(s) for s in args.random_seeds.split(",")]
    res = {c: dict(pretrained=run(args.checkpoint, c, 0, args), random=[run("random", c, s, args) for s in seeds]) for c in clips}
    Path(args.out, "clip_averaging.json").write_text(json.dumps(res, indent=1))

    print(f"\nTest top-1 (%), retrieval recall@1; random: mean ± std over seeds {seeds}; (val) = validation top-1 of the "
          "chosen setting\n")
    for mod in ("video", "audio"):
        print(f"| {mod} | clips | " + " | ".join(LABELS[p] for p in PROBES) + " | val SVM | val FC |")
        print("|---|---|" + "---|" * (len(PROBES) + 2))
        for c in clips:
            pre, rnd = res[c]["pretrained"][mod], [r[mod] for r in res[c]["random"]]
            cols = ["val_svm", "val_linear"]
            print(f"| pretrained | {c} | " + " | ".join(f"{pre[p]:.1f}" for p in PROBES + tuple(cols)) + " |")
            print(f"| random | {c} | " + " | ".join(spread([r[p] for r in rnd]) for p in PROBES + tuple(cols)) + " |")
        print()

    fig, axs = plt.subplots(2, len(PROBES), figsize=(3 * len(PROBES), 5.5), sharex=True, sharey="row")
    for row, mod in zip(axs, ("video", "audio")):
        for ax, p in zip(row, PROBES):
            pre = [res[c]["pretrained"][mod][p] for c in clips]
            rnd = [[r[mod][p] for r in res[c]["random"]] for c in clips]
            ax.plot(clips, pre, "o-", label="pretrained")
            ax.errorbar(clips, [statistics.mean(x) for x in rnd], yerr=[statistics.stdev(x) if len(x) > 1 else 0 for x in rnd], fmt="s--",
                        capsize=3, label=f"random init ({len(seeds)} seeds)")
            ax.set_xscale("log"); ax.set_xticks(clips, [str(c) for c in clips]); ax.minorticks_off()
            ax.set_title(f"{mod} {LABELS[p]}", fontsize=10); ax.grid(alpha=0.3)
        row[0].set_ylabel("test top-1 / recall@1 (%)")
    for ax in axs[1]: ax.set_xlabel("clips per file (averaged)")
    axs[0][0].legend(fontsize=8)
    fig.suptitle("Embedded set, test split: pretrained vs randomly initialised backbones, by clips averaged per file")
    fig.tight_layout()
    fig.savefig(Path(args.out) / "clip_averaging.png", dpi=120)
    print(f"plot: {Path(args.out) / 'clip_averaging.png'}")


if __name__ == "__main__":
    main()
