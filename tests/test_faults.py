"""The fault suite: faults injected into real runs (stop signals, a second run on the same folder, broken caches, the wrong
data, bad values, a booby-trapped checkpoint), each checked against what must happen. At the end it prints one line per
fault: what was injected, the outcome, and the training steps lost (the table in nbs/06_trainer.ipynb)."""
import contextlib, io, json, os, signal, subprocess, sys, time
from pathlib import Path

import pytest
import torch
from torch.utils.data import Dataset

from crisscross import data
from crisscross.data import index_media
from crisscross.media import MediaError
from crisscross.testing import write_test_video
from crisscross.pretrain import build_parser, main
from crisscross.embedded import open_embedded
from crisscross.engine import LOCK_NAME, OutDirBusyError, Preempted
from crisscross.trainer import (EXCLUDED_NAME, ShardedSampler, check_config, config_from_preset, latest_checkpoint,
                                load_checkpoint, lock_out_dir, make_dataset, train)
from conftest import REPO, quiet_output

ROWS = []


def record(fault: str, outcome: str, lost="-"):
    "One line of the fault table (only checks that passed get here)."
    ROWS.append((fault, outcome, str(lost)))


@pytest.fixture(scope="module", autouse=True)
def fault_table(request):
    "Print the table of faults tried once the module's tests have run (shown even when pytest captures output)."
    yield
    width = max((len(f) for f, _, _ in ROWS), default=10)
    lines = ["", f"{'fault injected':{width}}  steps lost  outcome", "-" * (width + 60)]
    lines += [f"{f:{width}}  {lost:>10}  {outcome}" for f, outcome, lost in ROWS]
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext(): print("\n".join(lines), flush=True)


def refused(argv) -> str:
    "Run the command line `argv`, which must stop with exit status 2; returns its error message."
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as e: main(argv)
    assert e.value.code == 2, err.getvalue()
    return err.getvalue()


def same_weights(a_path, b_path) -> bool:
    a, b = load_checkpoint(a_path)["model"], load_checkpoint(b_path)["model"]
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    "The tiny run never stopped: 8 steps (2 epochs of 4)."
    return quiet_output(train, config_from_preset("tiny"), out_dir=tmp_path_factory.mktemp("straight"))[0]


RUN_SCRIPT = """
import os, sys
from pathlib import Path
from crisscross.testing import Slow
from crisscross.trainer import config_from_preset, make_dataset, train

out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
(out / f"pid-{os.environ.get('RANK', '0')}").write_text(str(os.getpid()))
cfg = config_from_preset("tiny", max_steps=int(sys.argv[2]), num_workers=int(sys.argv[3]))
train(cfg, Slow(make_dataset(cfg)), out_dir=out)
"""


def start_run(tmp_path, out, max_steps=0, nprocs=1, workers=0):
    "A tiny run in a subprocess of its own process group (under the launcher when nprocs > 1); returned once rank 0 printed the data banner."
    script = tmp_path / "run.py"; script.write_text(RUN_SCRIPT)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nprocs)] if nprocs > 1 else [sys.executable]
    proc = subprocess.Popen([*launcher, str(script), str(out), str(max_steps), str(workers)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}, start_new_session=True)
    printed = []
    for line in proc.stdout:
        printed.append(line)
        if line.startswith("data set "): return proc, printed
    raise AssertionError(f"the run ended before training (rc {proc.wait()}): {''.join(printed)}{proc.stderr.read()[-3000:]}")


def finish(proc, printed, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    return "".join(printed) + out, err


# Preemption ---------------------------------------------------------------------------------------------------------------
def test_sigterm_checkpoints_the_step_and_resumes_bitwise_and_the_folder_is_locked(tmp_path, straight):
    """SIGTERM to the run's whole process group (as a scheduler sends it: the trainer and its two DataLoader workers) mid-epoch:
    the step ends, one checkpoint, exit 143; a second run meanwhile is refused; resuming equals `straight`."""
    out = tmp_path / "run"
    proc, printed = start_run(tmp_path, out, workers=2)
    with pytest.raises(OutDirBusyError) as busy: quiet_output(train, config_from_preset("tiny"), out_dir=out)
    message = str(busy.value)
    assert "is in use by another run (host" in message and f"pid {proc.pid}" in message and "started 20" in message, message
    record("second run on a live run's out_dir", "refused, naming host, pid and start time; the live run unharmed")
    time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGTERM)
    stdout, stderr = finish(proc, printed)
    assert proc.returncode == 143, stderr[-3000:]
    state = load_checkpoint(latest_checkpoint(out / "checkpoints"))
    step = state["step"]
    assert 0 < step < 8 and f"stopped by SIGTERM after step {step} (checkpoint" in stdout, stdout
    assert len(state["step_log"]["values"]) == step, "the checkpoint holds every step the run finished"
    resumed, _ = quiet_output(train, config_from_preset("tiny"), out_dir=out)
    assert resumed["param_sha256"] == straight["param_sha256"] and same_weights(resumed["checkpoint"], straight["checkpoint"])
    assert [r["loss"] for r in resumed["step_log"]] == [r["loss"] for r in straight["step_log"]]
    record(f"SIGTERM to trainer + 2 loader workers (after step {step} of 8)", "exit 143 with a checkpoint of that step; resume bitwise equal", 0)


