"""The paper's released backbones: rebuilt from `official-backbones.json` (key names, order and shapes of the official
state dicts, and the outputs the official networks gave for a fixed input after their weights were filled by a fixed
recipe; copied from the project's reference facts), written as released zips, loaded through `load_pretrained` and
checked against those outputs; bad files refused before anything in them runs; our runs exported in the released
format; released weights evaluated by `crisscross.evaluation` with the paper's input shapes."""
import contextlib, io, json, math, zipfile
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from crisscross.encoders import audio_resnet18, r2plus1d_18
from crisscross.trainer import TrainConfig, atomic_save
from crisscross.weights import (ZOO, WeightsError, export_official, from_official, load_pretrained, main, read_weights,
                                to_official, write_released)

REFERENCE = json.loads((Path(__file__).parent / "official-backbones.json").read_text())


def official_state(modality: str) -> dict:
    "The official state dict of `modality`, filled by the reference recipe, in the official order."
    ref = REFERENCE[modality]
    g, sd = torch.Generator().manual_seed(ref["weight_seed"]), {}
    for name, shape, dtype in ref["keys"]:
        if name.endswith("num_batches_tracked"): sd[name] = torch.zeros(shape, dtype=torch.int64); continue
        x = torch.randn(shape, generator=g)
        if len(shape) > 1: x = x * math.sqrt(2 / math.prod(shape[1:]))
        elif name.endswith("running_var"): x = 1 + 0.1 * x.abs()
        elif name.endswith("running_mean") or name.endswith("bias"): x = 0.1 * x
        elif name.endswith("weight"): x = 1 + 0.1 * x
        sd[name] = x
    return sd


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    "Both reference backbones written as the release writes them: {modality: zip path}."
    d = tmp_path_factory.mktemp("release")
    return {m: write_released(official_state(m), d / f"{m[:3]}_crisscross_reference.pth.tar.zip") for m in ("video", "audio")}


@pytest.mark.parametrize("modality", ["video", "audio"])
def test_released_zip_gives_the_official_outputs(released, modality):
    ref = REFERENCE[modality]
    net = load_pretrained(released[modality])  # the modality is read from the keys
    assert net.pretrained["kind"] == f"official {modality} backbone" and len(net.pretrained["sha256"]) == 64
    assert sum(p.numel() for p in net.parameters()) == ref["n_params"]
    x = torch.randn(ref["input_shape"], generator=torch.Generator().manual_seed(ref["input_seed"]))
    with torch.no_grad(): pooled, conv5x = net(x), net.feature_maps(x)["conv5x"]
    expected = torch.tensor(ref["pool"])
    assert ((pooled - expected).norm() / expected.norm()).item() < 1e-4
    assert list(conv5x.shape) == ref["conv5x_shape"] and abs(conv5x.mean().item() - ref["conv5x_mean"]) < 1e-4 * ref["conv5x_mean"]


@pytest.mark.parametrize("modality", ["video", "audio"])
def test_round_trip_keeps_the_official_order(modality):
    sd = official_state(modality)
    assert list(sd) == [k for k, _, _ in REFERENCE[modality]["keys"]]
    back = to_official(from_official(sd))
    assert list(back) == list(sd) and all(torch.equal(back[k], sd[k]) for k in sd)
    assert [list(v.shape) for v in back.values()] == [s for _, s, _ in REFERENCE[modality]["keys"]]


def test_the_pth_tar_inside_the_zip_loads_too(released, tmp_path):
    inner = tmp_path / "vid.pth.tar"
    with zipfile.ZipFile(released["video"]) as z: inner.write_bytes(z.read(z.namelist()[0]))
    a, b = load_pretrained(inner), load_pretrained(released["video"], "video")
    assert all(torch.equal(a.state_dict()[k], b.state_dict()[k]) for k in a.state_dict())


# Bad sources: refused with the file's name, nothing executed ------------------------------------------------------------
class Payload:
    "Unpickling this creates the file `marker`: what a malicious checkpoint would do."
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (Path.touch, (Path(self.marker),))


