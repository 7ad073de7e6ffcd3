"""End-to-end checks of `crisscross.trainer`: DDP under torchrun, kill-and-resume, atomic checkpoints, non-finite losses,
config validation, the learning-rate schedule, and learning on generated data. Tiny models on tiny inputs (4x16x16
video, 80x21 log-mel), CPU only."""
import contextlib, io, json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest
import torch

from crisscross.engine import (NonFiniteLossError, ShardedSampler, latest_checkpoint, list_checkpoints, load_checkpoint,
                               remove_stale_tmp)
from crisscross.testing import PoisonedViews
from crisscross.trainer import (DATASETS, DatasetEntry, LRSchedule, RandomViews, build_model, build_optimizer, check_config,
                                config_from_preset, load_backbones, make_dataset, param_digest, train)
from conftest import wait_for


def quiet_train(*args, **kw):
    with contextlib.redirect_stdout(io.StringIO()): return train(*args, **kw)


def parameters(state: dict) -> dict:
    "The parameters of a model state dict (batch-norm running statistics left out)."
    return {k: v for k, v in state.items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


# (1) ------------------------------------------------------------------------------------------------------------------
def test_ddp_two_ranks_identical_and_equal_to_single_process(tmp_path):
    """Two ranks under `torchrun --standalone --nproc_per_node 2` (gloo, CPU), then one process with the same global batch.

    Making the comparison meaningful: without SyncBN (CPU) each rank's batch norm normalises over its own half of
    the global batch, so a single process seeing all 8 clips in one forward pass computes different activations.
    The single process therefore runs with `accum_steps=2`: its two forward passes see exactly the clips ranks 0
    and 1 see (the sampler gives each rank a contiguous slice of every global batch), batch norm sees the same
    groups, and the accumulated gradient (g0/2 + g1/2) equals DDP's average ((g0 + g1)/2; halving is exact in
    binary floating point). Only parameters are compared: running statistics are buffers, and DDP broadcasts rank
    0's at every forward pass, so they legitimately differ. Both runs use one thread per process (the tiny preset's
    `cpu_threads=1`): tiny batch-norm groups amplify float-order noise step after step, and with different thread
    counts the trajectories drift apart (measured: 6e-7 after one step, 3e-2 after six), which would make the
    comparison a matter of tolerance rather than of correctness. With equal threads they agree to float precision
    (in practice bit for bit), and the test allows 1e-6.
    """
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "crisscross.pretrain", "--preset", "tiny", "--out-dir", str(out), "--max-steps", "4", "--tensorboard"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-4000:]
    ddp = json.loads((out / "metrics.json").read_text())
    assert ddp["world_size"] == 2 and ddp["steps"] == 4
    # every rank hashed its own weights; rank 0 gathered them
    assert len(ddp["replica_param_sha256"]) == 2 and ddp["replica_param_sha256"][0] == ddp["replica_param_sha256"][1]
    ddp_state = load_checkpoint(ddp["checkpoint"])
    model = build_model(config_from_preset("tiny")); model.load_state_dict(ddp_state["model"])
    assert param_digest(model) == ddp["param_sha256"], "the checkpoint holds the weights the ranks hold"
    assert any((out / "tb").iterdir()), "rank 0 writes TensorBoard scalars"

    single = quiet_train(config_from_preset("tiny", max_steps=4, accum_steps=2), out_dir=tmp_path / "single")
    assert single["world_size"] == 1
    for a, b in zip(single["step_log"], ddp["step_log"], strict=True):
        for k in ("loss", "intra", "sync", "async"): assert abs(a[k] - b[k]) < 1e-6, (k, a, b)
    p_single, p_ddp = parameters(load_checkpoint(single["checkpoint"])["model"]), parameters(ddp_state["model"])
    assert p_single.keys() == p_ddp.keys()
    worst = max((p_single[k] - p_ddp[k]).abs().max().item() for k in p_single)
    assert worst < 1e-6, worst
    assert single["step_log"][-1]["loss"] != single["step_log"][0]["loss"], "the runs trained"