class SignalAt(Dataset):
    "The items of `dataset`; fetching item `index` sends `signum` to this process (as a scheduler would)."
    def __init__(self, dataset, index: int, signum: int): self.dataset, self.index, self.signum = dataset, index, signum
    def __len__(self): return len(self.dataset)
    def set_epoch(self, epoch: int): self.dataset.set_epoch(epoch)
    def __getitem__(self, i: int):
        if i == self.index: os.kill(os.getpid(), self.signum)
        return self.dataset[i]


def test_sigusr1_in_process_stops_after_the_step_and_resumes_bitwise(tmp_path, straight):
    cfg = config_from_preset("tiny")
    step2 = [i for i in ShardedSampler(cfg.random_clips, cfg.batch_size, seed=cfg.seed).epoch_indices()[8:16] if i != 0]
    with pytest.raises(Preempted) as stopped:
        quiet_output(train, cfg, SignalAt(make_dataset(cfg), step2[0], signal.SIGUSR1), out_dir=tmp_path)
    assert (stopped.value.code, stopped.value.step, Path(stopped.value.checkpoint).name) == (138, 2, "ckpt-00000002.pt")
    assert signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL, "the handler is removed when training ends"
    resumed, _ = quiet_output(train, cfg, out_dir=tmp_path)
    assert resumed["param_sha256"] == straight["param_sha256"] and same_weights(resumed["checkpoint"], straight["checkpoint"])
    record("SIGUSR1 during step 2 (in-process)", "Preempted (exit 138) after step 2 with its checkpoint; resume bitwise equal", 0)


def test_signal_while_the_data_set_is_built_stops_before_the_first_step(tmp_path):
    def build_then_signal(cfg):
        os.kill(os.getpid(), signal.SIGTERM)
        return make_dataset(cfg)
    with pytest.raises(Preempted) as stopped: quiet_output(train, config_from_preset("tiny"), out_dir=tmp_path, dataset_factory=build_then_signal)
    assert (stopped.value.code, stopped.value.step, stopped.value.checkpoint) == (143, 0, None)
    assert not list((tmp_path / "checkpoints").iterdir())
    record("SIGTERM while the data set is built", "Preempted (exit 143) before the first step; nothing to save", 0)


