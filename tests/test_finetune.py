"""End-to-end checks of `crisscross.finetune`: miniature real layouts (UCF101 with its split files, ESC-50 with its
meta CSV folds), two ranks under `torchrun`, SIGKILL-and-resume, and that the test split never steers the choice of
epoch. Tiny backbones (width 4) on tiny inputs (4 frames at 16 px, 0.2 s of audio), CPU only."""
import csv, io, json, os, re, shutil, signal, subprocess, sys, time
from pathlib import Path

import pytest
import torch

from crisscross.finetune import (FinetuneConfig, build_backbone, check_finetune_config, dense_scores, eval_clips, finetune,
                                 finetune_config, load_finetuned, make_splits, predict)
from crisscross.finetune import main as ft_main
from crisscross.data import ucf101_group
from crisscross.embedded import EmbeddedConfig, ensure_embedded
from crisscross.trainer import config_from_preset, load_backbones, load_checkpoint, param_digest, train
from conftest import copy, quiet, wait_for


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    "A small embedded set: 2 classes x 6 clips of 2 s at 32 px (4 train, 1 val, 1 test each)."
    cfg = EmbeddedConfig(n_classes=2, clips_per_class=6, seconds=2.0, size=32, val_per_class=1, test_per_class=1)
    return ensure_embedded(tmp_path_factory.mktemp("small") / "data", cfg, workers=1, progress=False)


@pytest.fixture(scope="module")
def backbones(tmp_path_factory):
    "backbones.pt of a one-step pretraining run of the trainer's tiny preset (width 4, like the tiny fine-tuning preset)."
    out = tmp_path_factory.mktemp("pretrained")
    return Path(quiet(train, config_from_preset("tiny", max_steps=1), None, out)["backbones"])


def tiny(data_root, **kw) -> FinetuneConfig:
    return finetune_config("tiny", dataset="csv", data_root=str(data_root), **kw)