# (2) ------------------------------------------------------------------------------------------------------------------
RESUME_SCRIPT = """
import json, sys, torch
from crisscross.testing import Slow
from crisscross.trainer import config_from_preset, make_dataset, train

cfg = config_from_preset("tiny", ckpt_every=3, **json.loads(sys.argv[2]))
train(cfg, Slow(make_dataset(cfg)), out_dir=sys.argv[1])
"""

@pytest.fixture(scope="module")
def two_clips(tmp_path_factory):
    "Two real one-second clips (32x24, with audio): 16 clips each make the tiny preset's 4 steps an epoch."
    from crisscross.testing import write_test_video
    root = tmp_path_factory.mktemp("two_clips")
    for name in ("a.mp4", "b.mp4"): write_test_video(root / name, seconds=1.0, size=(32, 24), fps=16, audio_rate=16000)
    return root


@pytest.mark.parametrize("augment_on", ["loader", "device"])
def test_sigkill_mid_epoch_then_resume_is_bitwise_equal(tmp_path, augment_on, request):
    """A run SIGKILLed mid-epoch (after its step-3 checkpoint, 4 steps per epoch) and resumed ends bitwise equal to an uninterrupted
    run: on generated views ('loader'), and on real clips decoded only in the loader and augmented in the step ('device')."""
    overrides = {} if augment_on == "loader" else dict(dataset="folder", data_root=str(request.getfixturevalue("two_clips")),
                                                        audio_seconds=0.25, clips_per_video=16, augment_on="device")
    cfg = config_from_preset("tiny", ckpt_every=3, **overrides)
    out = tmp_path / "killed"
    script = tmp_path / "run.py"; script.write_text(RESUME_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(out), json.dumps(overrides)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    wait_for(lambda: (out / "checkpoints" / "ckpt-00000003.pt").exists(), proc, what="the step-3 checkpoint")
    proc.send_signal(signal.SIGKILL); proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    latest = load_checkpoint(latest_checkpoint(out / "checkpoints"))
    assert (latest["step"], latest["epoch"], latest["epoch_step"]) == (3, 0, 3), "killed mid-epoch, before step 4 ended"

    resumed = quiet_train(cfg, out_dir=out)   # the killed run's lock went with it: nothing stale blocks the resume
    straight = quiet_train(cfg, out_dir=tmp_path / "straight")
    a, b = load_checkpoint(resumed["checkpoint"]), load_checkpoint(straight["checkpoint"])
    assert a["step"] == b["step"] == 8
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"]), "weights and BN statistics bitwise equal"
    assert resumed["param_sha256"] == straight["param_sha256"]
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True):
        assert all(torch.equal(sa[k], sb[k]) for k in ("exp_avg", "exp_avg_sq", "step"))
    assert [r["loss"] for r in resumed["step_log"]] == [r["loss"] for r in straight["step_log"]]
    assert [e["loss"] for e in resumed["epochs"]] == [e["loss"] for e in straight["epochs"]]
    # the exported backbones are the trained ones
    video, _ = load_backbones(Path(resumed["backbones"]))
    assert torch.equal(video.state_dict()["stem.0.weight"], b["model"]["video.stem.0.weight"])


def test_worker_processes_give_the_same_run(tmp_path):
    "Data are a function of (seed, epoch, index): two DataLoader workers give bitwise the same weights as none."
    cfg = config_from_preset("tiny", max_steps=4)
    m0 = quiet_train(cfg, out_dir=tmp_path / "w0")
    m2 = quiet_train(config_from_preset("tiny", max_steps=4, num_workers=2), out_dir=tmp_path / "w2")
    assert m0["param_sha256"] == m2["param_sha256"]


# (3) ------------------------------------------------------------------------------------------------------------------
WRITER_SCRIPT = """
import io, sys, time, torch
import crisscross.engine as T
real_save = torch.save
def slow_save(obj, f):
    "torch.save in small chunks, slowly: a kill lands in the middle of a write."
    buf = io.BytesIO(); real_save(obj, buf); data = buf.getvalue()
    for i in range(0, len(data), 1 << 16): f.write(data[i:i + (1 << 16)]); f.flush(); time.sleep(0.01)
torch.save = slow_save
step = 0
while True:
    step += 1
    T.save_checkpoint({"step": step, "payload": torch.full((400_000,), float(step))}, sys.argv[1], step, keep_last=2)
"""