@pytest.fixture(scope="module")
def notebook_ddp(tmp_path_factory):
    "nbs/pretrain.ipynb run by papermill with nprocs=2 on the tiny preset (4 steps), the virtual environment not on PATH."
    work = tmp_path_factory.mktemp("notebook")
    env = {**os.environ, "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    papermill = Path(sys.executable).parent / "papermill"
    r = subprocess.run([str(papermill), str(REPO / "nbs" / "pretrain.ipynb"), str(work / "pretrain.ipynb"), "--cwd", str(work),
                        "-p", "preset", "tiny", "-p", "nprocs", "2", "-p", "epochs", "0", "-p", "max_steps", "4",
                        "-p", "out_dir", str(work / "run")], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads((work / "run" / "metrics.json").read_text())


def test_notebook_launches_two_processes(notebook_ddp):
    "The notebook's nprocs > 1 path: the launcher through this interpreter, the config as --preset and flags, two gloo ranks."
    m = notebook_ddp
    assert m["world_size"] == 2 and m["steps"] == 4 and m["replicas_identical"]
    assert tuple(m["config"]["terms"]) == ("intra", "sync", "async") and m["config"]["max_steps"] == 4 and m["config"]["resume"] is False
    record("pretrain.ipynb with nprocs=2, venv not on PATH", "2 gloo ranks trained 4 steps, identical replicas")


def test_sigterm_to_one_ddp_rank_stops_both_at_the_same_step(tmp_path, notebook_ddp):
    "SIGTERM to rank 1 only: both ranks stop after the same step, rank 0 writes the checkpoint; resuming equals the notebook run."
    out = tmp_path / "ddp"
    proc, printed = start_run(tmp_path, out, max_steps=4, nprocs=2)
    time.sleep(0.2)
    os.kill(int((out / "pid-1").read_text()), signal.SIGTERM)
    stdout, stderr = finish(proc, printed)
    # the first rank to exit (status 143) makes the launcher end the other with SIGTERM and itself exit 1
    assert proc.returncode == 1, stdout + stderr[-6000:]
    state = load_checkpoint(latest_checkpoint(out / "checkpoints"))
    step = state["step"]
    assert f"stopped by SIGTERM after step {step} (checkpoint" in stdout and state["world_size"] == 2 and len(state["rng"]) == 2, stdout + stderr[-6000:]
    assert step < 4, "stopped before the end"
    script = tmp_path / "run.py"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(out), "4", "0"],
                       capture_output=True, text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    resumed = json.loads((out / "metrics.json").read_text())
    assert resumed["replicas_identical"] and resumed["param_sha256"] == notebook_ddp["param_sha256"]
    record(f"SIGTERM to DDP rank 1 only (after step {step} of 4)", "both ranks stop after that step, one checkpoint; resume bitwise equal", 0)


def test_sigkill_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom crisscross.trainer import lock_out_dir\n"
                               "with lock_out_dir(sys.argv[1]):\n    print('locked', flush=True); time.sleep(120)", str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    with pytest.raises(OutDirBusyError, match=f"pid {holder.pid}"): lock_out_dir(tmp_path).__enter__()
    holder.kill(); holder.wait()
    with lock_out_dir(tmp_path): assert (tmp_path / LOCK_NAME).is_file()
    record("SIGKILL of the run holding an out_dir", "the kernel released the lock: the next run starts")


# The data set is what was asked for ------------------------------------------------------------------------------------------
def test_paper_preset_without_a_dataset_is_refused(tmp_path):
    message = refused(["--preset", "paper", "--out-dir", str(tmp_path / "run"), "--dry-run"])
    assert "no data set chosen: pass --dataset NAME" in message
    assert not (tmp_path / "run").exists()
    record("--preset paper without --dataset", "refused before compute, naming --dataset")


def test_missing_or_wrong_data_root_is_an_error(tmp_path):
    typo = tmp_path / "typo"
    cfg = config_from_preset("tiny", dataset="embedded", audio_seconds=0.25, data_root=str(typo))
    with pytest.raises(ValueError, match="data_root=.*typo' does not exist"): check_config(cfg)
    with pytest.raises(ValueError, match="does not exist: check the path"): open_embedded(typo)
    assert not typo.exists(), "nothing generated at a mistyped path"
    (tmp_path / "file.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match="is a file: the embedded data set is a folder"): open_embedded(tmp_path / "file.mp4")
    with pytest.raises(ValueError, match="file.mp4' is a file: data_root names the folder"):
        check_config(config_from_preset("tiny", dataset="embedded", audio_seconds=0.25, data_root=str(tmp_path / "file.mp4")))
    with pytest.raises(ValueError) as e: open_embedded(tmp_path)   # a folder of videos, not an embedded set
    assert "dataset='folder' (--dataset folder" in str(e.value) and "'csv'" not in str(e.value)
    record("mistyped data_root for the embedded set", "refused before compute; nothing generated there")
    record("a file, or a video folder, as the embedded set's data_root", "named as such; --dataset folder suggested")


@pytest.fixture(scope="module")
def folder_set(tmp_path_factory):
    "Two good clips, an empty file, a text file and a clip too short for the tiny preset's windows."
    root = tmp_path_factory.mktemp("videos")
    for name in ("a.mp4", "b.mp4"): write_test_video(root / name, seconds=1.0, size=(32, 24), fps=16, audio_rate=16000)
    write_test_video(root / "short.mp4", seconds=0.3, size=(32, 24), fps=16, audio_rate=16000)
    (root / "empty.mp4").write_bytes(b""); (root / "text.mp4").write_text("not a video")
    return root


def test_training_names_the_data_set_and_every_file_left_out(tmp_path, folder_set):
    cfg = config_from_preset("tiny", dataset="folder", data_root=str(folder_set), audio_seconds=0.25, max_steps=1)
    metrics, printed = quiet_output(train, cfg, out_dir=tmp_path)
    assert metrics["steps"] == 1
    assert f"data set 'folder' at {folder_set}: 2 usable files, 3 excluded, 10 clips" in printed, printed
    assert "files left out (the first 20; all 3 in" in printed
    for name in ("empty.mp4", "text.mp4", "short.mp4"): assert f"{folder_set / name}: " in printed
    listed = (tmp_path / EXCLUDED_NAME).read_text().splitlines()
    assert listed[0] == "path,reason" and sorted(Path(l.split(",")[0]).name for l in listed[1:]) == ["empty.mp4", "short.mp4", "text.mp4"]
    assert (tmp_path / EXCLUDED_NAME).parent == Path(metrics["backbones"]).parent, "next to metrics.json"
    record("3 bad files among 5 (empty, text, too short)", "banner names data set, root, 2 usable / 3 excluded; all named")


def test_strict_stops_at_the_first_bad_file(folder_set):
    assert build_parser().parse_args(["--strict"]).strict is True
    cfg = config_from_preset("tiny", dataset="folder", data_root=str(folder_set), audio_seconds=0.25, strict=True)
    with pytest.raises((MediaError, ValueError), match=str(folder_set)): make_dataset(cfg)
    record("the same files with --strict", "stops at the first bad file, naming it")


# A damaged index cache is rebuilt ---------------------------------------------------------------------------------------------
def _valid_cache(cache: Path) -> dict: return json.loads(cache.read_text())

CORRUPT = {
    "null": lambda good: b"null",
    "an empty list": lambda good: b"[]",
    "a list for files": lambda good: json.dumps({"version": data.INDEX_VERSION, "files": []}).encode(),
    "an entry without stamp": lambda good: json.dumps({**good, "files": {k: {f: v for f, v in e.items() if f != "stamp"}
                                                                        for k, e in good["files"].items()}}).encode(),
    "an unknown field": lambda good: json.dumps({**good, "files": {k: {**e, "info": {**e["info"], "colour": "red"}}
                                                                  for k, e in good["files"].items()}}).encode(),
    "binary bytes": lambda good: bytes(range(256)),
}

@pytest.mark.parametrize("kind", list(CORRUPT))
def test_corrupt_index_cache_is_rebuilt_with_a_warning(tmp_path, folder_set, kind):
    clip = tmp_path / "a.mp4"; clip.write_bytes((folder_set / "a.mp4").read_bytes())
    first = index_media([clip], progress=False)
    cache = Path(first.cache)
    cache.write_bytes(CORRUPT[kind](_valid_cache(cache)))
    with pytest.warns(UserWarning, match=f"index cache {cache} is .*: rebuilding it"): again = index_media([clip], progress=False)
    assert again.probed == 1 and str(clip) in again.infos
    assert _valid_cache(cache)["files"]["a.mp4"]["stamp"], "the cache was rewritten whole"
    record(f"index cache holding {kind}", "rebuilt, with a warning naming the cache file")


# Values refused before compute -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, message", [
    (["--lr", "inf"], "lr=inf must be a finite number"),
    (["--fps", "nan"], "fps=nan must be a finite number"),
    (["--dataset", "embedded"], "frames / fps = 4 / 16 = 0.25 s of video must fit in the audio window (audio_seconds=0.2)"),
])
def test_bad_values_are_refused_before_compute(argv, message):
    assert message in refused(["--preset", "tiny", *argv, "--dry-run"])
    record(f"tiny preset with {' '.join(argv)} (--dry-run)", "refused: " + message.split(":")[0].split(" must")[0])