# (1) ------------------------------------------------------------------------------------------------------------------
def test_ucf101_layout_from_pretrained_backbones(tmp_path, media_44k, backbones):
    "UCF101 split 1 from its real list files: validation = whole groups of the training list, test = testlist01, once."
    root, classes = tmp_path / "ucf", ["ApplyEyeMakeup", "Basketball"]
    (root / "ucfTrainTestlist").mkdir(parents=True)
    (root / "ucfTrainTestlist" / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    train, test = [], []
    for c in classes:
        for g, clips in [(1, 1), (2, 1), (8, 2), (9, 2), (10, 2), (11, 2)]:
            for k in range(1, clips + 1):
                name = f"{c}/v_{c}_g{g:02d}_c{k:02d}.avi"
                copy(media_44k["avi"], root / "UCF-101" / name)
                (test if g < 8 else train).append(name)
    (root / "ucfTrainTestlist" / "trainlist01.txt").write_text("".join(f"{n} {classes.index(n.split('/')[0]) + 1}\n" for n in train))
    (root / "ucfTrainTestlist" / "testlist01.txt").write_text("".join(f"{n}\n" for n in test))
    cfg = finetune_config("tiny", dataset="ucf101", data_root=str(root), checkpoint=str(backbones))

    splits = make_splits(cfg)
    rel = lambda items: {Path(it.path).relative_to(root / "UCF-101").as_posix() for it in items}
    assert rel(splits.test) == set(test) and rel(splits.train) | rel(splits.val) == set(train)
    assert len(splits.val) == 4 and not {ucf101_group(it) for it in splits.val} & {ucf101_group(it) for it in splits.train}
    video, _ = load_backbones(backbones)
    start = build_backbone(cfg, "video")
    assert all(torch.equal(a, b) for a, b in zip(start.state_dict().values(), video.state_dict().values())), "starts from backbones.pt"
    assert start.pool == "max"

    out = tmp_path / "run"
    m = quiet(finetune, cfg, out)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["config"]["checkpoint"] == str(backbones) and saved["backbone"]["width"] == 4
    assert saved["files"] == dict(train=12, val=4, test=4) and saved["n_classes"] == 2 and saved["modality"] == "video"
    assert [e["epoch"] for e in saved["epochs"]] == [1, 2] and all(0 <= e["val_top1"] <= 1 for e in saved["epochs"])
    assert saved["chosen_epoch"] == max(saved["epochs"], key=lambda e: (e["val_top1"], -e["val_loss"]))["epoch"]
    assert saved["test"]["files"] == 4 and saved["test"]["clips"] == 3 and saved["test"] == m["test"]
    assert "whole groups" in saved["val_source"]
    assert (out / "curves.png").stat().st_size > 0 and Path(saved["checkpoint"]).is_file()
    assert param_digest(load_finetuned(out / "finetuned.pt")) == saved["finetuned_param_sha256"]
    assert saved["refit"]["epochs"] == saved["chosen_epoch"] and saved["refit"]["files"] == 16 and saved["headline"].startswith("refit")


# (2) ------------------------------------------------------------------------------------------------------------------
def test_esc50_all_folds_averaged(tmp_path, media_44k):
    "ESC-50 folds from meta/esc50.csv, every fold in turn (split=0): five runs, each testing its fold, then mean and spread."
    root, rows = tmp_path / "ESC-50", []
    for fold in range(1, 6):
        for target, category in ((0, "dog"), (14, "chirping_birds")):
            for take in range(2):
                name = f"{fold}-{1000 * fold + 10 * target + take}-A-{target}.wav"
                copy(media_44k["wav"], root / "audio" / name); rows.append((name, fold, target, category))
    (root / "meta").mkdir()
    with open(root / "meta" / "esc50.csv", "w", newline="") as f:
        w = csv.writer(f); w.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        for name, fold, target, cat in rows: w.writerow([name, fold, target, cat, True, name.split("-")[1], "A"])
    out = tmp_path / "esc"
    summary = quiet(finetune, finetune_config("tiny", dataset="esc50", data_root=str(root), split=0, epochs=1, warmup_epochs=0.0), out)
    assert summary["splits"] == [1, 2, 3, 4, 5] and len(summary["runs"]) == 5
    for k, run in enumerate(summary["runs"], 1):
        assert run["split"] == k and run["modality"] == "audio" and run["n_classes"] == 15  # labels 0 and 14: a 15-way head
        assert run["files"] == dict(train=14, val=2, test=4) and run["test"]["clips"] == 3
        assert json.loads((out / f"split-{k}" / "metrics.json").read_text())["test"] == run["test"]
    values = [run["test"]["top1"] for run in summary["runs"]]
    assert summary["test_top1"]["per_split"] == values
    assert abs(summary["test_top1"]["mean"] - sum(values) / 5) < 1e-12
    mean = sum(values) / 5
    assert abs(summary["test_top1"]["std"] - (sum((v - mean) ** 2 for v in values) / 4) ** 0.5) < 1e-12
    assert json.loads((out / "metrics.json").read_text())["test_top1"] == summary["test_top1"] and (out / "curves.png").is_file()


# (3) ------------------------------------------------------------------------------------------------------------------
def test_torchrun_two_ranks_hold_identical_weights(tmp_path, small):
    "Two ranks (gloo) fine-tune together: identical weights on both, and the sharded test equals a one-process test (to float precision: thread counts differ)."
    out = tmp_path / "ddp"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "crisscross.finetune",
                        "--preset", "tiny", "--dataset", "csv", "--data-root", str(small), "--out-dir", str(out), "--epochs", "2"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-4000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["world_size"] == 2 and m["steps"] == 4 and len(m["replica_param_sha256"]) == 2
    assert m["replicas_identical"] and m["replica_param_sha256"][0] == m["replica_param_sha256"][1]
    ckpt = load_checkpoint(m["checkpoint"])
    assert ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2 and ckpt["rng"][0]["torch"].ne(ckpt["rng"][1]["torch"]).any()
    model = load_finetuned(out / "finetuned.pt")
    assert param_digest(model) == m["finetuned_param_sha256"] and m["refit"]["replicas_identical"]
    cfg = tiny(small)
    test_ds = eval_clips(make_splits(cfg).test, "video", cfg, cfg.test_clips)
    assert dense_scores(predict(model, test_ds), test_ds.labels) == pytest.approx(m["test"], rel=1e-6)


# (4) ------------------------------------------------------------------------------------------------------------------
RESUME_SCRIPT = """
import sys, time
import crisscross.finetune as ft
from crisscross.data import LabelledClips

class Slow(LabelledClips):
    "The same clips, slowly, so that the kill lands mid-run."
    def __getitem__(self, i): time.sleep(0.04); return super().__getitem__(i)

ft.LabelledClips = Slow
ft.finetune(ft.finetune_config("tiny", dataset="csv", data_root=sys.argv[1], epochs=3, ckpt_every=1, dropout=0.3), sys.argv[2])
"""

def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, small):
    "SIGKILL mid-epoch 2 (after the step-3 checkpoint), resume: weights, val curve, chosen epoch and test equal a straight run."
    out, script = tmp_path / "killed", tmp_path / "run.py"
    script.write_text(RESUME_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(small), str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (out / "checkpoints" / "ckpt-00000003.pt").exists(), proc, what="the step-3 checkpoint")
    proc.send_signal(signal.SIGKILL); proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL and not (out / "metrics.json").exists()
    killed_at = load_checkpoint(out / "checkpoints" / "ckpt-00000003.pt")
    assert (killed_at["epoch"], killed_at["epoch_step"], len(killed_at["epoch_log"])) == (1, 1, 1), "mid-epoch 2"

    cfg = tiny(small, epochs=3, ckpt_every=1, dropout=0.3)
    resumed, straight = quiet(finetune, cfg, out), quiet(finetune, cfg, tmp_path / "straight")
    assert resumed["steps"] == straight["steps"] == 6
    assert resumed["param_sha256"] == straight["param_sha256"] and resumed["chosen_param_sha256"] == straight["chosen_param_sha256"]
    assert resumed["finetuned_param_sha256"] == straight["finetuned_param_sha256"] and resumed["refit"]["steps"] == straight["refit"]["steps"] > 0
    strip = lambda epochs: [{k: v for k, v in e.items() if k not in ("seconds", "clips_per_s")} for e in epochs]
    assert strip(resumed["epochs"]) == strip(straight["epochs"])
    assert [r["loss"] for r in resumed["step_log"]] == [r["loss"] for r in straight["step_log"]]
    assert resumed["chosen_epoch"] == straight["chosen_epoch"] and resumed["test"] == straight["test"]
    a, b = load_checkpoint(resumed["checkpoint"]), load_checkpoint(straight["checkpoint"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), "weights and BN statistics bitwise equal"
    assert all(torch.equal(x["momentum_buffer"], y["momentum_buffer"]) for x, y in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True))