def test_bad_sources_are_refused(released, tmp_path):
    two = tmp_path / "two.zip"
    with zipfile.ZipFile(two, "w") as z: z.writestr("a.pth.tar", b"1"); z.writestr("b.pth.tar", b"2")
    cut = tmp_path / "cut.pth.tar.zip"; cut.write_bytes(released["audio"].read_bytes()[: 3 << 20])
    unrelated = tmp_path / "resnet.pt"; torch.save({"fc.weight": torch.zeros(10, 512), "fc.bias": torch.zeros(10)}, unrelated)
    marker = tmp_path / "marker"
    evil = tmp_path / "evil.pth.tar"; torch.save({"conv1.0.weight": torch.zeros(1), "x": Payload(marker)}, evil)
    assert not marker.exists()
    for path, text in ((two, "holds 2 files"), (cut, "truncated"), (unrelated, "not a CrissCross backbone"),
                       (evil, "will not run code")):
        with pytest.raises(WeightsError) as e: load_pretrained(path)
        assert str(path) in str(e.value) and text in str(e.value), str(e.value)
        assert "weights_only=False" not in str(e.value)
    assert not marker.exists()  # nothing in the file ran
    half = official_state("audio"); half.pop("block3.1.conv2.weight")
    torch.save(half, tmp_path / "half.pth.tar")
    with pytest.raises(WeightsError, match=r"missing \(1\): block3.1.conv2.weight"): load_pretrained(tmp_path / "half.pth.tar")


# Our runs in the released format ---------------------------------------------------------------------------------------
def test_export_official_round_trip(tmp_path):
    torch.manual_seed(0)
    video, audio = r2plus1d_18(), audio_resnet18()
    atomic_save(dict(video=video.state_dict(), audio=audio.state_dict(), video_args=dict(width=64, depth=2),
                     audio_args=dict(width=64, depth=2), config=asdict(TrainConfig())), tmp_path / "backbones.pt")
    with contextlib.redirect_stdout(io.StringIO()) as out: main(["export", str(tmp_path / "backbones.pt"), str(tmp_path / "official")])
    assert "vid_crisscross_ours.pth.tar.zip" in out.getvalue()
    for modality, net in (("video", video), ("audio", audio)):
        path = tmp_path / "official" / f"{modality[:3]}_crisscross_ours.pth.tar.zip"
        with zipfile.ZipFile(path) as z: assert z.namelist() == [path.name.removesuffix(".zip")]
        assert list(read_weights(path)) == [k for k, _, _ in REFERENCE[modality]["keys"]]
        back = load_pretrained(path)
        assert all(torch.equal(back.state_dict()[k], v) for k, v in net.state_dict().items())
    small = tmp_path / "small.pt"
    atomic_save(dict(video=r2plus1d_18(width=4).state_dict(), audio=audio_resnet18(width=4).state_dict(), video_args=dict(width=4, depth=2),
                     audio_args=dict(width=4, depth=2), config=asdict(TrainConfig(width=4))), small)
    with pytest.raises(ValueError, match="strict=False"): export_official(small, tmp_path / "o2")
    assert set(export_official(small, tmp_path / "o2", strict=False)) == {"video", "audio"}


def test_zoo_names_the_six_released_files():
    assert sorted(e.file for e in ZOO.values()) == sorted(f"{m}_crisscross_{d}.pth.tar.zip" for m in ("vid", "aud")
                                                          for d in ("kinetics_sound", "kinetics_400", "audioset"))
    assert ZOO["kinetics_400/video"].results == dict(ucf101=91.5, hmdb51=64.7)
    assert ZOO["audioset/audio"].results == dict(esc50=90.5, dcase=97.0)
    assert ZOO["kinetics_sound/audio"].url.endswith("/model_weights/aud_crisscross_kinetics_sound.pth.tar.zip")