def test_kill_while_writing_never_lists_a_truncated_checkpoint(tmp_path):
    "SIGKILL during a checkpoint write: the half-written file exists, but only complete checkpoints are listed and loaded."
    folder = tmp_path / "ckpts"
    script = tmp_path / "writer.py"; script.write_text(WRITER_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(folder)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    tmp_files = lambda: [p for p in folder.glob(".ckpt-*.tmp-*") if p.stat().st_size > 0] if folder.exists() else []
    wait_for(lambda: len(list_checkpoints(folder)) >= 2 and tmp_files(), proc, what="a write in progress")
    proc.send_signal(signal.SIGKILL); proc.wait(timeout=30)
    leftovers = tmp_files()
    assert leftovers, "the kill landed during a write"
    with pytest.raises(Exception): torch.load(leftovers[0], weights_only=True)   # truncated indeed
    listed = list_checkpoints(folder)
    assert listed and not any(p in listed for p in leftovers)
    for p in listed:
        state = load_checkpoint(p)
        assert p.name == f"ckpt-{state['step']:08d}.pt" and torch.equal(state["payload"], torch.full((400_000,), float(state["step"])))
    assert load_checkpoint(latest_checkpoint(folder))["step"] == max(load_checkpoint(p)["step"] for p in listed)
    remove_stale_tmp(folder)
    assert not list(folder.glob(".ckpt-*")) and list_checkpoints(folder) == listed


# (4) ------------------------------------------------------------------------------------------------------------------
def test_nonfinite_loss_stops_keeps_last_good_checkpoint_and_resumes(tmp_path):
    cfg = config_from_preset("tiny", ckpt_every=1)
    step3 = ShardedSampler(cfg.random_clips, cfg.batch_size, seed=cfg.seed).epoch_indices()[16:24]
    poisoned = PoisonedViews(make_dataset(cfg), bad=step3[:1])
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at epoch 1, step 3.*ckpt-00000002\.pt.*skip_nonfinite=True"):
        quiet_train(cfg, poisoned, out_dir=tmp_path / "run")
    ckpts = list_checkpoints(tmp_path / "run" / "checkpoints")
    assert [p.name for p in ckpts] == ["ckpt-00000001.pt", "ckpt-00000002.pt"]
    good = load_checkpoint(ckpts[-1])
    assert all(torch.isfinite(v).all() for v in good["model"].values() if v.is_floating_point())
    # fixing the data and running again continues from the last good checkpoint
    fixed = quiet_train(cfg, out_dir=tmp_path / "run")
    assert fixed["steps"] == 8 and len(fixed["step_log"]) == 8 and fixed["nonfinite_skipped"] == 0


def test_skip_nonfinite_skips_counts_and_keeps_state_finite(tmp_path):
    cfg = config_from_preset("tiny", skip_nonfinite=True)
    step3 = ShardedSampler(cfg.random_clips, cfg.batch_size, seed=cfg.seed).epoch_indices()[16:24]
    m = quiet_train(cfg, PoisonedViews(make_dataset(cfg), bad=step3[:2]), out_dir=tmp_path / "run")
    assert m["nonfinite_skipped"] == 2, "the two bad clips spoil one step in each of the two epochs"
    assert [r["skipped"] for r in m["step_log"][:4]] == [False, False, True, False] and m["steps"] == 8
    assert m["epochs"][0]["nonfinite_skipped"] == 1 and all(e["loss"] == e["loss"] for e in m["epochs"])   # not NaN
    state = load_checkpoint(m["checkpoint"])["model"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), "weights and BN statistics stay finite"
    json.loads((tmp_path / "run" / "metrics.json").read_text())   # valid JSON (no NaN)


# (5) ------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, world_size, message", [
    (dict(relaxation="strong"), 1, "relaxation='strong' is unknown: choose one of ('none', 'mild', 'medium', 'mixed', 'extreme') (default 'mild')"),
    (dict(terms=("intra", "asynch")), 1, "terms=('intra', 'asynch'): 'asynch' is unknown: choose one of ('intra', 'sync', 'async')"),
    (dict(terms=("sync", "sync")), 1, "terms=('sync', 'sync') must name each loss group once"),
    (dict(batch_size=10), 4, "batch_size=10 is not divisible by world_size x accum_steps = 4 x 1 = 4: choose a multiple of 4, e.g. 8 or 12"),
    (dict(batch_size=8, accum_steps=2), 4, "batch_size / (world_size x accum_steps) = 1 clip; batch norm needs at least 2"),
    (dict(epochs=0), 1, "epochs=0 must be a positive integer"),
    (dict(lr=-1e-3), 1, "lr=-0.001 must be > 0"),
    (dict(pred_lr=0.0), 1, "pred_lr=0.0 must be > 0"),
    (dict(optimizer="lars"), 1, "optimizer='lars' is unknown: choose one of ('larc_adam', 'adam', 'larc_sgd', 'sgd')"),
    (dict(dataset="imagenet"), 1, "dataset='imagenet' is unknown: choose one of ('random',"),
    (dict(final_lr=1.0), 1, "final_lr=1.0 exceeds the peak lr"),
    (dict(batch_size="8"), 1, "batch_size='8' must be of type int"),
])
def test_config_validation_messages(overrides, world_size, message):
    with pytest.raises(ValueError) as e: check_config(config_from_preset("tiny", **overrides), world_size)
    assert message in str(e.value)


