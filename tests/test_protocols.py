"""The official audio linear evaluations of `crisscross.protocols` on miniature real layouts (ESC-50 with its meta CSV,
DCASE 2013 with its development and test folders), files written by PyAV: 100 distinct augmented training clips per
recording, the official C grid, no test file read before the choice, the fixed DCASE split, and a papermill run of
nbs/evaluate.ipynb by protocol name. Tiny backbones (width 4), CPU, one torch thread."""
import json, shutil, subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from crisscross.encoders import audio_resnet18
from crisscross.evaluation import grid_name, load_split
from crisscross.testing import write_test_audio
from crisscross.protocols import (DCASE2013_OFFICIAL, ESC50_OFFICIAL, ESC50_OURS, NAMED_PROTOCOLS, OFFICIAL_C_GRID, REPRO, ClipFeatures,
                                  dcase2013_run, dcase2013_sets, esc50_fold, protocol_table, run_protocol, write_dcase2013_layout,
                                  write_esc50_layout)
from conftest import BIN, REPO


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread for tiny tensors


@pytest.fixture(scope="module")
def wavs(tmp_path_factory):
    "Two real recordings written by PyAV: 5 s at 16 kHz stereo, and a different one, 3 s at 22.05 kHz mono."
    d = tmp_path_factory.mktemp("wav")
    return write_test_audio(d / "a.wav", seconds=5.0, rate=16000), write_test_audio(d / "b.wav", seconds=3.0, rate=22050, channels=1)


@pytest.fixture(scope="module")
def esc(tmp_path_factory, wavs):
    return write_esc50_layout(tmp_path_factory.mktemp("esc") / "ESC-50", wavs[0])


@pytest.fixture(scope="module")
def audio():
    torch.manual_seed(0)
    return audio_resnet18(width=4).eval()


def test_the_c_grid_is_the_official_one():
    assert ESC50_OFFICIAL.c_grid == (1e-5, 5e-5, 1e-4, 5e-4, 1e-3, 5e-3, 1e-2, 1.0) == OFFICIAL_C_GRID
    assert ESC50_OURS.c_grid == (1e-4, 1e-3, 1e-2, 0.1, 1.0)  # ours, unchanged, under a name that says so
    rows = protocol_table("esc50").set_index("setting")
    assert rows.loc["c_grid", REPRO] == rows.loc["c_grid", "official code"] == "1e-05, 5e-05, 0.0001, 0.0005, 0.001, 0.005, 0.01, 1"
    assert set(NAMED_PROTOCOLS) == {"esc50-official", "dcase2013-official", "esc50-ours", "dcase2013-ours", "correspondence"}


def test_esc50_draws_100_distinct_augmented_clips_per_training_recording(esc, audio):
    bank = ClipFeatures(audio, ESC50_OFFICIAL)
    split = load_split("esc50", esc, 1, ESC50_OFFICIAL.val_fraction)
    r = esc50_fold(bank, split)
    training = split.train + split.val
    assert {p for _, p, kind in bank.log if kind == "augmented"} == {it.path for it in training}
    for it in training:
        f = bank.kept[(it.path, "augmented", 0)]
        assert f.shape == (100, 32 * 3 * 3) and len(torch.unique(f, dim=0)) == 100
    assert r["notes"]["refit"]["clips"] == 100 * len(training)  # the refit SVM saw all of them
    assert list(r["val_top1"]) == [grid_name(dict(C=c)) for c in OFFICIAL_C_GRID] and r["chosen"]["C"] in OFFICIAL_C_GRID
    # distinct starts, and each clip augmented: not the plain log-mel of its window
    path = training[0].path
    starts, _ = bank.starts(path, "augmented")
    assert len(starts) == len(set(starts)) == 100 and max(starts) <= 3.0
    n = 2 * 16000
    wave = bank.wave(path)
    plain = bank.log_mel(torch.stack([wave[round(s * 16000):round(s * 16000) + n] for s in starts]))
    augmented = bank.clips(path, "augmented")
    assert augmented.shape == plain.shape == (100, 1, 80, 201)
    assert not any(torch.allclose(a, p, atol=1e-4) for a, p in zip(augmented, plain))
    assert torch.equal(augmented, bank.clips(path, "augmented"))  # seeded: a run repeats