# (5) ------------------------------------------------------------------------------------------------------------------
def test_test_labels_never_steer_the_chosen_epoch(tmp_path, small):
    "Swapping every test label changes the test score (it is read) but not the val curve, the chosen epoch or any weight."
    swapped = tmp_path / "swapped"; shutil.copytree(small, swapped)
    with open(swapped / "labels.csv", newline="") as f: rows = list(csv.DictReader(f))
    for r in rows:
        if r["split"] == "test": r["label"] = str(1 - int(r["label"]))
    with open(swapped / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
    cfg = dict(epochs=3, lr=0.1)
    honest, garbage = quiet(finetune, tiny(small, **cfg), tmp_path / "a"), quiet(finetune, tiny(swapped, **cfg), tmp_path / "b")
    strip = lambda epochs: [{k: v for k, v in e.items() if k not in ("seconds", "clips_per_s")} for e in epochs]
    assert strip(honest["epochs"]) == strip(garbage["epochs"]) and honest["chosen_epoch"] == garbage["chosen_epoch"]
    assert honest["param_sha256"] == garbage["param_sha256"] and honest["chosen_param_sha256"] == garbage["chosen_param_sha256"]
    assert honest["test"]["top1"] + garbage["test"]["top1"] == 1.0  # 2 classes, every label swapped: the test labels were read


# (6) ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, world_size, message", [
    (dict(dataset="ucf101", data_root="/no/such/folder"), 1, "data_root='/no/such/folder' does not exist"),
    (dict(dataset="hmdb51"), 1, "needs data_root"),
    (dict(checkpoint="missing/backbones.pt"), 1, "is not a file"),
    (dict(batch_size=6), 4, "not divisible by the 4 processes"),
    (dict(split=2), 1, "embedded has splits 1..1"),
    (dict(pool="mean"), 1, "pool='mean' is unknown"),
    (dict(patience=-1), 1, "patience=-1 must be >= 0"),
    (dict(precision="fp16", device="cpu"), 1, "needs CUDA"),
    (dict(precision="bf16", device="cpu"), 1, "precision='bf16' on the CPU is refused"),
    (dict(milestones=(10, 6)), 1, "milestones=(10, 6) must be increasing positive epochs"),
    (dict(schedule="linear"), 1, "schedule='linear' is unknown"),
    (dict(clips_per_video=0), 1, "clips_per_video=0 must be a positive integer"),
])
def test_bad_values_are_refused_before_compute(overrides, world_size, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        check_finetune_config(finetune_config("tiny", **overrides), world_size)


def test_finetune_validates_before_reading_anything(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="does not exist"): finetune(finetune_config("tiny", dataset="esc50", data_root=str(tmp_path / "x")), tmp_path / "o")
    assert not (tmp_path / "o").exists() and time.perf_counter() - t0 < 5


# (7) the official protocols -------------------------------------------------------------------------------------------
# crisscross-facts.md, "Downstream protocols in detail": the official configs' table, copied as it stands there
FACTS_TABLE = """
| UCF101, K400 or K-Sound weights, 8f | 64 | 5e-4 | 0.3 | 6, 10, 14 | off |
| UCF101, K400 / K-Sound / AudioSet, 32f | 32 | 7e-5 | 0.3 | 8, 12, 16 | off |
| UCF101, AudioSet, 8f | 64 | 7e-5 | 0.1 | 8, 12, 16 | 0.1 |
| HMDB51, K400 or K-Sound, 8f | 64 | 5e-4 | 0.1 | 6, 10, 14 | off |
| HMDB51, K400 or K-Sound, 32f | 32 | 1e-4 | 0.3 | 8, 12, 16 | off |
| HMDB51, AudioSet, 8f | 64 | 1e-4 | 0.1 | 8, 12, 16 | 0.5 |
| HMDB51, AudioSet, 32f | 32 | 1e-4 | 0.1 | 6, 10, 14 | 0.5 |
"""
FACTS_PRESETS = ["ucf101-8f", "ucf101-32f", "ucf101-8f-audioset", "hmdb51-8f", "hmdb51-32f", "hmdb51-8f-audioset", "hmdb51-32f-audioset"]
# what every official run shares (the same section): SGD momentum 0.9, weight decay 0, MultiStepLR per epoch, 20 epochs, no warm-up,
# 224 crops at 16 fps, 10 random clips per training video per epoch, max pooling, orthogonal head, 10 test clips, no blur, jitter always
FACTS_SHARED = dict(optimizer="sgd", momentum=0.9, weight_decay=0.0, schedule="step", epochs=20, warmup_epochs=0.0, size=224, fps=16.0,
                    clips_per_video=10, pool="max", head_init="orthogonal", test_clips=10, augment="official")


def test_reproduction_presets_equal_the_official_table():
    from crisscross.finetune import REPRODUCTIONS
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in FACTS_TABLE.strip().splitlines()]
    assert sorted(REPRODUCTIONS) == sorted(FACTS_PRESETS)
    for name, (config, batch, lr, gamma, milestones, dropout) in zip(FACTS_PRESETS, rows, strict=True):
        cfg = finetune_config(name)
        assert cfg.dataset == config.split(",")[0].lower() and cfg.frames == (32 if config.endswith("32f") else 8), name
        assert (cfg.batch_size, cfg.lr, cfg.gamma, cfg.milestones) == (int(batch), float(lr), float(gamma), tuple(map(int, milestones.split(", ")))), name
        assert cfg.dropout == (0.0 if dropout == "off" else float(dropout)), name
        assert {k: getattr(cfg, k) for k in FACTS_SHARED} == FACTS_SHARED, name
        check_finetune_config(finetune_config(name, data_root="."))
    assert finetune_config().clips_per_video == 1 and finetune_config().schedule == "cosine"   # ours-8f, the defaults, unchanged


