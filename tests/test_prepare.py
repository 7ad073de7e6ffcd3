"""End-to-end checks of `crisscross.prepare` on a small real collection: worker processes, resuming, the command."""
import hashlib, operator, os, signal, subprocess, sys, time
from pathlib import Path

import av
import pytest

import numpy as np

from crisscross.media import probe, read_span
from crisscross.testing import read_stamp, write_test_video
from crisscross.prepare import PrepareSettings, TEMP_SUFFIX, prepare_collection, prepare_file, run_jobs, temp_path, verify_output
from conftest import REPO

VIDEOS = ["train/walk/a.mp4", "train/walk/b.avi", "train/walk/cut.avi", "train/run/c.mp4", "train/run/deeper/d.mp4",
          "train/run/e.webm"]


def snapshot(root: Path) -> dict:
    "Every file under `root` with its hash and modification time."
    return {p.relative_to(root): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def make_collection(root: Path) -> Path:
    "A small tree: H.264+AAC clips, MPEG-4+MP3 AVIs (one cut short), VP9+Opus, a silent clip, a corrupt file, splits."
    write_test_video(root / "train/walk/a.mp4", seconds=3, size=(320, 180), fps=30)
    write_test_video(root / "train/walk/b.avi", seconds=3, size=(320, 240), fps=30)
    cut = write_test_video(root / "cut_source.avi", seconds=3, size=(320, 240), fps=30, seed=1)
    (root / "train/walk/cut.avi").write_bytes(cut.read_bytes()[: cut.stat().st_size * 6 // 10])  # a download that stopped
    cut.unlink()
    write_test_video(root / "train/run/c.mp4", seconds=3, size=(320, 180), fps=30, with_audio=False)
    write_test_video(root / "train/run/deeper/d.mp4", seconds=3, size=(640, 360), fps=30, audio_rate=48000, channels=1)
    write_test_video(root / "train/run/e.webm", seconds=3, size=(192, 144), fps=30, audio_rate=48000,
                     video_codec="libvpx-vp9", audio_codec="libopus")
    whole = (root / "train/walk/a.mp4").read_bytes()
    (root / "train/run/broken.mp4").write_bytes(whole[: len(whole) // 2])  # its index (at the end) is gone
    (root / "splits").mkdir()
    (root / "splits/trainlist01.txt").write_text("walk/a.mp4 1\nrun/c.mp4 2\n")
    (root / "README.md").write_text("not copied")
    return root


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    "The collection, its snapshot, and the report of preparing it with two worker processes."
    root = tmp_path_factory.mktemp("prepare")
    src = make_collection(root / "src")
    before = snapshot(src)
    report = prepare_collection(src, root / "dst", workers=2, progress=False)
    return src, root / "dst", before, report


def stream_facts(path: Path) -> dict:
    "What a decoder finds in `path`: size, frame rate, keyframe positions (from packets), frame count, audio."
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        keys = [i for i, p in enumerate(p for p in c.demux(v) if p.size) if p.is_keyframe]
        c.seek(0)
        frames = sum(1 for _ in c.decode(video=0))
        facts = dict(size=(v.codec_context.width, v.codec_context.height), fps=v.average_rate, keys=keys, frames=frames, audio=None)
        if c.streams.audio:
            a = c.streams.audio[0]
            c.seek(0)
            samples = sum(f.samples for f in c.decode(audio=0))
            facts["audio"] = (a.rate, a.channels, samples / a.rate)
    return facts


def test_report(prepared):
    src, dst, before, report = prepared
    assert [str(p) for p in report.prepared] == sorted(VIDEOS)
    assert [str(p) for p, _ in report.failed] == ["train/run/broken.mp4"]
    assert "InvalidDataError" in report.failed[0][1]
    assert [str(p) for p in report.no_audio] == ["train/run/c.mp4"]
    assert [str(p) for p, _ in report.partial] == ["train/walk/cut.avi"] and "decodable" in report.partial[0][1]
    assert [str(p) for p in report.copied] == ["splits/trainlist01.txt"]
    assert [str(p) for p in report.ignored] == ["README.md"]
    assert "failed 1" in report.summary() and "train/run/broken.mp4" in report.summary()


def test_outputs_mirror_the_tree(prepared):
    src, dst, before, report = prepared
    files = sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file())
    assert files == sorted([str(Path(v).with_suffix(".mp4")) for v in VIDEOS] + ["splits/trainlist01.txt"])
    assert (dst / "splits/trainlist01.txt").read_bytes() == (src / "splits/trainlist01.txt").read_bytes()


@pytest.mark.parametrize("name,size,seconds,audio", [
    ("train/walk/a.mp4", (228, 128), 3.0, True), ("train/walk/b.mp4", (170, 128), 3.0, True),
    ("train/run/c.mp4", (228, 128), 3.0, False), ("train/run/deeper/d.mp4", (228, 128), 3.0, True),
    ("train/run/e.mp4", (170, 128), 3.0, True)])
def test_outputs_decode_as_prepared(prepared, name, size, seconds, audio):
    facts = stream_facts(prepared[1] / name)
    assert facts["size"] == size and facts["fps"] == 16
    assert abs(facts["frames"] - seconds * 16) <= 1  # within a frame: the AVI's timestamps run to 3.033 s
    assert facts["keys"] == list(range(0, facts["frames"], 8))  # a keyframe every 8 frames, none elsewhere
    if audio:
        rate, channels, length = facts["audio"]
        assert (rate, channels) == (16000, 1) and abs(length - seconds) < 0.1
    else:
        assert facts["audio"] is None


def test_cut_source_keeps_its_decodable_part(prepared):
    facts = stream_facts(prepared[1] / "train/walk/cut.mp4")
    assert 1.0 < facts["frames"] / 16 < 2.5 and abs(facts["audio"][2] - facts["frames"] / 16) < 0.25


def test_originals_untouched(prepared):
    src, dst, before, report = prepared
    assert snapshot(src) == before


def test_second_run_skips_everything(prepared):
    src, dst, before, report = prepared
    outputs = snapshot(dst)
    again = prepare_collection(src, dst, workers=2, progress=False)
    assert again.prepared == [] and again.copied == []
    assert sorted(str(p) for p in again.skipped) == sorted(VIDEOS + ["splits/trainlist01.txt"])
    assert [str(p) for p, _ in again.failed] == ["train/run/broken.mp4"]
    assert [str(p) for p in again.no_audio] == ["train/run/c.mp4"]
    assert snapshot(dst) == outputs and snapshot(src) == before


def test_resumes_after_interruption(prepared, tmp_path):
    "What an interrupted run leaves: temp files, an output cut short, outputs missing. The next run repairs exactly that."
    src, dst, before, _ = prepared
    out = tmp_path / "dst"
    prepare_collection(src, out, workers=1, progress=False)
    whole = (out / "train/walk/a.mp4").read_bytes()
    (out / "train/walk/a.mp4").write_bytes(whole[: len(whole) // 2])      # half written under the final name
    (out / "train/run/c.mp4").unlink()                                   # never finished...
    temp_path(out / "train/run/c.mp4").write_bytes(b"\0" * 1000)         # ...its temporary file left behind
    temp_path(out / "train/run/gone.mp4").write_bytes(b"\0" * 1000)      # a temp of a source that no longer exists
    report = prepare_collection(src, out, workers=2, progress=False)
    assert [str(p) for p in report.prepared] == ["train/run/c.mp4", "train/walk/a.mp4"]
    assert len(report.skipped) == len(VIDEOS) - 2 + 1
    assert not [p for p in out.rglob("*") if p.name.endswith(TEMP_SUFFIX)]
    s = PrepareSettings()
    assert verify_output(out / "train/walk/a.mp4", s, True, 3.0, 3.0) is None
    assert verify_output(out / "train/run/c.mp4", s, False, 3.0) is None


def test_resumes_after_kill(tmp_path):
    "Kill the command (and its workers) part way through; a second run finishes the job and every output verifies."
    src = tmp_path / "src"
    names = [f"clip{i}.mp4" for i in range(6)]
    for i, n in enumerate(names): write_test_video(src / n, seconds=2, size=(160, 90), fps=30, seed=i)
    dst = tmp_path / "dst"
    proc = subprocess.Popen([sys.executable, "-m", "crisscross.prepare", str(src), str(dst), "--workers", "1", "--quiet"],
                            cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline and not (dst.exists() and any(p.suffix == ".mp4" and not p.name.startswith(".") for p in dst.iterdir())):
        time.sleep(0.01)
    killed = proc.poll() is None
    if killed: os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in dst.iterdir() if not p.name.startswith("."))
    assert done, "the command did not prepare anything within 30 s"
    report = prepare_collection(src, dst, workers=2, progress=False)
    assert sorted(map(str, report.skipped)) == done and sorted(map(str, report.prepared + report.skipped)) == names
    if killed: assert report.prepared, "killed after the first file, yet nothing was left to do"
    assert sorted(p.name for p in dst.iterdir()) == names
    for n in names: assert verify_output(dst / n, PrepareSettings(), True, 2.0, 2.0) is None


def test_command(prepared, tmp_path):
    src = prepared[0]
    run = lambda *args: subprocess.run([sys.executable, "-m", "crisscross.prepare", *map(str, args)], cwd=REPO, capture_output=True, text=True)
    r = run(src / "train/walk", tmp_path / "walk", "--short-side", "64", "--fps", "8", "--gop", "4", "--workers", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    assert "prepared 3, skipped 0" in r.stdout
    facts = stream_facts(tmp_path / "walk/a.mp4")
    assert facts["size"] == (114, 64) and facts["fps"] == 8 and facts["keys"] == [0, 4, 8, 12, 16, 20]
    r = run(src / "train/run", tmp_path / "run", "--workers", "1", "--quiet")
    assert r.returncode == 1 and "broken.mp4" in r.stdout     # a failed file: status 1
    r = run(src, src / "prepared")
    assert r.returncode == 2 and "inside the source" in r.stderr and not (src / "prepared").exists()


def test_overlapping_folders_refused(prepared):
    src = prepared[0]
    with pytest.raises(ValueError, match="inside the source"): prepare_collection(src, src / "train" / "prepared")
    with pytest.raises(ValueError, match="is the source folder"): prepare_collection(src, src / "." )
    with pytest.raises(ValueError, match="inside the destination"): prepare_collection(src / "train", src)
    assert not (src / "train" / "prepared").exists()


def test_worker_crash_is_pinned_on_its_job():
    "A job whose process dies is reported as that job's failure; the other jobs still give their results."
    jobs = [(abs, -1), (int, "x"), (os._exit, 3), (abs, -2), (abs, -3)]
    results = sorted(run_jobs(operator.call, jobs, workers=2))
    assert [i for i, _, _ in results] == [0, 1, 2, 3, 4]
    assert [r for _, r, _ in results] == [1, None, None, 2, 3]
    assert results[1][2].startswith("ValueError") and "died" in results[2][2]


@pytest.mark.parametrize("turn", [90, 270])
def test_rotated_source_comes_out_upright(tmp_path, turn):
    "A phone video with a display matrix: the copy is upright, carries no rotation, and shows what media shows."
    src = write_test_video(tmp_path / "phone.mp4", seconds=2.0, size=(320, 192), fps=30, rotation=turn)
    out = tmp_path / "copy" / "phone.mp4"
    assert prepare_file(src, out).status == "prepared"
    assert verify_output(out, PrepareSettings(), True, 2.0, 2.0) is None
    info = probe(out)
    assert (info.width, info.height, info.rotation) == (128, 214, 0)
    ours = read_span(out, 0.5, 1.0, info=info).frames.numpy()
    assert [read_stamp(np.rot90(f, -turn // 90)) for f in ours] == [round(1000 * (k * 30 // 16) / 30) / 1000 for k in range(8, 16)]
    theirs = read_span(src, 0.5, 1.0, short_side=128).frames.numpy()      # the source, turned by media while it decodes
    assert np.abs(theirs[:, :213].astype(int) - ours[:, :213]).mean() < 6