def test_the_test_fold_is_never_read_during_selection(tmp_path, esc, audio, wavs):
    split = load_split("esc50", esc, 4, ESC50_OFFICIAL.val_fraction)
    quick = replace(ESC50_OFFICIAL, train_clips=8)
    bank = ClipFeatures(audio, quick)
    r = esc50_fold(bank, split)
    phases = [phase for phase, *_ in bank.log]
    first_test = phases.index("test")
    assert phases[:first_test] == sorted(phases[:first_test], key=["select", "refit"].index) and set(phases[first_test:]) == {"test"}
    test_paths = {it.path for it in split.test}
    assert not test_paths & {p for _, p, _ in bank.log[:first_test]}
    assert {p for _, p, _ in bank.log[first_test:]} == test_paths
    # other sounds in the test fold's files change the test score's inputs, never the choice
    other = tmp_path / "ESC-50"; shutil.copytree(esc, other)
    for it in split.test: shutil.copy(wavs[1], other / "audio" / Path(it.path).name)
    bank2 = ClipFeatures(audio, quick)
    swapped = esc50_fold(bank2, load_split("esc50", other, 4, ESC50_OFFICIAL.val_fraction))
    assert (swapped["chosen"], swapped["val_top1"]) == (r["chosen"], r["val_top1"])
    name = Path(split.test[0].path).name
    assert not torch.equal(bank.kept[(split.test[0].path, "uniform", 0)], bank2.kept[(str(other / "audio" / name), "uniform", 0)])


def test_dcase_uses_the_fixed_development_and_test_sets(tmp_path, wavs, audio):
    root = write_dcase2013_layout(tmp_path / "dcase" / "set1", wavs[0], classes=("bus", "park", "tube"), per_class=2)
    nested = tmp_path / "nested"  # the zips unpack to scenes_stereo/scenes_stereo/*.wav
    for folder in ("scenes_stereo", "scenes_stereo_testset"): shutil.copytree(root / folder, nested / folder / folder)
    dev, test = dcase2013_sets(tmp_path / "dcase")
    assert [Path(i.path).parent.name for i in dev] == ["scenes_stereo"] * 6 and [Path(i.path).parent.name for i in test] == ["scenes_stereo_testset"] * 6
    assert sorted(Path(i.path).name for i in dcase2013_sets(nested)[1]) == sorted(Path(i.path).name for i in test)
    bank = ClipFeatures(audio, replace(DCASE2013_OFFICIAL, train_clips=3, test_clips=4, epochs=2), device="cpu")
    r = dcase2013_run(bank, tmp_path / "dcase")
    assert r["files"] == dict(train=6, val=0, test=6) and len(r["confusion"]) == 10
    assert {p for ph, p, _ in bank.log if ph == "train"} == {i.path for i in dev}
    assert {p for ph, p, _ in bank.log if ph == "test"} == {i.path for i in test}
    assert [e for e in bank.log if e[0] == "train"] == [("train", i.path, "augmented") for i in dev] * 2  # a fresh draw each epoch
    m = run_protocol("dcase2013-official", tmp_path / "run", preset="tiny", data_root=str(nested), progress=False,
                     train_clips=3, test_clips=4, epochs=2)
    assert [s["files"] for s in m["splits"]] == [dict(train=6, val=0, test=6)]
    assert (tmp_path / "run" / "metrics.json").is_file() and m["summary"]["audio/dcase2013-official/top1"]["n"] == 1
    with pytest.raises(ValueError, match="one fixed"):
        run_protocol("dcase2013-official", tmp_path / "x", preset="tiny", data_root=str(nested), split=2, progress=False, epochs=1)


def test_evaluate_notebook_runs_a_protocol_by_name(tmp_path, esc):
    out = tmp_path / "run"
    args = [a for kv in (("protocol", "esc50-official"), ("preset", "tiny"), ("data_root", esc), ("split", 2), ("out_dir", out))
            for a in ("-p", *map(str, kv))]
    result = subprocess.run([str(BIN / "papermill"), "nbs/evaluate.ipynb", str(tmp_path / "executed.ipynb"), *args],
                            cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["protocols"] == ["esc50-official"] and m["protocol_settings"]["train_clips"] == 100
    assert m["protocol_settings"]["c_grid"] == list(OFFICIAL_C_GRID)
    assert {"audio/esc50-official/top1", "audio/esc50-official/top1_before_refit"} <= set(m["summary"])
    assert (out / "results.md").read_text().startswith("| target |")
