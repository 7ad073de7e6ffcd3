"""Data sets on miniature copies of real layouts: real media files, real split and CSV files."""
import csv, json, os
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from crisscross import data
from crisscross.data import (BadFiles, Item, LabelledClips, PretrainViews, audioset, class_folders, collate_views, dcase2013,
                             esc50, hmdb51, index_media, kinetics, kinetics_sound, ucf101, video_folder)
from crisscross.media import MediaError
from crisscross.testing import write_corrupt_variants, write_test_video, write_test_audio
from conftest import copy

SMALL = dict(size=(64, 48), fps=16, audio_rate=16000)


def clip(path, seconds=4.5, **kw):
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    write_test_video(path, seconds=seconds, **{**SMALL, **kw})
    return path


@pytest.fixture(scope="module")
def master(tmp_path_factory):
    "One real clip of each kind, copied into the layouts below (writing files is the slow part)."
    d = tmp_path_factory.mktemp("master")
    return {"mp4": clip(d / "a.mp4"), "avi": clip(d / "a.avi", video_codec="mpeg4", audio_codec="mp3"),
            "wav": write_test_audio(d / "a.wav", seconds=5.0, rate=44100)}


def test_video_folder_and_class_folders(tmp_path, master):
    for rel in ["x/b.mp4", "x/y/c.mp4", "a.mp4"]: copy(master["mp4"], tmp_path / rel)
    (tmp_path / "notes.txt").write_text("not a video")
    assert [Path(i.path).relative_to(tmp_path).as_posix() for i in video_folder(tmp_path)] == ["a.mp4", "x/b.mp4", "x/y/c.mp4"]
    items = class_folders(tmp_path)
    assert {(i.class_name, i.label) for i in items} == {("x", 0)} and len(items) == 2
    with pytest.raises(FileNotFoundError, match="no folder"): video_folder(tmp_path / "missing")


def test_kinetics_and_kinetics_sound(tmp_path, master):
    for split in ("train", "val"):
        for cls in ("playing drums", "bowling", "cooking egg"):
            copy(master["mp4"], tmp_path / split / cls / "abcdefghijk_000010_000020.mp4")
    items = kinetics(tmp_path, "val")
    assert [i.class_name for i in items] == ["bowling", "cooking egg", "playing drums"] and {i.split for i in items} == {"val"}
    with pytest.warns(UserWarning, match="classes are not in"):
        ks = kinetics_sound(tmp_path, "train")
    assert [i.class_name for i in ks] == ["bowling", "playing drums"] and [i.label for i in ks] == [0, 1]


def test_audioset_counts_missing_clips(tmp_path, master):
    copy(master["mp4"], tmp_path / "clips" / "AAAAAAAAAAA_30.000_40.000.mp4")
    copy(master["mp4"], tmp_path / "clips" / "BBBBBBBBBBB.mp4")
    (tmp_path / "seg.csv").write_text(
        "# Segments csv created Sun Mar  5 10:54:31 2017\n# YTID, start_seconds, end_seconds, positive_labels\n"
        'AAAAAAAAAAA, 30.000, 40.000, "/m/09x0r,/m/05zppz"\nBBBBBBBBBBB, 1.000, 4.000, "/m/04rlf"\nCCCCCCCCCCC, 0.000, 10.000, "/m/04rlf"\n')
    items, missing = audioset(tmp_path / "seg.csv", tmp_path / "clips")
    assert missing == 1 and len(items) == 2
    a, b = sorted(items, key=lambda i: i.path)
    assert (a.start, a.end) == (0.0, None) and a.class_name == "/m/09x0r,/m/05zppz"  # a per-segment file holds just the segment
    assert (b.start, b.end) == (1.0, 4.0)  # a whole video: the segment inside it