def test_config_presets_and_unknown_fields():
    with pytest.raises(ValueError, match=r"unknown TrainConfig field\(s\) \['epoch'\] \('epoch': did you mean 'epochs'\?\); valid fields are \["):
        config_from_preset("tiny", epoch=3)
    with pytest.raises(ValueError, match="choose one of \\('paper', 'cpu', 'tiny'\\)"): config_from_preset("gpu")
    p, c = config_from_preset("paper"), config_from_preset("cpu")
    assert (p.width, p.depth, p.frames, p.size, p.audio_seconds, p.batch_size, p.epochs, p.proj_dim, p.pred_hidden) == (64, 2, 8, 112, 2.0, 2048, 100, 2048, 512)
    assert (p.lr, p.warmup_start_lr, p.warmup_epochs, p.final_lr, p.pred_lr, p.weight_decay, p.optimizer) == (2e-4, 0.0, 2.0, 1e-4, 2e-3, 1e-4, "larc_adam")
    assert (c.width, c.depth, c.size, c.audio_seconds, c.proj_dim, c.pred_hidden, c.batch_size) == (16, 1, 64, 1.0, 256, 64, 32)
    assert c.video_clip_norm and not p.video_clip_norm  # the paper feeds clips as they are; the cpu preset standardises each
    for name in ("cpu", "tiny"): check_config(config_from_preset(name))
    check_config(config_from_preset("paper", dataset="random"))
    with pytest.raises(ValueError, match=r"no data set chosen: pass --dataset NAME"): check_config(config_from_preset("paper"))


