"""End-to-end checks of `crisscross.evaluation` on miniature real layouts (UCF101 and HMDB51 with their split files,
ESC-50 with its meta CSV folds, DCASE 2013 scenes, the embedded set), that the test split never steers a choice, that
bad parameters stop before any compute, and a papermill run of nbs/evaluate.ipynb. Tiny backbones (the trainer's
`tiny` preset: width 4, 4 frames at 16 px), CPU only, one torch thread."""
import contextlib, csv, io, json, shutil, statistics, subprocess
from pathlib import Path

import pytest
import torch

from crisscross import evaluation as ev
from crisscross.data import labelled_csv, ucf101_group
from crisscross.evaluation import (Features, choose_on_validation, eval_config, evaluate, evaluate_probe, feature_key, fit_knn,
                                   fit_linear, fit_svm, load_split, results_table, state_digest)
from crisscross.embedded import EmbeddedConfig, ensure_embedded
from crisscross.trainer import config_from_preset, train
from conftest import BIN, REPO, copy, quiet

FAST = dict(preset="tiny", clips=2, knn_k=(1, 3), svm_c=(0.1, 1.0), linear_lr=(0.01, 0.1), linear_wd=(0.0,), linear_epochs=5,
            cpu_threads=1, progress=False)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread for tiny tensors


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    "A tiny embedded set: 2 classes x 4 clips of 3 s at 64 px (2 train, 1 val, 1 test each)."
    cfg = EmbeddedConfig(n_classes=2, clips_per_class=4, seconds=3.0, size=64, val_per_class=1, test_per_class=1)
    return ensure_embedded(tmp_path_factory.mktemp("tiny") / "data", cfg, workers=1, progress=False)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    "A one-step pretraining run of the trainer's tiny preset: its backbones.pt and its training checkpoint."
    out = tmp_path_factory.mktemp("pretrained")
    metrics = quiet(train, config_from_preset("tiny", max_steps=1, epochs=1), None, out)
    return Path(metrics["backbones"]), Path(metrics["checkpoint"])


def splits_of(metrics):
    return [r["split"] for r in metrics["splits"]]


