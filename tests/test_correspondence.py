"""The correspondence probe's wiring: files held out before pretraining never reach its items, the held-out share and
minimum, the named protocol refuses weights without heads, the pretrain notebook stores the table in metrics.json, and
the probe during training (`probe_every`, through the CLI) is logged without changing the weights.
Real tiny videos written by PyAV; a real papermill subprocess."""
import json, subprocess

import pytest

from crisscross.data import holdout_files
from crisscross.testing import write_test_video
from crisscross.pretrain import main as pretrain_main
from crisscross.protocols import run_protocol
from crisscross.trainer import build_model, config_from_preset, export_backbones, make_dataset
from conftest import BIN


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("videos")
    for i in range(6): write_test_video(root / f"v{i}.mp4", seconds=3.0, size=(64, 48), fps=16, audio_rate=16000, seed=i)
    return root


def test_held_out_files_never_reach_pretraining(videos):
    cfg = config_from_preset("tiny", dataset="folder", data_root=str(videos), audio_seconds=0.25, probe_holdout=0.1)
    views = make_dataset(cfg)
    trained, held = {it.path for it in views.items}, set(views.probe_files)
    assert len(held) == 3 and len(trained) == 3, (trained, held)   # 0.1 of 6 files, raised to the minimum, capped at half
    assert not trained & held and trained | held == {str(p) for p in sorted(videos.glob("*.mp4"))}
    assert make_dataset(cfg).probe_files == views.probe_files     # seeded
    assert make_dataset(config_from_preset("tiny", dataset="folder", data_root=str(videos), audio_seconds=0.25)).probe_files == []


def test_holdout_share_and_minimum():
    names = [f"f{i:04d}.mp4" for i in range(1000)]
    assert len(holdout_files(names, 0.1)[1]) == 100
    assert len(holdout_files(names[:100], 0.1)[1]) == 16     # at least 16
    assert len(holdout_files(names[:20], 0.1)[1]) == 10      # at most half
    train, held = holdout_files(names, 0.1, seed=3)
    assert set(held) == set(holdout_files(names[::-1], 0.1, seed=3)[1]) and not set(train) & set(held)
    with pytest.raises(ValueError, match="probe_holdout"): holdout_files(names, 1.0)


def test_protocol_refuses_weights_without_heads(tmp_path):
    cfg = config_from_preset("tiny")
    path = export_backbones(build_model(cfg), cfg, tmp_path / "backbones.pt")
    with pytest.raises(ValueError, match="needs the heads"):
        run_protocol("correspondence", tmp_path / "out", checkpoint=str(path), progress=False)


def test_pretrain_notebook_writes_the_table(tmp_path, videos):
    out = tmp_path / "run"
    args = [("dataset", "folder"), ("data_root", videos), ("out_dir", out), ("probe_holdout", 0.5), ("batch_size", 4),
            ("epochs", 1), ("max_steps", 1)]   # the cpu preset, as a user's folder run
    result = subprocess.run([str(BIN / "papermill"), "nbs/pretrain.ipynb", str(tmp_path / "executed.ipynb"),
                             *[x for k, v in args for x in ("-p", k, str(v))]], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    probe = json.loads((out / "metrics.json").read_text())["correspondence"]
    assert probe["files"] == 3 and len(probe["random"]) == 3
    assert probe["pretrained"]["audio->video"]["chance"]["R@1"] == pytest.approx(1 / 3)
    assert len((out / "probe_files.txt").read_text().split()) == 3


def test_probe_every_logs_without_changing_training(tmp_path, videos):
    args = ["--preset", "tiny", "--dataset", "folder", "--data-root", str(videos), "--audio-seconds", "0.25",
            "--probe-holdout", "0.5", "--tensorboard"]
    plain = pretrain_main([*args, "--out-dir", str(tmp_path / "plain")])
    probed = pretrain_main([*args, "--out-dir", str(tmp_path / "probed"), "--probe-every", "1"])
    assert probed["param_sha256"] == plain["param_sha256"], "the probe changed training (RNG, train mode or gradients)"
    assert [e["loss"] for e in probed["epochs"]] == [e["loss"] for e in plain["epochs"]]
    logged = json.loads((tmp_path / "probed" / "metrics.json").read_text())["epochs"]
    assert [e["probe"]["files"] for e in logged] == [3, 3] and all("probe" not in e for e in plain["epochs"])
    assert 1 <= logged[-1]["probe"]["video_to_audio_median_rank"] <= 3 and 0 <= logged[-1]["probe"]["audio_to_video_R@1"] <= 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tb = EventAccumulator(str(tmp_path / "probed" / "tb")).Reload()
    assert [e.step for e in tb.Scalars("probe/audio_to_video_R@1")] == [1, 2]
    assert [e.value for e in tb.Scalars("probe/audio_to_video_median_rank")] == pytest.approx([e["probe"]["audio_to_video_median_rank"] for e in logged])