def test_config_flags_round_trip_for_every_preset():
    """Each preset with fields of every type changed (int, float by repr, text with a leading '-' and a space, bools both ways,
    tuples of numbers and of names): `to_flags`, the pretrain command line's parser and `from_preset` give the same config back,
    as do the flags `launch` passes to its workers."""
    from dataclasses import fields
    from crisscross.pretrain import build_parser, launch_command
    from crisscross.trainer import TrainConfig

    def parsed(argv):
        args = vars(build_parser().parse_args(argv))
        return TrainConfig.from_preset(args.pop("preset"), **{k: v for k, v in args.items() if k not in ("out_dir", "dry_run")})
    for name in TrainConfig.PRESETS:
        base = TrainConfig.from_preset(name)
        cfg = TrainConfig.from_preset(name, lr=base.lr / 3, warmup_start_lr=1e-7, epochs=base.epochs + 1, fps=12.5, dataset="embedded",
                                      data_root="-odd dir/with space", terms=("sync", "intra"), crop_scale=(0.1 / 3, 0.9), relaxation="extreme",
                                      tensorboard=not base.tensorboard, resume=not base.resume, video_clip_norm=not base.video_clip_norm)
        flags = cfg.to_flags(base=base)
        changed = {f.name for f in fields(cfg) if getattr(cfg, f.name) != getattr(base, f.name)}
        assert len(changed) >= 11 and len([f for f in flags if f.startswith("--")]) == len(changed), flags   # only those
        assert parsed(["--preset", name, *flags]) == cfg, name
        assert parsed(["--preset", "paper", *cfg.to_flags(base=TrainConfig.from_preset("paper"))]) == cfg, name
        assert parsed(["--preset", "tiny", *cfg.to_flags()]) == cfg, name   # every field given
        command = launch_command(cfg, "runs/x", 2, preset=name)
        assert parsed(command[command.index("crisscross.pretrain") + 1:]) == cfg, name


def test_data_root_and_dataset_checks_come_before_compute(tmp_path, monkeypatch):
    monkeypatch.setitem(DATASETS, "folder", DatasetEntry(lambda cfg: RandomViews(8), needs_root=True, help="test entry"))
    with pytest.raises(ValueError, match=r"dataset='folder' needs data_root \(--data-root"):
        check_config(config_from_preset("tiny", dataset="folder"))
    with pytest.raises(ValueError, match=r"data_root='/no/such/dir' does not exist"):
        train(config_from_preset("tiny", dataset="folder", data_root="/no/such/dir"), out_dir=tmp_path / "a")
    assert not (tmp_path / "a").exists(), "nothing is written before validation passes"

    class Exploding(torch.utils.data.Dataset):
        def __len__(self): return 64
        def __getitem__(self, i): raise AssertionError("touched the data before validating the config")
    with pytest.raises(ValueError, match="epochs=0"): train(config_from_preset("tiny", epochs=0), Exploding(), out_dir=tmp_path / "b")
    with pytest.raises(ValueError, match="the data set is empty"): train(config_from_preset("tiny"), [], out_dir=tmp_path / "c")
    with pytest.raises(ValueError, match="has 4 clips, fewer than one global batch \\(batch_size=8\\)"):
        train(config_from_preset("tiny"), RandomViews(4), out_dir=tmp_path / "d")


# (6) ------------------------------------------------------------------------------------------------------------------
def test_lr_schedule_shape():
    cfg = config_from_preset("paper", epochs=10, warmup_epochs=2.0)
    model = build_model(config_from_preset("tiny"))
    opt = build_optimizer(model, cfg)
    sched = LRSchedule(cfg, steps_per_epoch=50)
    lrs = [sched.apply(opt, s) for s in range(500)]
    bb, pred = [l["backbone_projector"] for l in lrs], [l["predictor"] for l in lrs]
    warm, cos = bb[:100], bb[100:]
    assert all(b > a for a, b in zip(warm, warm[1:])), "linear warm-up rises"
    assert max(abs((b - a) - 2e-4 / 100) for a, b in zip(warm, warm[1:])) < 1e-12, "in equal increments"
    assert warm[0] == pytest.approx(2e-6) and warm[-1] == pytest.approx(2e-4) and cos[0] == pytest.approx(2e-4)
    assert all(b <= a for a, b in zip(cos, cos[1:])), "cosine decays"
    assert cos[-1] == pytest.approx(1e-4) and min(bb[100:]) >= 1e-4 - 1e-15, "to the floor, never below"
    assert cos[len(cos) // 2] == pytest.approx(1.5e-4, rel=1e-2), "the cosine midpoint lies halfway"
    assert set(pred) == {2e-3}, "predictors: constant"
    assert all(l["backbone_projector_bn_bias"] == l["backbone_projector"] and l["predictor_bn_bias"] == 2e-3 for l in lrs)


def test_lr_in_training_follows_the_schedule(tmp_path):
    cfg = config_from_preset("tiny")
    threads = torch.get_num_threads()
    m = quiet_train(cfg, out_dir=tmp_path)
    assert torch.get_num_threads() == threads, "train restores the thread count it changed"
    sched = LRSchedule(cfg, steps_per_epoch=4)
    assert [r["lr"] for r in m["step_log"]] == [sched.lr_at(s) for s in range(8)]
    assert [r["lr"] for r in m["step_log"]][:3] == pytest.approx([1.5e-2, 3e-2, 3e-2]) and m["step_log"][-1]["lr"] == pytest.approx(1e-2)
    assert {r["pred_lr"] for r in m["step_log"]} == {3e-2}


# (7) ------------------------------------------------------------------------------------------------------------------
def test_loss_goes_down_on_random_views(tmp_path):
    "Forty tiny steps on RandomViews: the loss falls clearly, and the embeddings do not collapse."
    m = quiet_train(config_from_preset("tiny", epochs=10), out_dir=tmp_path)
    losses = [r["loss"] for r in m["step_log"]]
    assert len(losses) == 40 and abs(sum(losses[:4]) / 4) < 0.1, "about 0 at initialisation"
    assert sum(losses[-8:]) / 8 < sum(losses[:8]) / 8 - 0.3, losses
    assert m["epochs"][-1]["loss"] < m["epochs"][0]["loss"] - 0.3
    assert all(r["z_std_video"] > 0.05 and r["z_std_audio"] > 0.05 for r in m["step_log"][-8:]), "no collapse"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="bf16 training is CUDA only (refused on the CPU: PyTorch 2.11's CPU bf16 conv backward reads uninitialised memory)")
