"""Checks of crisscross.transforms beyond the notebook's: pickling for data loader workers, other devices,
precision, and properties over many random draws."""
import math, pickle

import pytest
import torch
import torch.nn.functional as F
import torchaudio
import torchvision.transforms.v2.functional as TF

from crisscross.transforms import (LogMel, LogMelConfig, AudioEval, VideoAugment, VideoEval, AudioAugment, denormalize_video,
                                   normalize_video, crop_resize_flip, IMAGENET_MEAN)

CUDA = torch.cuda.is_available()


def clip(T=8, H=128, W=171, seed=0):
    return torch.randint(0, 256, (T, H, W, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def test_transforms_pickle_and_behave_the_same():
    "Data loader workers receive the transforms by pickling: the copies must give identical outputs."
    wave, video = torch.randn(32000), clip()
    for t, x in [(LogMel(), wave), (VideoEval(crops=3), video)]:
        torch.testing.assert_close(pickle.loads(pickle.dumps(t))(x), t(x), rtol=0, atol=0)
    lm = LogMel(); lm(wave)                                      # with a filled cache
    torch.testing.assert_close(pickle.loads(pickle.dumps(lm))(wave), lm(wave), rtol=0, atol=0)
    for t, x in [(VideoAugment(), video), (AudioAugment(), lm(wave))]:
        a = pickle.loads(pickle.dumps(t))(x, generator=torch.Generator().manual_seed(3))
        torch.testing.assert_close(a, t(x, generator=torch.Generator().manual_seed(3)), rtol=0, atol=0)


@pytest.mark.parametrize("seconds", [0.5, 1, 2, 3.3, 5])
def test_log_mel_matches_torchaudio_in_float64(seconds):
    "In float64 the mel power agrees with torchaudio to rounding, for any length."
    cfg = LogMelConfig()
    n = round(seconds * cfg.sample_rate)
    wave = torch.randn(2, n, dtype=torch.float64, generator=torch.Generator().manual_seed(n))
    ref = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=1024, win_length=1024, hop_length=160, f_min=0,
                                               f_max=8000, n_mels=80, power=2.0, norm="slaney", mel_scale="slaney",
                                               window_fn=lambda n: torch.hann_window(n, dtype=torch.float64)).double()
    ours = LogMel(cfg).mel_power(wave)
    assert ours.shape == (2, 80, cfg.num_frames(n)) == (2, 80, 1 + n // 160)
    torch.testing.assert_close(ours, ref(wave), rtol=1e-10, atol=0)
    out = LogMel(cfg)(wave)
    torch.testing.assert_close(out, ((ref(wave) + cfg.eps).log() - cfg.mean).div(cfg.std).unsqueeze(1), rtol=1e-10, atol=1e-12)


def test_log_mel_settings_flow_from_the_config():
    "A different config changes the output shape as the config says (the settings live in one place)."
    cfg = LogMelConfig(n_mels=64, hop_length=320)
    assert LogMel(cfg)(torch.randn(32000)).shape == (1, 64, cfg.num_frames(32000)) == (1, 64, 101)
    assert AudioEval is LogMel


def test_log_mel_leading_dims():
    wave = torch.randn(2, 3, 16000)
    out = LogMel()(wave)
    assert out.shape == (2, 3, 1, 80, 101)
    torch.testing.assert_close(out[1, 2], LogMel()(wave[1, 2]), rtol=1e-5, atol=1e-5)


def test_volume_shift_at_the_floor_is_bounded():
    "Digital silence: the shift moves the floor by at most 2 |log 0.8| / std, as the notebook says."
    lm, aug = LogMel(), AudioAugment(time_scale=(1, 1), freq_masks=0, time_masks=0)
    silent = lm(torch.zeros(32000))
    out, p = aug(silent.expand(200, -1, -1, -1), generator=torch.Generator().manual_seed(0), return_params=True)
    shift = (out - silent).amax((1, 2, 3))
    torch.testing.assert_close(shift, 2 * p.gain.log() / lm.cfg.std)
    assert shift.abs().max() <= 2 * abs(math.log(0.8)) / lm.cfg.std + 1e-6 < 0.11


def test_views_of_one_clip_are_independent():
    "Two views drawn in sequence from one generator get different parameters (the pretraining pair)."
    aug, g = VideoAugment(), torch.Generator().manual_seed(0)
    v = clip()
    a, pa = aug(v, generator=g, return_params=True)
    b, pb = aug(v, generator=g, return_params=True)
    assert not torch.equal(pa.box, pb.box) and not torch.equal(a, b)


def test_batch_parameters_are_independent_across_clips():
    p = VideoAugment().sample_params(512, 128, 171, torch.Generator().manual_seed(0))
    assert p.box.unique(dim=0).shape[0] > 500 and p.sigma.unique().numel() == 512
    # flips are uncorrelated with grayscale, blur (independent draws)
    for other in (p.gray, p.blur, p.jitter):
        assert abs((p.flip & other).float().mean() - p.flip.float().mean() * other.float().mean()) < 0.05


def test_moving_content_keeps_its_motion():
    "A square moving right moves right in every augmented view, by the same crop scale (same box every frame)."
    T, H, W = 8, 128, 171
    x = torch.zeros(T, H, W, 3, dtype=torch.uint8)
    for t in range(T): x[t, 50:70, 20 + 10 * t:40 + 10 * t] = 255
    aug = VideoAugment(scale=(0.9, 1), jitter_p=0, gray_p=0, blur_p=0, max_cutout=0)
    out, p = aug(x.expand(16, -1, -1, -1, -1), generator=torch.Generator().manual_seed(1), return_params=True)
    frames = denormalize_video(out).float().mean(-1)            # (16, T, 112, 112)
    cols = torch.arange(112.0)
    centre = (frames.sum(-2) * cols).sum(-1) / frames.sum((-2, -1))  # centre of mass along x per frame
    step = centre.diff(dim=1)                                    # per clip, per frame step
    expected = 10 * 112 / p.box[:, 3].float() * torch.where(p.flip, -1.0, 1.0)
    torch.testing.assert_close(step.median(1).values, expected, rtol=0.05, atol=0.3)


def test_cutout_is_mean_colour():
    "Zero after normalisation is the normalisation mean: the hole denormalises to the ImageNet mean colour."
    aug = VideoAugment(scale=(1, 1), flip_p=0, jitter_p=0, gray_p=0, blur_p=0)
    out, p = aug(clip(), generator=torch.Generator().manual_seed(2), return_params=True)
    top, left, side = p.cutout[0].tolist()
    hole = denormalize_video(out)[:, top:top + side, left:left + side]
    assert (hole.float() - torch.tensor(IMAGENET_MEAN) * 255).abs().max() <= 0.5


def test_crop_resize_is_torchvision_resized_crop():
    "A box crop is torchvision's resized_crop (bilinear, antialiased), for floats exactly and for uint8 within a grey level."
    img = torch.rand(2, 3, 100, 150, generator=torch.Generator().manual_seed(0))
    boxes = torch.tensor([[10, 20, 60, 80], [0, 5, 30, 20]])                       # one shrinks, one grows
    ours = crop_resize_flip(img, boxes, 40, flip=torch.tensor([False, True]))
    for k, (t, l, h, w) in enumerate(boxes.tolist()):
        ref = TF.resized_crop(img[k], t, l, h, w, [40, 40], antialias=True)
        torch.testing.assert_close(ours[k], ref.flip(-1) if k else ref, rtol=0, atol=1e-5)
    as_uint8 = (img * 255).round().to(torch.uint8).contiguous(memory_format=torch.channels_last)
    ours8 = crop_resize_flip(as_uint8, boxes, 40)
    assert ours8.dtype == torch.uint8
    for k, (t, l, h, w) in enumerate(boxes.tolist()):
        ref = TF.resized_crop(as_uint8[k].float(), t, l, h, w, [40, 40], antialias=True)
        assert (ours8[k].float() - ref).abs().max() < 1.01


def test_eval_is_deterministic_and_ignores_generator():
    ev, v = VideoEval(crops=3), clip(H=240, W=320)
    a = ev(v)
    torch.testing.assert_close(ev(v, generator=torch.Generator().manual_seed(5)), a, rtol=0, atol=0)
    assert a.shape == (3, 3, 8, 112, 112)
    # the three crops step along the long side: the middle one is the centre crop
    torch.testing.assert_close(a[1], VideoEval()(v), rtol=0, atol=0)


def test_denormalize_inverts_normalize_on_batches():
    x = torch.randint(0, 256, (2, 4, 16, 16, 3), dtype=torch.uint8)
    normed = normalize_video(x.permute(0, 1, 4, 2, 3) / 255).permute(0, 2, 1, 3, 4)   # (B, 3, T, H, W)
    assert torch.equal(denormalize_video(normed), x)


@pytest.mark.skipif(not CUDA, reason="needs a CUDA device")
def test_gpu_batch_matches_cpu():
    aug, vid = VideoAugment(), torch.stack([clip(seed=s) for s in range(8)])
    p = aug.sample_params(8, 128, 171, torch.Generator().manual_seed(0))
    # on the GPU the frames are resized as floats (the integer kernel is CPU-only): within a grey level, times the jitter
    diff = (aug.apply(vid.cuda(), p).cpu() - aug.apply(vid, p)).abs()
    assert diff.max() < 6 / 255 / 0.225 and diff.mean() < 0.5 / 255 / 0.225
    lm, wave = LogMel(), torch.randn(4, 32000)
    torch.testing.assert_close(lm(wave.cuda()).cpu(), lm(wave), rtol=1e-4, atol=1e-4)
    a = AudioAugment()
    spec = lm(wave)
    ap = a.sample_params(4, 80, 201, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.apply(spec.cuda(), ap).cpu(), a.apply(spec, ap), rtol=1e-4, atol=1e-4)


# the official pretraining augmentation, as options (crisscross-facts.md, "Pretraining augmentation details")
def test_jitter_in_order_is_torchvisions_colour_jitter():
    "Each step as torchvision's functional op, clamped in between, in the given order; hue exact (HSV)."
    from crisscross.transforms import jitter_in_order
    im = torch.rand(1, 3, 24, 24, generator=torch.Generator().manual_seed(5))
    ops = [lambda x: TF.adjust_brightness(x, 1.3), lambda x: TF.adjust_contrast(x, 0.7), lambda x: TF.adjust_saturation(x, 1.4),
           lambda x: TF.adjust_hue(x, 0.15)]
    for order in ([0, 1, 2, 3], [3, 1, 0, 2], [2, 3, 1, 0]):
        expected = im
        for k in order: expected = ops[k](expected)
        torch.testing.assert_close(jitter_in_order(im, order, 1.3, 0.7, 1.4, 0.15), expected, atol=2e-5, rtol=0)


def test_random_order_jitter_is_always_applied_in_each_clips_drawn_order():
    "jitter_p 1: every clip jittered, each in its own order, and the other parameters are drawn exactly as in the fixed order."
    from crisscross.transforms import jitter_in_order
    kw = dict(size=32, scale=(1, 1), ratio=(1, 1), flip_p=0, jitter_p=1.0, gray_p=0, blur_p=0, max_cutout=0, mean=(0, 0, 0), std=(1, 1, 1))
    video = clip(T=2, H=32, W=32)[None].expand(6, -1, -1, -1, -1)
    fixed, ours = VideoAugment(**kw), VideoAugment(**kw, jitter_order="random")
    out, p = ours(video, generator=torch.Generator().manual_seed(1), return_params=True)
    q = fixed.sample_params(6, 32, 32, torch.Generator().manual_seed(1))
    assert p.order is not None and q.order is None and len({tuple(o) for o in p.order.tolist()}) > 1
    assert all(torch.equal(getattr(p, k), getattr(q, k)) for k in ("box", "brightness", "contrast", "saturation", "hue", "gray"))
    for b in range(6):
        expected = jitter_in_order(video[b].permute(0, 3, 1, 2).float() / 255, p.order[b].tolist(), p.brightness[b].item(),
                                   p.contrast[b].item(), p.saturation[b].item(), p.hue[b].item())
        torch.testing.assert_close(out[b], expected.transpose(0, 1), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="jitter_order must be one of"): VideoAugment(jitter_order="shuffled")


def test_frequency_and_time_resize_crop_on_the_canvas():
    "Boxes stay on the canvas (80 bins x 1.5 frames); the box of the spectrogram itself gives it back; default draws are unchanged."
    from crisscross.transforms import resize_crop_canvas
    spec = torch.randn(1, 1, 80, 201, generator=torch.Generator().manual_seed(0))
    p = AudioAugment(freq_scale=(0.6, 1.5)).sample_params(2000, 80, 201, torch.Generator().manual_seed(2))
    top, left, h, w = p.box.unbind(1)
    assert (top >= 0).all() and (top + h <= 80).all() and (left >= 0).all() and (left + w <= 302).all()
    assert h.min() == 48 and h.max() == 80 and w.min() in (120, 121) and w.max() in (301, 302) and (h < 80).float().mean() > 0.4
    torch.testing.assert_close(resize_crop_canvas(spec, torch.tensor([[0, 50, 80, 201]]), torch.zeros(1)), spec, atol=1e-5, rtol=0)
    q = AudioAugment().sample_params(2000, 80, 201, torch.Generator().manual_seed(2))
    assert q.box is None and torch.equal(p.gain, q.gain) and torch.equal(p.freq_masks, q.freq_masks)
    out = AudioAugment(freq_scale=(0.6, 1.5))(spec, generator=torch.Generator().manual_seed(3))
    assert out.shape == spec.shape and not torch.equal(out, spec)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not CUDA, reason="no CUDA device"))]