def test_settings_tables_are_generated_from_the_presets():
    "Each reproduction preset's values appear in the docs' tables; changing a preset changes the table."
    from crisscross import finetune as ft
    table = ft.reproduction_table()
    for name in FACTS_PRESETS:
        cfg = finetune_config(name)
        assert f"| `{name}` | {cfg.dataset} | {cfg.frames} | {cfg.batch_size} | {cfg.lr:g} | {cfg.gamma:g} |" in table
    assert "| `weight_decay` |  | 0 | 0.0001 |" in ft.finetune_settings_table()
    old = ft.FinetuneConfig.PRESETS["hmdb51-8f"]
    try:
        ft.FinetuneConfig.PRESETS["hmdb51-8f"] = {**old, "lr": 3e-3}
        assert "| `hmdb51-8f` | hmdb51 | 8 | 64 | 0.003 |" in ft.reproduction_table()
    finally: ft.FinetuneConfig.PRESETS["hmdb51-8f"] = old
    pre = ft.pretraining_settings_table()
    assert "| `jitter_p` | 1 | 0.8 | |" in pre and "| `audio_resize_crop` | freq_time | time | |" in pre and "| loss scale |" in pre


def test_pretraining_presets_paper_official_cpu_and_tiny_unchanged():
    "paper: the official augmentation; cpu and tiny: the same augmentation, the same numbers for the same seed, as before."
    from crisscross.trainer import PAPER_DEVIATIONS, config_from_preset, pretrain_augments
    from crisscross.transforms import AudioAugment, VideoAugment
    paper = pretrain_augments(config_from_preset("paper"))
    v, a = paper["video_augment"], paper["audio_augment"]
    assert (v.jitter_p, v.jitter_order, a.freq_scale, a.time_scale) == (1.0, "random", (0.6, 1.5), (0.6, 1.5))
    assert {"video window", "blur", "loss scale"} <= set(PAPER_DEVIATIONS)
    clip = torch.randint(0, 256, (2, 4, 40, 48, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    spec = torch.randn(2, 1, 80, 21, generator=torch.Generator().manual_seed(0))
    for name in ("cpu", "tiny"):
        cfg, built = config_from_preset(name), pretrain_augments(config_from_preset(name))
        before = VideoAugment(size=cfg.size, scale=cfg.crop_scale, saturation=cfg.saturation_jitter, hue=cfg.hue_jitter, gray_p=cfg.gray_p,
                              max_cutout=round(20 * cfg.size / 112))   # what the trainer built before the options existed
        same = lambda f, g, x: torch.equal(f(x, generator=torch.Generator().manual_seed(1)), g(x, generator=torch.Generator().manual_seed(1)))
        assert same(built["video_augment"], before, clip) and same(built["audio_augment"], AudioAugment(), spec), name


def test_refit_after_selection_reads_no_test_file(tmp_path, small, monkeypatch):
    "Every file read, in order: training and validation files (selection), then train + val augmented (refit), then the test files."
    import crisscross.finetune as ft
    from crisscross.data import LabelledClips, labelled_csv
    log = []
    class Logged(LabelledClips):
        def __getitem__(self, i):
            log.append(("train" if self.augment else "eval", self.items[i].path)); return super().__getitem__(i)
    probe = ft.index_media
    def logged_probe(paths, **kw):
        log.extend(("probe", p) for p in paths); return probe(paths, **kw)
    monkeypatch.setattr(ft, "LabelledClips", Logged); monkeypatch.setattr(ft, "index_media", logged_probe)
    m = quiet(finetune, tiny(small, epochs=3), tmp_path / "run")
    train, val, test = ({it.path for it in labelled_csv(small, s)} for s in ("train", "val", "test"))
    first_test = min(i for i, (_, p) in enumerate(log) if p in test)
    assert all(p not in test for _, p in log[:first_test]) and all(p in test for _, p in log[first_test:]), "test files last, and only then"
    trained = [p for kind, p in log if kind == "train"]
    assert set(trained) == train | val and any(p in val for p in trained), "the refit trained on the validation files too"
    last_val_read = max(i for i, (kind, p) in enumerate(log) if kind == "eval" and p in val)
    assert {p for kind, p in log[last_val_read:] if kind == "train"} == train | val, "the refit comes after the last validation pass"
    refit_clips = len([1 for kind, p in log[last_val_read:] if kind == "train"])
    assert refit_clips == m["refit"]["steps"] * 4 and m["refit"]["epochs"] == m["chosen_epoch"]
    assert [r["phase"] for r in m["reads"]] == ["select", "refit", "test"] and not set(m["reads"][1]["files"]) & test
    assert m["test"] != m["test_validation_chosen"] or m["finetuned_param_sha256"] != m["chosen_param_sha256"]


def test_paper_preset_crops_from_the_decoded_frames(small):
    "paper: the augmentation sees the frames as decoded (32 px here); tiny: frames scaled to 8/7 of the crop while decoding, as before."
    from crisscross.data import labelled_csv
    from crisscross.trainer import _views, config_from_preset
    seen = {}
    for name in ("paper", "tiny"):
        views = _views(config_from_preset(name, dataset="embedded", frames=4, size=16, audio_seconds=1.0, progress=False), labelled_csv(small, "train"))
        draw = views.video_augment.sample_params
        views.video_augment.sample_params = lambda n, h, w, g=None: seen.setdefault(name, (h, w)) and draw(n, h, w, g)
        assert views[0]["v1"].shape == (3, 4, 16, 16)
    assert seen == {"paper": (32, 32), "tiny": (18, 18)}
    with pytest.raises(ValueError, match="crop_from='decoded' with cache_decoded=True"):
        _views(config_from_preset("paper", cache_decoded=True), labelled_csv(small, "train"))


def test_a_finished_selection_is_refit_later_as_a_straight_run_would(tmp_path, small):
    "refit=False, then the same out_dir with refit=True: the selection is not trained again, and the refit equals a straight run's."
    first = quiet(finetune, tiny(small, refit=False), tmp_path / "later")
    assert first["refit"] is None and first["headline"] == "the validation-chosen epoch" and first["test"] == first["test_validation_chosen"]
    later, straight = quiet(finetune, tiny(small), tmp_path / "later"), quiet(finetune, tiny(small), tmp_path / "straight")
    assert later["step_log"] == first["step_log"] and later["refit"]["steps"] > 0
    assert later["finetuned_param_sha256"] == straight["finetuned_param_sha256"] and later["test"] == straight["test"]


def test_dry_run_refuses_a_labels_file_that_escapes_its_root(tmp_path):
    "`--dry-run` reads labels.csv through the evaluation's checks: a path out of the root, or a label that is no number, is named."
    (tmp_path / "labels.csv").write_text("path,label,class_name,split\n../../etc/passwd,0,a,train\nb.mp4,1,b,test\n")
    with pytest.raises(ValueError, match="labels.csv"):
        ft_main(["--preset", "tiny", "--dataset", "csv", "--data-root", str(tmp_path), "--dry-run"])
    (tmp_path / "labels.csv").write_text("path,label,class_name,split\na.mp4,zero,a,train\nb.mp4,1,b,test\n")
    with pytest.raises(ValueError, match="row"):
        ft_main(["--preset", "tiny", "--dataset", "csv", "--data-root", str(tmp_path), "--dry-run"])


# Preemption, as in the trainer (tests/test_faults.py) ------------------------------------------------------------------
@pytest.mark.parametrize("signum, at_fetch, phase, step", [(signal.SIGUSR1, 12, "select", 3), (signal.SIGTERM, 23, "refit", 1)])
def test_stop_signal_checkpoints_the_step_and_resumes_bitwise(tmp_path, small, monkeypatch, signum, at_fetch, phase, step):
    """A stop signal while a step's clips are read (selection epoch 2, or the refit's first step): the step ends, one checkpoint
    is written, `Preempted` exits 128 + signal; the same out_dir then resumes to the weights, curves and test of a straight run."""
    import crisscross.finetune as ft
    from crisscross.engine import Preempted
    fetches = []

    class SignalAt(ft.LabelledClips):
        "Fetching clip number `at_fetch` (training and evaluation together, in order) sends `signum` to this process."
        def __getitem__(self, i):
            fetches.append(i)
            if len(fetches) == at_fetch: os.kill(os.getpid(), signum)
            return super().__getitem__(i)

    def unhandled(s, frame): raise AssertionError(f"signal {s} reached the test: fine-tuning did not handle it")
    previous = signal.signal(signum, unhandled)
    try:
        cfg, out = tiny(small), tmp_path / "stopped"
        with monkeypatch.context() as m:
            m.setattr(ft, "LabelledClips", SignalAt)
            with pytest.raises(Preempted) as stopped: quiet(finetune, cfg, out)
        assert signal.getsignal(signum) is unhandled, "fine-tuning puts the previous handler back"
    finally: signal.signal(signum, previous)
    ckpt_dir = out / ("checkpoints" if phase == "select" else "refit/checkpoints")
    assert (stopped.value.code, stopped.value.step, Path(stopped.value.checkpoint).parent) == (128 + signum, step, ckpt_dir)
    assert load_checkpoint(stopped.value.checkpoint)["step"] == step and not (out / "metrics.json").exists()
    resumed, straight = quiet(finetune, cfg, out), quiet(finetune, cfg, tmp_path / "straight")
    for k in ("param_sha256", "chosen_param_sha256", "finetuned_param_sha256", "chosen_epoch", "test", "steps"):
        assert resumed[k] == straight[k], k
    assert [r["loss"] for r in resumed["step_log"]] == [r["loss"] for r in straight["step_log"]]
    assert resumed["refit"]["param_sha256"] == straight["refit"]["param_sha256"]