def test_bf16_autocast_path(tmp_path):
    "The mixed-precision path (bf16 autocast, CUDA's default): finite losses computed in fp32, fp32 weights."
    m = quiet_train(config_from_preset("tiny", precision="bf16", device="cuda", max_steps=3, frames=8, size=32), out_dir=tmp_path)
    assert len(m["step_log"]) == 3 and all(abs(r["loss"]) < 2 for r in m["step_log"])
    state = load_checkpoint(m["checkpoint"])["model"]
    assert all(v.dtype == torch.float32 for k, v in state.items() if v.is_floating_point())


def test_bf16_refused_on_the_cpu():
    "bf16 on the CPU is refused before any compute, with the reason and the fix (PyTorch's CPU bf16 backward gives NaN)."
    with pytest.raises(ValueError, match=r"bf16' on the CPU is refused.*use 'fp32'"):
        check_config(config_from_preset("tiny", precision="bf16", device="cpu"))


def test_audioset_pretraining_views_from_a_segment_list(tmp_path):
    "dataset='audioset' reads the clips a segment CSV in data_root lists (real files), and trains a step on them."
    from crisscross.testing import write_test_video
    for name in ("AAAAAAAAAAA_30.000_40.000.mp4", "BBBBBBBBBBB_0.000_10.000.mp4"):
        write_test_video(tmp_path / "as" / name, seconds=3.0, size=(32, 24), fps=16, audio_rate=16000)
    (tmp_path / "as" / "balanced_train_segments.csv").write_text(
        "# YTID, start_seconds, end_seconds, positive_labels\n"
        'AAAAAAAAAAA, 30.000, 40.000, "/m/09x0r"\nBBBBBBBBBBB, 0.000, 10.000, "/m/04rlf"\nCCCCCCCCCCC, 0.000, 10.000, "/m/04rlf"\n')
    cfg = config_from_preset("tiny", dataset="audioset", data_root=str(tmp_path / "as"), clips_per_video=4, batch_size=4,
                             relaxation="none", audio_seconds=0.5, max_steps=1)
    views = make_dataset(cfg)
    assert len(views) == 2 * 4 and set(views[0]) >= {"v1", "v2", "a1", "a2"}
    assert views[0]["v1"].shape == (3, cfg.frames, cfg.size, cfg.size)
    assert quiet_train(cfg, views, out_dir=tmp_path / "run")["steps"] == 1
    (tmp_path / "as" / "other.csv").write_text("")
    with pytest.raises(ValueError, match=r"exactly one segment list .*other.csv"): make_dataset(cfg)