def smooth_clips(B=3, T=4, H=96, W=128, seed=0):
    "uint8 clips of smooth content with a little noise: what resampling sees in real frames."
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.rand(B * T, 3, H // 8, W // 8, generator=g), size=(H, W), mode="bilinear")
    noisy = base * 235 + torch.rand(B * T, 3, H, W, generator=g) * 20
    return noisy.round().to(torch.uint8).view(B, T, 3, H, W).permute(0, 1, 3, 4, 2).contiguous()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("order", ["fixed", "random"])
def test_batched_video_path_matches_the_loader_path(device, order):
    """For the same drawn parameters the batched (device) path gives the loader path's views: to float rounding when the
    crop is the whole frame at the output size (flip, colour, grey, blur, cutout are the same operations), and within a
    resampling bound (mean 0.01, max 0.5 in normalised units) for random resized crops (a box filter vs a triangle)."""
    aug = VideoAugment(size=48, jitter_order=order, jitter_p=1.0 if order == "random" else 0.8)
    clips = smooth_clips()
    p = aug.sample_params(3, 96, 128, torch.Generator().manual_seed(1))
    loader = aug.apply(clips, p)
    batched = aug.apply(clips.to(device), p, batched=True).cpu()
    assert (batched - loader).abs().mean() < 0.01 and (batched - loader).abs().max() < 0.5
    same = clips[:, :, :48, :48]
    p = aug.sample_params(3, 48, 48, torch.Generator().manual_seed(2))
    p.box[:] = torch.tensor([0, 0, 48, 48]); p.blur[:] = True; p.flip[:] = torch.tensor([True, False, True])
    torch.testing.assert_close(aug.apply(same.to(device), p, batched=True).cpu(), aug.apply(same, p), rtol=0, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("freq_scale", [None, (0.6, 1.5)])
def test_batched_audio_path_matches_the_loader_path(device, freq_scale):
    "The batched audio path (one gather for the stretch, one masked fill) agrees with the loader path: masks exactly, the stretch to 5e-4."
    aug = AudioAugment(freq_scale=freq_scale, time_scale=(0.3, 3.0), time_mask_width=60)
    spec = LogMel()(torch.randn(8, 32000, generator=torch.Generator().manual_seed(3)))
    p = aug.sample_params(8, 80, 201, torch.Generator().manual_seed(4))
    torch.testing.assert_close(aug.apply(spec.to(device), p, batched=True).cpu(), aug.apply(spec, p), rtol=0, atol=5e-4)


def test_benchmark_gpu_cpu_dry_run_prints_its_table():
    "benchmark_gpu.py's code path (synthetic step, prepared clips through decode-only workers and prepare_views) runs on tiny CPU shapes."
    import os, subprocess, sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, str(root / "tests" / "benchmarks" / "benchmark_gpu.py"), "--cpu-dry-run"],
                       capture_output=True, text=True, timeout=240, cwd=root, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    header, figures = r.stdout.strip().splitlines()[-2:]
    assert "end to end (samples/s)" in header and len(figures.split()) == 4 and float(figures.split()[2]) > 0, r.stdout
    if not CUDA:   # without a GPU and without --cpu-dry-run: it says so and exits 0
        r = subprocess.run([sys.executable, str(root / "tests" / "benchmarks" / "benchmark_gpu.py")], capture_output=True, text=True,
                           timeout=120, cwd=root, env=env)
        assert r.returncode == 0 and "no CUDA device" in r.stdout, (r.stdout, r.stderr[-2000:])