def test_impossible_out_dir_is_refused_before_the_data_set_is_built(tmp_path):
    (tmp_path / "file").write_text("")
    def never(cfg): raise AssertionError("built the data set before checking out_dir")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        train(config_from_preset("tiny"), out_dir=tmp_path / "file" / "run", dataset_factory=never)
    assert "is a file, not a folder" in refused(["--preset", "tiny", "--out-dir", str(tmp_path / "file" / "run"), "--dry-run"])
    record("out_dir under a regular file", "refused before the data set is built")


def test_checkpoint_holding_code_is_not_loaded(tmp_path):
    "A checkpoint whose unpickling would run code: refused at resume, saying so, without torch's weights_only advice."
    class Payload:
        def __reduce__(self): return (open, (str(tmp_path / "ran"), "w"))
    (tmp_path / "checkpoints").mkdir()
    torch.save({"step": 1, "model": Payload()}, tmp_path / "checkpoints" / "ckpt-00000001.pt")
    with pytest.raises(RuntimeError) as e: quiet_output(train, config_from_preset("tiny"), out_dir=tmp_path)
    assert "holds code objects (io.open)" in str(e.value) and "will not be loaded" in str(e.value)
    assert "weights_only" not in str(e.value) and not (tmp_path / "ran").exists()
    record("resume from a checkpoint that would run code", "refused, naming the code object; nothing ran")
