"""Helpers and fixtures that several test files share: `from conftest import REPO, BIN, quiet, ...` for the helpers;
pytest finds the fixtures by name."""
import contextlib, io, shutil, sys, time
from pathlib import Path

import pytest

from crisscross.testing import write_test_audio, write_test_video

REPO = Path(__file__).resolve().parents[1]  # the repository root
BIN = Path(sys.executable).parent           # the virtual environment's programs (papermill, nbdev_test, ...)


def quiet(fn, *args, **kw):
    "Call `fn` with what it prints swallowed; its result."
    with contextlib.redirect_stdout(io.StringIO()): return fn(*args, **kw)


def quiet_output(fn, *args, **kw):
    "Call `fn` with what it prints captured: (its result, what it printed)."
    with contextlib.redirect_stdout(io.StringIO()) as out: result = fn(*args, **kw)
    return result, out.getvalue()


def copy(src, dst) -> Path:
    "Copy the file `src` to `dst`, making `dst`'s folders; `dst`."
    dst = Path(dst); dst.parent.mkdir(parents=True, exist_ok=True); shutil.copy(src, dst); return dst


def wait_for(predicate, proc, timeout=90.0, what=""):
    "Poll `predicate` until true; AssertionError (with the stderr of `proc`) if `proc` ends first or `timeout` s pass."
    t0 = time.monotonic()
    while not predicate():
        if proc.poll() is not None: raise AssertionError(f"process ended (rc {proc.returncode}) before {what}: {proc.stderr.read()[-3000:]}")
        if time.monotonic() - t0 > timeout: proc.kill(); raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


CHROMIUM_INSTALL = "apt-get install -y --no-install-recommends chromium"


def chromium(needed_for: str) -> str:
    "The Chromium (or Chrome) program; a clear failure naming the install command when there is none."
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name): return found
    pytest.fail(f"{needed_for} headless Chromium, and none is installed. Install it with `{CHROMIUM_INSTALL}` (as root; "
                "`.ci/run` does this on CI), or put another Chromium or Chrome on PATH.")


@pytest.fixture(scope="module")
def one_thread():
    "Tiny tensors: one torch thread is faster, and never waits on a busy second core (use with pytestmark / autouse)."
    import torch
    threads = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _small_avi(folder: Path) -> Path:
    return write_test_video(folder / "a.avi", seconds=2.5, size=(64, 48), fps=16, audio_rate=16000, video_codec="mpeg4", audio_codec="mp3")


@pytest.fixture(scope="module")
def media_16k(tmp_path_factory):
    "A 2.5 s AVI (MPEG-4 + MP3, 64x48, 16 kHz) and a 3 s WAV at 16 kHz, to copy into layouts (writing files is the slow part)."
    d = tmp_path_factory.mktemp("media")
    return {"avi": _small_avi(d), "wav": write_test_audio(d / "a.wav", seconds=3.0, rate=16000)}


@pytest.fixture(scope="module")
def media_44k(tmp_path_factory):
    "The same 2.5 s AVI and a 5 s WAV at 44.1 kHz (resampled on reading), to copy into layouts."
    d = tmp_path_factory.mktemp("media")
    return {"avi": _small_avi(d), "wav": write_test_audio(d / "a.wav", seconds=5.0, rate=44100)}