# UCF101 -----------------------------------------------------------------------------------------------------------------
def test_ucf101_three_official_splits_every_protocol(tmp_path, media_16k):
    root = tmp_path / "ucf"
    classes = ["ApplyEyeMakeup", "Basketball"]
    lists = root / "ucfTrainTestlist"; lists.mkdir(parents=True)
    (lists / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    names = {g: [f"{c}/v_{c}_g{g:02d}_c{k:02d}.avi" for c in classes for k in (1, 2)] for g in range(1, 6)}
    for ns in names.values():
        for n in ns: copy(media_16k["avi"], root / "UCF-101" / n)
    for split in (1, 2, 3):  # split N tests group N, as the real lists test whole groups
        train = [n for g, ns in names.items() if g != split for n in ns]
        (lists / f"trainlist0{split}.txt").write_text("".join(f"{n} {classes.index(n.split('/')[0]) + 1}\n" for n in train))
        (lists / f"testlist0{split}.txt").write_text("".join(f"{n}\n" for n in names[split]))
    out = tmp_path / "run"
    m = evaluate(eval_config(dataset="ucf101", data_root=str(root), **FAST), out)
    assert splits_of(m) == [1, 2, 3] and m["modalities"] == ["video"] and m["cross_modal"] == "not requested"
    for run in m["splits"]:
        assert run["files"]["test"] == 4 and run["files"]["train"] + run["files"]["val"] == 16
        assert "whole groups" in run["val_source"]
        for p in ("knn", "svm", "linear"):
            r = run["results"]["video"][p]
            assert sum(map(sum, r["confusion"])) == 4 and 0 <= r["top1"] <= 1 and r["val_top1"]
        assert run["results"]["video"]["retrieval"]["gallery"] == 16
    s = m["summary"]["video/svm/top1"]
    assert s["n"] == 3 and s["std"] == pytest.approx(statistics.stdev(s["values"])) and s["mean"] == pytest.approx(statistics.fmean(s["values"]))
    # the validation part takes whole groups: none of its groups is also in training
    sp = load_split("ucf101", root, 2, 0.3, seed=0)
    assert not {ucf101_group(i) for i in sp.train} & {ucf101_group(i) for i in sp.val}
    # each split covers all 20 videos, so the three splits share one extraction
    assert [f["cached"] for f in m["features"]["video"]] == [False, True, True]
    assert m["feature_dims"]["video"] == 32  # 8 x width 4
    table = results_table(m)
    assert len(table) == 3 + 4 and set(table.protocol) == {"knn", "svm", "linear", "retrieval"}  # no top-5 over 2 classes
    assert (out / "confusion.png").stat().st_size > 3000 and "| video | svm | top1 |" in (out / "results.md").read_text()


# HMDB51 -----------------------------------------------------------------------------------------------------------------
def test_hmdb51_split_files_one_split(tmp_path, media_16k):
    root = tmp_path / "hmdb"
    (root / "testTrainMulti_7030_splits").mkdir(parents=True)
    marks = {"a": (1, 2, 0), "b": (1, 1, 2), "c": (1, 1, 1), "d": (2, 1, 1), "e": (0, 2, 1), "f": (1, 1, 1)}  # file: mark in split 1, 2, 3
    for c in ("brush_hair", "cartwheel"):
        for v in marks: copy(media_16k["avi"], root / c / f"{c}_{v}.avi")
        for split in (1, 2, 3):
            (root / "testTrainMulti_7030_splits" / f"{c}_test_split{split}.txt").write_text(
                "".join(f"{c}_{v}.avi {m[split - 1]} \n" for v, m in marks.items()))
    m = evaluate(eval_config(dataset="hmdb51", data_root=str(root), split=2, **FAST), tmp_path / "run")
    assert splits_of(m) == [2] and set(m["splits"][0]["results"]["video"]) == {"knn", "svm", "linear", "retrieval"}
    files = m["splits"][0]["files"]
    assert files["test"] == 2 * 2 and files["train"] + files["val"] == 2 * 4  # marks 2 and 1 of split 2
    assert m["features"]["video"][0]["files"] == 12  # every file is marked 1 or 2 in split 2: none left out
    r = m["splits"][0]["results"]["video"]["retrieval"]
    assert r["queries"] == 4 and r["recall@1"] <= r["recall@5"] == 1.0  # 2 classes: one of 5 neighbours shares the class
    assert (tmp_path / "run" / "confusion.png").is_file()


# ESC-50 -----------------------------------------------------------------------------------------------------------------
def test_esc50_five_folds_on_conv5x_features(tmp_path, media_16k):
    root = tmp_path / "ESC-50"
    rows = [(f"{fold}-{100 + 10 * fold + t}-A-{target}.wav", fold, target, cat)
            for fold in range(1, 6) for t, (target, cat) in enumerate(((0, "dog"), (1, "rooster")))]
    for name, *_ in rows: copy(media_16k["wav"], root / "audio" / name)
    (root / "meta").mkdir()
    with open(root / "meta" / "esc50.csv", "w", newline="") as f:
        w = csv.writer(f); w.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        for name, fold, target, cat in rows: w.writerow([name, fold, target, cat, True, name.split("-")[1], "A"])
    m = evaluate(eval_config(dataset="esc50", data_root=str(root), **FAST), tmp_path / "run")
    assert splits_of(m) == [1, 2, 3, 4, 5] and m["modalities"] == ["audio"]
    st = m["settings"]["audio"]
    assert (st["features"], st["audio_seconds"]) == ("conv5x", 2.0)  # the official ESC-50 protocol
    assert m["feature_dims"]["audio"] == 32 * 3 * 3  # 8 x width 4 channels x 3 x 3 (4608 at width 64)
    for run in m["splits"]:
        assert run["files"]["test"] == 2 and run["n_classes"] == 2
        assert run["results"]["audio"]["svm"]["chosen"]["C"] in (0.1, 1.0)
    assert all(m["summary"][f"audio/{p}"]["n"] == 5 for p in ("knn/top1", "svm/top1", "linear/top1", "retrieval/recall@1"))
    assert m["class_names"] == ["dog", "rooster"]


# DCASE 2013 -------------------------------------------------------------------------------------------------------------
def test_dcase2013_folds_sixty_one_second_clips(tmp_path, media_16k):
    root = tmp_path / "dcase" / "scenes_stereo"
    for cls in ("bus", "park"):
        for i in range(1, 6): copy(media_16k["wav"], root / f"{cls}{i:02d}.wav")
    m = evaluate(eval_config(dataset="dcase2013", data_root=str(root.parent), split=3, **dict(FAST, clips=0)), tmp_path / "run")
    st, run = m["settings"]["audio"], m["splits"][0]
    assert (st["clips"], st["audio_seconds"], st["features"]) == (60, 1.0, "conv5x") and m["feature_dims"]["audio"] == 32 * 3 * 1
    assert run["n_classes"] == 2 and set(run["results"]["audio"]) == {"knn", "svm", "linear", "retrieval"}  # classes with files
    assert all(len(run["results"]["audio"][p]["confusion"]) == 2 for p in ("knn", "svm", "linear"))  # bus (label 0), park (label 4)
    assert run["class_names"] == ["bus", "park"]
    assert run["files"] == dict(train=6, val=2, test=2)  # fold 3 of 5 stratified folds, a val file per class from the rest
    cache = torch.load(m["features"]["audio"][0]["cache"], weights_only=True)
    assert cache["x"].shape == (10, 60, 96)
    ft = pytest.importorskip("crisscross.finetune")  # fine-tuning and the frozen protocols test the same DCASE files
    if hasattr(ft, "FINETUNE_DATASETS") and "dcase2013" in ft.FINETUNE_DATASETS:
        ours = load_split("dcase2013", root.parent, 3)
        assert sorted(i.path for i in ft.FINETUNE_DATASETS["dcase2013"].load(str(root.parent), 3)[2]) == sorted(i.path for i in ours.test)


# Embedded set, checkpoints, cross-modal retrieval ------------------------------------------------------------------------
def test_embedded_checkpoints_and_cross_modal_retrieval(tmp_path, tiny, pretrained):
    backbones, ckpt = pretrained
    cache = tmp_path / "cache"
    kw = dict(FAST, data_root=str(tiny), protocol="retrieval", cache_dir=str(cache))
    full = evaluate(eval_config(checkpoint=str(ckpt), **kw), tmp_path / "ckpt")
    assert set(full["splits"][0]["results"]) == {"video", "audio", "video->audio", "audio->video"} and full["cross_modal"] == "done"
    assert full["checkpoint"]["kind"] == "training checkpoint" and len(full["checkpoint"]["sha256"]) == 64
    r = full["splits"][0]["results"]["video->audio"]["retrieval"]
    assert r["queries"] == 2 and r["gallery"] == 6 and set(r) >= {"recall@1", "recall@5", "recall@10", "recall@20"}
    # a hub cannot pose as learning: the hub share and CSLS recall beside recall, and chance and the majority ranking
    assert 0 < r["hub_share"] <= 1 and {"csls_recall@1", "csls_recall@5"} <= set(r) and set(r["chance"]) == set(r["majority"])
    table = results_table(full)
    assert {"chance", "majority"} <= set(table.columns) and table[table.metric == "recall@1"].chance.notna().all()
    assert not (tmp_path / "ckpt" / "confusion.png").exists()  # retrieval only: no classifier, no confusion matrix
    # backbones.pt holds the same backbone weights as the final checkpoint: the cached features are reused
    bb = evaluate(eval_config(checkpoint=str(backbones), **kw), tmp_path / "bb")
    assert bb["cross_modal"].startswith("skipped") and "video->audio" not in bb["splits"][0]["results"]
    assert [f[0]["cached"] for f in bb["features"].values()] == [True, True]
    assert bb["splits"][0]["results"]["audio"] == full["splits"][0]["results"]["audio"]
    # the random baseline of the checkpoint's shape: new weights, so new features
    rnd = evaluate(eval_config(checkpoint="random", **dict(kw, preset=str(backbones))), tmp_path / "rnd")
    assert rnd["checkpoint"]["kind"] == "random" and rnd["feature_dims"] == full["feature_dims"]
    assert [f[0]["cached"] for f in rnd["features"].values()] == [False, False]
    assert "video->audio" in rnd["splits"][0]["results"]  # a random model has (random) heads: the cross-modal baseline


def test_feature_cache_key_follows_content(tmp_path, tiny):
    items = labelled_csv(tiny)
    settings = ev.extraction_settings(eval_config(**FAST), "audio", config_from_preset("tiny"), "pooled")
    loaded = [ev.load_for_evaluation("random", "tiny", seed) for seed in (0, 0, 1)]
    digests = [state_digest(l.audio) for l in loaded]
    assert digests[0] == digests[1] != digests[2]  # 'random' is identified by its seed (and shape) through its weights
    key = feature_key(digests[0], items, settings)
    assert key == feature_key(digests[0], list(items), dict(settings))
    assert key != feature_key(digests[0], items[:-1], settings)  # another item list
    assert key != feature_key(digests[0], items, dict(settings, clips=3))  # other settings
    copied = tmp_path / "copy"; shutil.copytree(tiny, copied)
    moved = labelled_csv(copied)
    before = feature_key(digests[0], moved, settings)
    Path(moved[0].path).write_bytes(Path(moved[0].path).read_bytes()[:-100])  # a changed file
    assert feature_key(digests[0], moved, settings) != before


# The test split never steers a choice -----------------------------------------------------------------------------------
def clusters(n_files, seed, clips=3, noise=1.2):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(4, 24, generator=torch.Generator().manual_seed(99))
    y = torch.arange(n_files) % 4
    return Features(centres[y][:, None] + noise * torch.randn(n_files, clips, 24, generator=g), y, tuple(f"{seed}-{i}" for i in range(n_files)))


@pytest.mark.parametrize("fit,grid", [
    (fit_knn, [dict(k=k) for k in (1, 5, 15)]),
    (fit_svm, [dict(C=c) for c in (1e-4, 1e-2, 1.0)]),
    (fit_linear, [dict(lr=lr, weight_decay=wd, epochs=10, batch_size=16) for lr in (1e-3, 0.1) for wd in (0.0, 1e-2)]),
])
def test_garbage_test_split_leaves_the_choice_unchanged(fit, grid):
    train, val, test = clusters(40, 1), clusters(16, 2), clusters(16, 3)
    garbage = Features(torch.randn(16, 3, 24) * 50, test.y[torch.randperm(16)], test.paths)  # random features, shuffled labels
    real, junk = (evaluate_probe(fit, grid, train, val, t, n_classes=4) for t in (test, garbage))
    assert real["chosen"] == junk["chosen"] and real["val_top1"] == junk["val_top1"]
    assert real["top1"] > 0.8 and junk["top1"] < 0.7  # the test data did reach the scoring, and only the scoring
    assert "test" not in " ".join(__import__("inspect").signature(choose_on_validation).parameters)


def test_garbage_test_files_leave_every_choice_unchanged_end_to_end(tmp_path, tiny):
    "The whole pipeline on real files: test clips replaced by other media and test labels shuffled; choices stay put."
    def collection(name, spoil):
        root = tmp_path / name; shutil.copytree(tiny, root)
        rows = list(csv.DictReader(open(root / "labels.csv")))
        if spoil:
            test = [r for r in rows if r["split"] == "test"]
            for r, label in zip(test, [t["label"] for t in test][::-1]): r["label"] = label  # shuffled labels
            trains = [r for r in rows if r["split"] == "train"]
            for r, src in zip(test, trains[::-1]): shutil.copy(root / src["path"], root / r["path"])  # other clips' media
        with open(root / "labels.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
        return root
    kw = dict(FAST, dataset="csv", protocol="knn,svm,linear")
    clean = evaluate(eval_config(data_root=str(collection("clean", False)), **kw), tmp_path / "clean-run")
    spoilt = evaluate(eval_config(data_root=str(collection("spoilt", True)), **kw), tmp_path / "spoilt-run")
    for m in ("video", "audio"):
        for p in ("knn", "svm", "linear"):
            a, b = clean["splits"][0]["results"][m][p], spoilt["splits"][0]["results"][m][p]
            assert (a["chosen"], a["val_top1"]) == (b["chosen"], b["val_top1"]), (m, p)
    assert clean["features"]["video"][0]["cache"] != spoilt["features"]["video"][0]["cache"]  # the test files did change


# Bad parameters ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides,message", [
    (dict(protocol="knn,svmm"), "svmm"),
    (dict(dataset="kinetics400"), "dataset='kinetics400' is unknown"),
    (dict(checkpoint="/nowhere/backbones.pt"), "is not a file"),
    (dict(dataset="esc50", split=6), "split=6 is out of range"),
    (dict(dataset="ucf101", split=4), "split=4 is out of range"),
    (dict(modality="smell"), "modality='smell'"),
    (dict(knn_k="0,5"), "knn_k"),
    (dict(small_classes="keep"), "small_classes='keep'"),
    (dict(dataset="ucf101", allow_outside_root=True), "allow_outside_root=True concerns labels.csv"),
])
def test_bad_parameters_are_refused_before_compute(tmp_path, monkeypatch, overrides, message):
    def boom(*a, **k): raise AssertionError("compute started")
    monkeypatch.setattr(ev, "load_for_evaluation", boom); monkeypatch.setattr(ev, "cached_features", boom)
    cfg = eval_config(**{"data_root": str(tmp_path), **overrides})
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        evaluate(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


# The papermill notebook -------------------------------------------------------------------------------------------------
def papermill(tmp_path, *params):
    args = [str(a) for kv in params for a in ("-p", *kv)]
    return subprocess.run([str(BIN / "papermill"), "nbs/evaluate.ipynb", str(tmp_path / "executed.ipynb"), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def test_evaluate_notebook_runs_under_papermill(tmp_path, tiny):
    out = tmp_path / "run"
    result = papermill(tmp_path, ("preset", "tiny"), ("data_root", tiny), ("out_dir", out), ("svm_c", "0.1,1"), ("knn_k", "1,3"),
                       ("linear_lr", "0.01"), ("linear_wd", "0"), ("linear_epochs", 5))
    assert result.returncode == 0, result.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["config"]["svm_c"] == [0.1, 1.0] and m["config"]["preset"] == "tiny" and m["config"]["clips"] == 2
    assert {"video/svm/top1", "audio/linear/top1", "video->audio/retrieval/recall@1"} <= set(m["summary"])
    assert "audio/linear/top5" not in m["summary"]  # 2 classes: top-5 is 1.0 for any model, so it is not reported
    assert (out / "confusion.png").stat().st_size > 3000 and (out / "results.md").read_text().startswith("| target |")
    executed = json.loads((tmp_path / "executed.ipynb").read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed["cells"])
    text = lambda v: "".join(v) if isinstance(v, list) else v
    shown = "".join(text(o["data"].get("text/markdown", "")) for c in executed["cells"] for o in c.get("outputs", []) if "data" in o)
    assert "| audio | svm | top1 |" in shown  # the table is displayed
    assert any("image/png" in o.get("data", {}) for c in executed["cells"] for o in c.get("outputs", []))  # and the picture


def test_evaluate_notebook_refuses_bad_parameters(tmp_path):
    result = papermill(tmp_path, ("protocol", "knnn"), ("out_dir", tmp_path / "run"))
    assert result.returncode != 0 and "knnn" in result.stderr
    assert not (tmp_path / "run").exists()


# Honest evaluation on small real sets -----------------------------------------------------------------------------------
SMALL = dict(FAST, modality="audio", protocol="knn")


def labels_csv(root, rows, header=("path", "label", "class_name", "split")):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.writer(f); w.writerow(header); w.writerows(rows)
    return root


def sound_rows(root, media_16k, counts: dict) -> list:
    "Copies of the test sound: counts = {(class_name, label, split): files}."
    rows = []
    for (name, label, split), n in counts.items():
        for i in range(n): rows.append([copy(media_16k["wav"], root / name / f"{split}{i}.wav").relative_to(root).as_posix(), label, name, split])
    return rows


def test_labels_csv_paths_stay_inside_the_data_root(tmp_path, media_16k, monkeypatch):
    root = tmp_path / "set"
    rows = sound_rows(root, media_16k, {("dog", 0, "train"): 3, ("cat", 1, "train"): 3, ("dog", 0, "test"): 1, ("cat", 1, "test"): 1})
    outside = copy(media_16k["wav"], tmp_path / "elsewhere" / "x.wav")
    labels_csv(root, rows + [["../elsewhere/x.wav", 1, "cat", "test"], [str(outside), 0, "dog", "test"], ["/etc/passwd", 0, "dog", "test"]])
    def boom(*a, **k): raise AssertionError("compute started")
    with monkeypatch.context() as m:
        m.setattr(ev, "load_for_evaluation", boom)
        with pytest.raises(ValueError, match=r"labels.csv: 3 path\(s\) lead outside .*row 10: '\.\./elsewhere/x.wav'.*allow_outside_root"):
            evaluate(eval_config(dataset="csv", data_root=str(root), **SMALL), tmp_path / "run")
    with pytest.raises(ValueError, match=r"invalid EvalConfig:\n  .*labels.csv: 3 path\(s\) lead outside"):  # as the notebook checks it
        ev.check_eval_config(eval_config(dataset="csv", data_root=str(root)))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        metrics = evaluate(eval_config(dataset="csv", data_root=str(root), allow_outside_root=True, **SMALL), tmp_path / "run2")
    assert metrics["splits"][0]["files"]["test"] == 4  # the two copies outside are scored, as asked
    assert [(Path(p).name, r) for p, _, _, r in metrics["excluded"]] == [("passwd", "audio: unreadable")]
    assert "/etc/passwd" in out.getvalue()


@pytest.mark.parametrize("header,rows,message", [
    (("path", "label", "class_name", "split"), [["a.wav", "0", "dog", "train"], ["b.wav", "zero", "cat", "test"]],
     r"labels.csv, row 3: label 'zero' is not a whole number"),
    (("file", "label", "class_name", "split"), [["a.wav", "0", "dog", "train"]], r"labels.csv, row 1: .*lacks column\(s\) \['path'\]"),
    (("path", "label", "class_name", "split"), [["a.wav", "0", "dog", "train"], ["", "1", "cat", "test"]], r"labels.csv, row 3: the path is empty"),
])
def test_labels_csv_errors_name_the_file_and_the_row(tmp_path, header, rows, message):
    root = labels_csv(tmp_path / "set", rows, header)
    with pytest.raises(ValueError, match=message) as e: load_split("csv", root)
    assert str(root / "labels.csv") in str(e.value)


def test_excluded_files_are_named_and_counts_are_what_is_scored(tmp_path, media_16k):
    "Unreadable and missing files are named with their reason (output and excluded.csv); counts, classes and top-5 follow what is scored."
    root = tmp_path / "set"
    rows = sound_rows(root, media_16k, {("dog", 0, "train"): 3, ("cat", 1, "train"): 3, ("dog", 0, "test"): 2, ("cat", 1, "test"): 1})
    (root / "dog" / "broken.wav").write_text("not a sound")
    rows += [["dog/broken.wav", 0, "dog", "test"], ["cat/gone.wav", 1, "cat", "test"]]
    labels_csv(root, rows)  # labels 0 and 1 only, named in a collection that once had 6 classes: nothing of 2..5 is listed
    rows[0][1:3] = [5, "ghost"]  # ... and one class (label 5) that has one training file
    labels_csv(root, rows)
    out = io.StringIO()
    with contextlib.redirect_stdout(out): metrics = evaluate(eval_config(dataset="csv", data_root=str(root), **SMALL), tmp_path / "run")
    run = metrics["splits"][0]
    printed = out.getvalue()
    assert "broken.wav" in printed and "gone.wav" in printed and "audio: unreadable" in printed, printed
    with open(tmp_path / "run" / "excluded.csv") as f: listed = {Path(r["path"]).name: r["reason"] for r in csv.DictReader(f)}
    assert set(listed) == {"broken.wav", "gone.wav"} and all(r.startswith("audio: ") for r in listed.values()), listed
    assert run["listed"]["test"] == 5 and run["files"]["test"] == run["results"]["audio"]["knn"]["test_files"] == 3
    assert run["n_classes"] == 3 and run["class_names"] == ["dog", "cat", "ghost"]  # classes that have files, not 6
    assert "audio/knn/top5" not in metrics["summary"]  # 3 classes: every top-5 is 1.0
    table = results_table(metrics)
    top1 = table[table.metric == "top1"].iloc[0]
    assert top1.chance == round(1 / 3, 4) and top1.majority == round(1 / 3, 4)  # cat, 3 of 6 training files, is 1 of 3 test files


def test_classes_too_small_for_the_folds_are_left_out_or_refused(tmp_path, media_16k):
    "class_folders' 5 folds need 5 files of a class: a class of 2 is reported and left out of the scored classes, or refused."
    root = tmp_path / "folders"
    for name, n in (("bird", 5), ("frog", 5), ("wolf", 2)):
        for i in range(n): copy(media_16k["wav"], root / name / f"{i}.wav")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        metrics = evaluate(eval_config(dataset="class_folders", data_root=str(root), split=1, **SMALL), tmp_path / "run")
    run = metrics["splits"][0]
    assert run["n_classes"] == 2 and run["class_names"] == ["bird", "frog"] and run["left_out"] == 2
    assert run["left_out_classes"] == ["class 'wolf' has 2 usable file(s), fewer than the 5 the split protocol needs"]
    assert out.getvalue().count("wolf/") == 2 and run["results"]["audio"]["knn"]["chance"]["top1"] == 0.5
    with pytest.raises(ValueError, match=r"1 class\(es\) have fewer than the 5 files the protocol needs: 'wolf' \(2\).*small_classes='drop'"):
        evaluate(eval_config(dataset="class_folders", data_root=str(root), split=1, small_classes="refuse", **SMALL), tmp_path / "refused")


def test_evaluate_notebook_names_the_files_it_leaves_out(tmp_path, media_16k):
    root = tmp_path / "set"
    rows = sound_rows(root, media_16k, {("dog", 0, "train"): 2, ("cat", 1, "train"): 2, ("dog", 0, "test"): 1, ("cat", 1, "test"): 1})
    labels_csv(root, rows + [["cat/gone.wav", 1, "cat", "test"]])
    out = tmp_path / "run"
    result = papermill(tmp_path, ("preset", "tiny"), ("dataset", "csv"), ("data_root", root), ("out_dir", out), ("modality", "audio"),
                       ("protocol", "knn"), ("knn_k", "1"))
    assert result.returncode == 0, result.stderr[-3000:]
    executed = json.loads((tmp_path / "executed.ipynb").read_text())
    text = lambda v: "".join(v) if isinstance(v, list) else v
    shown = "".join(text(o.get("text", "")) + text(o.get("data", {}).get("text/plain", "")) + text(o.get("data", {}).get("text/markdown", ""))
                    for c in executed["cells"] for o in c.get("outputs", []))
    assert "cat/gone.wav" in shown and "audio: unreadable" in shown and "excluded.csv" in shown, shown[-2000:]
    assert "| chance | majority |" in shown  # the table carries the baselines
