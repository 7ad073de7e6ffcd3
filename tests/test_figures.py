"""The figure notebooks (saliency, umap, gallery) run for real by papermill on pretrained runs, and every PNG they
write is read back and looked at: a plausible size, many colours, real contrast, not mostly blank."""
import json, subprocess
from pathlib import Path

import pandas as pd
import pytest

from crisscross.figures import DEMO_TERMS, check_picture, demo_runs
from conftest import BIN, REPO


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    "A tiny pretraining run on a tiny embedded set, shared by the three notebooks (as both sides of the comparisons)."
    return demo_runs(tmp_path_factory.mktemp("runs"), {"run": DEMO_TERMS["with L_async"]})["run"]


def papermill(name: str, out: Path, **params) -> subprocess.CompletedProcess:
    flags = [str(x) for k, v in params.items() for x in ("-p", k, v)]
    return subprocess.run([str(BIN / "papermill"), f"nbs/{name}.ipynb", str(out / f"{name}.ipynb"), *flags, "-p", "out_dir", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)


def looked_at(path: Path) -> dict:
    "Every figure is a real picture, and a big one: these are figures with images or many points in them."
    stats = check_picture(path, min_side=300, min_colours=200, min_std=15.0, max_background=0.93)
    assert stats["width"] <= 4000 and stats["height"] <= 4000, f"{path.name} is {stats['width']}x{stats['height']}: too large to read"
    return stats


def injected(notebook: Path) -> bool:
    return any("injected-parameters" in c["metadata"].get("tags", []) for c in json.loads(notebook.read_text())["cells"])


def test_saliency_notebook(run, tmp_path):
    result = papermill("saliency", tmp_path, checkpoint_a=run, checkpoint_b=run / "backbones.pt", n_clips=2)
    assert result.returncode == 0, result.stderr[-3000:]
    pictures = sorted(tmp_path.glob("saliency-*.png"))
    assert [p.name for p in pictures] == ["saliency-00.png", "saliency-01.png"]
    for p in pictures:
        stats = looked_at(p)
        assert stats["colours"] > 5000, f"{p.name}: {stats['colours']} colours, too few for frames with heat maps over them"
    assert injected(tmp_path / "saliency.ipynb")
    # a backbones.pt next to its run's checkpoints got the heads, so the cross-modal target was used
    assert "target cross_modal" in (tmp_path / "saliency.ipynb").read_text()


def test_umap_notebook(run, tmp_path):
    result = papermill("umap", tmp_path, checkpoint_a=run, checkpoint_b=run / "backbones.pt", label_a="A", label_b="B", n_neighbors=5)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("umap.png", "probe.png"): looked_at(tmp_path / name)
    embedding = pd.read_csv(tmp_path / "umap.csv")
    assert list(embedding.columns) == ["checkpoint", "modality", "label", "class_name", "path", "x", "y"]
    assert len(embedding) == 2 * 2 * 16 and set(embedding["checkpoint"]) == {"A", "B"}       # 2 runs x 2 modalities x 16 clips
    assert embedding.groupby(["checkpoint", "modality"]).size().eq(16).all() and embedding[["x", "y"]].notna().all().all()
    probe = pd.read_csv(tmp_path / "probe.csv")
    assert sorted(probe["epoch"].unique()) == [0, 1, 2] and len(probe) == 2 * 3 * 2
    assert probe["accuracy"].between(0, 1).all()
    a, b = (probe[probe["checkpoint"] == c].set_index(["epoch", "modality"])["accuracy"] for c in "AB")
    assert a.equals(b), "the run's folder and its backbones.pt find the same per-epoch backbones"


def test_gallery_notebook(run, tmp_path):
    result = papermill("gallery", tmp_path, checkpoint=run, n_queries=3, k=4)
    assert result.returncode == 0, result.stderr[-3000:]
    for modality in ("video", "audio"):
        stats = looked_at(tmp_path / f"gallery-{modality}.png")
        assert stats["width"] > stats["height"], "three rows (queries) of five pictures (query + top 4)"
    log = (tmp_path / "gallery.ipynb").read_text()
    assert "video to video: top-4 precision" in log and "audio to audio: top-4 precision" in log