def test_ucf101_official_splits(tmp_path, master):
    root = tmp_path / "ucf"
    classes = ["ApplyEyeMakeup", "Basketball"]
    (root / "ucfTrainTestlist").mkdir(parents=True)
    (root / "ucfTrainTestlist" / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 Basketball\n")
    train, test = [], []
    for c in classes:
        for g in (1, 8):
            name = f"{c}/v_{c}_g{g:02d}_c01.avi"
            copy(master["avi"], root / "UCF-101" / name)
            (test if g == 1 else train).append(name)
    (root / "ucfTrainTestlist" / "trainlist01.txt").write_text("".join(f"{n} {classes.index(n.split('/')[0]) + 1}\n" for n in train))
    (root / "ucfTrainTestlist" / "testlist01.txt").write_text("".join(f"{n}\n" for n in test))
    tr, te = ucf101(root, 1, "train"), ucf101(root, 1, "test")
    assert [(Path(i.path).name, i.label) for i in te] == [("v_ApplyEyeMakeup_g01_c01.avi", 0), ("v_Basketball_g01_c01.avi", 1)]
    assert all("g08" in i.path for i in tr) and {i.split for i in tr} == {"train"}
    ds = LabelledClips(te, "video", clips=3, frames=4, size=32, progress=False)
    sample = ds[1]
    assert sample["x"].shape == (3, 3, 4, 32, 32) and sample["label"] == 1
    with pytest.raises(ValueError, match="splits 1..3"): ucf101(root, 4)


def test_hmdb51_marks(tmp_path, master):
    root = tmp_path / "hmdb"
    (root / "testTrainMulti_7030_splits").mkdir(parents=True)
    for c in ("brush_hair", "cartwheel"):
        lines = []
        for v, mark in (("a", 1), ("b", 2), ("c", 0)):
            copy(master["avi"], root / c / f"{c}_{v}.avi"); lines.append(f"{c}_{v}.avi {mark} \n")
        (root / "testTrainMulti_7030_splits" / f"{c}_test_split1.txt").write_text("".join(lines))
    assert [Path(i.path).name for i in hmdb51(root, 1, "train")] == ["brush_hair_a.avi", "cartwheel_a.avi"]
    test = hmdb51(root, 1, "test")
    assert [(Path(i.path).name, i.label) for i in test] == [("brush_hair_b.avi", 0), ("cartwheel_b.avi", 1)]
    assert LabelledClips(test, "audio", clips=2, progress=False)[0]["x"].shape == (2, 1, 80, 201)


def test_esc50_folds_and_dcase(tmp_path, master):
    root = tmp_path / "ESC-50"
    rows = [("1-100038-A-14.wav", 1, 14, "chirping_birds"), ("2-100648-A-43.wav", 2, 43, "chainsaw"), ("5-9032-A-0.wav", 5, 0, "dog")]
    for name, *_ in rows: copy(master["wav"], root / "audio" / name)
    (root / "meta").mkdir()
    with open(root / "meta" / "esc50.csv", "w", newline="") as f:
        w = csv.writer(f); w.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        for name, fold, target, cat in rows: w.writerow([name, fold, target, cat, False, name.split("-")[1], "A"])
    items = esc50(root, folds=[1, 5])
    assert [(i.label, i.class_name, i.split) for i in items] == [(14, "chirping_birds", "fold1"), (0, "dog", "fold5")]
    x = LabelledClips(items, "audio", clips=10, progress=False)[0]["x"]
    assert x.shape == (10, 1, 80, 201) and not torch.equal(x[0], x[-1])  # spaced clips differ
    for name in ("bus01.wav", "park02.wav", "tubestation10.wav"): copy(master["wav"], tmp_path / "dcase" / name)
    assert [(i.class_name, i.label) for i in dcase2013(tmp_path / "dcase")] == [("bus", 0), ("park", 4), ("tubestation", 9)]
    copy(master["wav"], tmp_path / "dcase" / "kitchen01.wav")
    with pytest.raises(ValueError, match="kitchen01.wav"): dcase2013(tmp_path / "dcase")


def test_index_cache_detects_changes(tmp_path, master):
    paths = [copy(master["mp4"], tmp_path / f"v{i}.mp4") for i in range(3)]
    first = index_media(paths, progress=False)
    assert first.probed == 3 and Path(first.cache) == tmp_path / data.INDEX_NAME
    assert index_media(paths, progress=False).probed == 0  # all from the cache
    paths.append(copy(master["avi"], tmp_path / "v3.avi"))
    os.remove(paths[0]); paths = paths[1:]
    (tmp_path / "v1.mp4").write_bytes(b"corrupt now")  # changed content (size differs)
    again = index_media(paths, progress=False, workers=2)
    assert again.probed == 2  # the new file and the changed one
    assert set(again.failed) == {str(tmp_path / "v1.mp4")} and len(again.infos) == 2
    saved = json.loads((tmp_path / data.INDEX_NAME).read_text())["files"]
    assert sorted(saved) == ["v1.mp4", "v2.mp4", "v3.avi"]


def test_pretrain_views_skip_and_count_bad_files(tmp_path, master):
    good = [copy(master["mp4"], tmp_path / f"good{i}.mp4") for i in range(2)]
    bad = write_corrupt_variants(tmp_path / "bad", good[0])
    short = clip(tmp_path / "short.mp4", seconds=1.0)
    items = [Item(str(p)) for p in good + list(bad.values()) + [short]]
    ds = PretrainViews(items, "mild", clips_per_video=2, frames=4, size=32, audio_seconds=1.0, progress=False)
    assert len(ds.items) == 2 and ds.excluded.total == len(bad) + 1
    assert any(r.startswith("shorter") for r in ds.excluded.counts) and "no_audio" in ds.excluded.counts
    sample = ds[3]
    assert sample["v1"].shape == (3, 4, 32, 32) and sample["a2"].shape == (1, 80, 101) and sample["skipped"] == []
    assert torch.equal(ds[3]["v1"], sample["v1"])  # deterministic per (seed, epoch, index)
    ds.set_epoch(1); assert not torch.equal(ds[3]["v1"], sample["v1"])
    # A file that breaks after indexing is skipped at decode time, recorded, and the sample comes from the next file.
    Path(good[0]).write_bytes(Path(good[0]).read_bytes()[:2000])
    loader = DataLoader(ds, batch_size=2, num_workers=2, collate_fn=collate_views)
    report, n = BadFiles(), 0
    for batch in loader: report.update(batch["skipped"]); n += len(batch["index"])
    assert n == len(ds) and report.total == 2 and str(good[0]) in str(report)
    with pytest.raises(MediaError, match="good0.mp4"):
        PretrainViews(items, "mild", frames=4, size=32, audio_seconds=1.0, strict=True, progress=False)


def test_pretrain_views_missing_audio(tmp_path, master):
    clip(tmp_path / "mute.mp4", with_audio=False)
    items = [Item(str(tmp_path / "mute.mp4"))]
    with pytest.raises(ValueError, match="no usable clips"):
        PretrainViews(items, frames=4, size=32, audio_seconds=1.0, progress=False)
    ds = PretrainViews(items, frames=4, size=32, audio_seconds=1.0, missing_audio="silence", progress=False)
    a = ds[0]["a1"]
    assert a.shape == (1, 80, 101) and a.std() < 0.5  # silence: a near-constant log-mel floor (before masking)
