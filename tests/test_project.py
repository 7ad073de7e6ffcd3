"""The project's set-up: nbdev config, command spellings, and the main job run by papermill for real."""
import json, subprocess
from pathlib import Path

import pytest
from conftest import BIN, REPO


def run(*cmd, **kw):
    return subprocess.run([str(c) for c in cmd], cwd=REPO, capture_output=True, text=True, **kw)


def test_config_is_pyproject_only():
    "nbdev 3 reads [tool.nbdev] from pyproject.toml and refuses a settings.ini next to it."
    import tomllib
    cfg = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["nbdev"]
    assert cfg["allowed_cell_metadata_keys"] == ["tags"]
    assert isinstance(cfg["cell_timeout"], int) and cfg["cell_timeout"] > 0
    assert not (REPO / "settings.ini").exists()


@pytest.mark.parametrize("name", ["nbdev_test", "nbdev-test", "nbdev_export", "nbdev_clean"])
def test_command_spellings(name):
    "Both the nbdev 3 hyphen names and the old underscore names work."
    result = run(BIN / name, "--help")
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower()


def test_clean_keeps_papermill_parameters(tmp_path):
    "nbdev-clean strips cell metadata and execution counts but keeps the `parameters` tag papermill needs."
    nb = json.loads((REPO / "nbs" / "pretrain.ipynb").read_text())
    tagged = [i for i, c in enumerate(nb["cells"]) if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1, "pretrain.ipynb must have exactly one parameters cell"
    cell = nb["cells"][tagged[0]]
    cell["metadata"]["collapsed"] = True
    cell["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["noise\n"]}]
    cell["execution_count"] = 7
    dirty = tmp_path / "dirty.ipynb"
    dirty.write_text(json.dumps(nb))
    result = run(BIN / "nbdev-clean", "--fname", dirty)
    assert result.returncode == 0, result.stderr
    cleaned = json.loads(dirty.read_text())["cells"][tagged[0]]
    assert cleaned["metadata"] == {"tags": ["parameters"]}
    assert cleaned["execution_count"] is None


def test_pretrain_notebook_runs_under_papermill(tmp_path):
    "The main job's notebook, run for real by papermill on the embedded data with overridden parameters."
    out = tmp_path / "run"
    result = run(BIN / "papermill", "nbs/pretrain.ipynb", tmp_path / "executed.ipynb",
                 "-p", "max_steps", 3, "-p", "batch_size", 8, "-p", "out_dir", out, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 3 and [r["step"] for r in metrics["step_log"]] == [1, 2, 3]
    assert all(-2 <= r["loss"] <= 2 for r in metrics["step_log"])
    assert metrics["config"]["batch_size"] == 8 and metrics["config"]["dataset"] == "embedded"
    probe = metrics["knn_probe"]
    assert set(probe) == {"k", "pretrained_video", "pretrained_audio", "random_video", "random_audio"}
    assert all(0 <= v <= 1 for k, v in probe.items() if k != "k")
    for picture in ("views.png", "loss.png"): assert (out / picture).stat().st_size > 5000
    assert Path(metrics["backbones"]).is_file() and Path(metrics["checkpoint"]).is_file()
    # papermill injected the overrides after the parameters cell
    executed = json.loads((tmp_path / "executed.ipynb").read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed["cells"])


def test_pretrain_refuses_bad_parameters_before_compute(tmp_path):
    "A bad parameter stops the notebook at once with a message naming it, before any data or training."
    result = run(BIN / "papermill", "nbs/pretrain.ipynb", tmp_path / "executed.ipynb",
                 "-p", "relaxation", "strong", "-p", "out_dir", tmp_path / "run", timeout=300)
    assert result.returncode != 0
    assert "relaxation" in result.stderr and "strong" in result.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()


def _parameters_cells() -> dict:
    "The source of each notebook's `parameters` cell, by notebook name (the notebooks papermill runs)."
    cells = {}
    for path in sorted((REPO / "nbs").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if "parameters" in cell.get("metadata", {}).get("tags", []): cells[path.name] = "".join(cell["source"])
    return cells


@pytest.mark.parametrize("notebook, source", _parameters_cells().items())
def test_papermill_sees_every_parameter(notebook, source):
    "Each name a `parameters` cell assigns is one papermill can set and list (`--help-notebook`): an '=' in its comment hides it."
    import ast
    from papermill.translators import PythonTranslator
    assigned = [t.id for node in ast.parse(source).body if isinstance(node, ast.Assign) for t in node.targets]
    assert assigned, f"{notebook}'s parameters cell assigns nothing"
    seen = [p.name for p in PythonTranslator.inspect({"source": source})]
    assert seen == assigned, f"papermill does not see {sorted(set(assigned) - set(seen))} in {notebook}'s parameters cell"