# Released weights in the evaluation -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_release(tmp_path_factory):
    "Width-4 backbones in the released format (the converter does not care about width) and a tiny embedded set."
    from crisscross.embedded import EmbeddedConfig, ensure_embedded
    d = tmp_path_factory.mktemp("small")
    torch.manual_seed(0)
    files = {m: write_released(to_official(net.state_dict()), d / f"{m[:3]}_small.pth.tar.zip")
             for m, net in (("video", r2plus1d_18(width=4, depth=1)), ("audio", audio_resnet18(width=4, depth=1)))}
    cfg = EmbeddedConfig(n_classes=2, clips_per_class=4, seconds=3.0, size=64, val_per_class=1, test_per_class=1)
    return files, ensure_embedded(d / "data", cfg, workers=1, progress=False)


def test_released_weights_evaluate_with_the_paper_shapes(small_release, tmp_path):
    from crisscross.evaluation import eval_config, evaluate
    files, root = small_release
    fast = dict(data_root=str(root), clips=1, protocol="knn,retrieval", knn_k=(1,), cpu_threads=1, progress=False)
    one = evaluate(eval_config(checkpoint=str(files["audio"]), **fast), tmp_path / "audio")
    assert one["modalities"] == ["audio"] and one["checkpoint"]["kind"] == "official audio backbone"
    assert one["settings"]["audio"]["audio_seconds"] == 2.0  # the released network's 2 s, not the embedded set's
    both = evaluate(eval_config(checkpoint=f"{files['video']},{files['audio']}", **fast), tmp_path / "both")
    v = both["settings"]["video"]
    assert both["modalities"] == ["video", "audio"] and (v["frames"], v["size"], v["fps"]) == (8, 112, 16.0)
    assert both["cross_modal"].startswith("skipped: the pair holds no projector")
    with pytest.raises(ValueError, match="holds no video backbone"):
        evaluate(eval_config(checkpoint=str(files["audio"]), modality="video", **fast), tmp_path / "refused")
    with pytest.raises(ValueError, match="is not a file, nor a zoo name"):
        evaluate(eval_config(checkpoint=str(tmp_path / "nowhere.zip"), **fast), tmp_path / "refused")


def test_released_weights_start_a_finetuning_run(small_release, tmp_path):
    from crisscross import finetune as ft
    files, root = small_release
    args = ["--preset", "tiny", "--dataset", "csv", "--data-root", str(root), "--checkpoint", str(files["video"]),
            "--modality", "video", "--out-dir", str(tmp_path / "ft")]
    start = ft.build_backbone(ft.finetune_config("tiny", dataset="csv", data_root=str(root), checkpoint=str(files["video"])), "video")
    released = load_pretrained(files["video"])
    assert all(torch.equal(a, b) for a, b in zip(start.state_dict().values(), released.state_dict().values()))
    with contextlib.redirect_stdout(io.StringIO()): m = ft.main(args + ["--epochs", "1"])
    assert m["backbone"]["source"] == str(files["video"]) and m["backbone"]["width"] == 4
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()) as err:  # a missing file: refused before any compute
        ft.main([a if a != str(files["video"]) else str(tmp_path / "missing.zip") for a in args])
    assert "is not a file, nor a zoo name" in err.getvalue()


def test_saliency_notebook_draws_a_released_backbone(small_release, tmp_path):
    import subprocess, sys
    files, root = small_release
    repo, out = Path(__file__).resolve().parents[1], tmp_path / "figures"
    result = subprocess.run([str(Path(sys.executable).parent / "papermill"), "nbs/saliency.ipynb", str(tmp_path / "saliency.ipynb"),
                             "-p", "checkpoint_a", str(files["video"]), "-p", "data_root", str(root), "-p", "n_clips", "1",
                             "-p", "out_dir", str(out)], cwd=repo, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    executed = (tmp_path / "saliency.ipynb").read_text()
    assert "target feature_norm" in executed and "concentration: video" in executed and "concentration: video 0.00, audio" not in executed
    assert (out / "saliency-00.png").stat().st_size > 10_000
