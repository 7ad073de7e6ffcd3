"""Decoding real files of many kinds with crisscross.media: containers, codecs, channel layouts, sample and frame rates,
rotation, odd sizes, odd paths, files without a duration, files made by the ffmpeg program, bad and damaged files."""
import io, pickle, shutil, subprocess
from concurrent.futures import ProcessPoolExecutor

import av
import numpy as np
import pytest
import torch

from crisscross.media import _QUICK_DEMUXERS, MediaError, MediaInfo, Span, _open, probe, read_audio, read_span
from crisscross.testing import audio_marks, read_stamp, write_corrupt_variants, write_test_audio, write_test_video

SECONDS = 4.0
KINDS = {  # name: (suffix, write_test_video arguments)
    "mp4 h264 aac": (".mp4", {}),
    "mov h264 aac": (".mov", {}),
    "mkv h264 aac 5.1 48k": (".mkv", dict(channels=6, audio_rate=48000)),
    "mkv mpeg4 flac mono 22k": (".mkv", dict(video_codec="mpeg4", audio_codec="flac", channels=1, audio_rate=22050)),
    "avi mpeg4 mp3": (".avi", dict(video_codec="mpeg4", audio_codec="libmp3lame")),
    "avi mpeg4 pcm 8k": (".avi", dict(video_codec="mpeg4", audio_codec="pcm_s16le", audio_rate=8000)),
    "webm vp8 vorbis": (".webm", {}),
    "webm vp9 opus 48k": (".webm", dict(video_codec="libvpx-vp9", audio_codec="libopus", audio_rate=48000)),
    "webm vp9 opus 5.1": (".webm", dict(video_codec="libvpx-vp9", audio_codec="libopus", audio_rate=48000, channels=6)),
    "ts h264 aac": (".ts", {}),
    "mp4 aac 8k mono": (".mp4", dict(audio_rate=8000, channels=1)),
    "mp4 aac 16k mono": (".mp4", dict(audio_rate=16000, channels=1)),         # as crisscross.prepare writes it
    "mov pcm 16k mono": (".mov", dict(audio_codec="pcm_s16le", audio_rate=16000, channels=1)),
    "mp4 vfr": (".mp4", dict(vfr=True)),
    "mkv vfr": (".mkv", dict(vfr=True)),
    "mp4 30fps gop30": (".mp4", dict(fps=30, gop=30)),
    "mkv 12fps": (".mkv", dict(fps=12)),
    "mp4 odd 97x65": (".mp4", dict(size=(97, 65))),
    "webm odd 97x65": (".webm", dict(size=(97, 65))),
    "avi odd 97x65": (".avi", dict(size=(97, 65))),
}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("media")
    return {name: write_test_video(d / f"{name.replace(' ', '_')}{suffix}", seconds=SECONDS, **kw)
            for name, (suffix, kw) in KINDS.items()}


def check_span(span: Span, start: float, end: float, fps_src: float):
    "Frames are the last shown at or before each target time, their stamps are their timestamps; sound marks fall on seconds."
    n = round((end - start) * span.fps)
    frames = span.frames
    assert frames.shape[0] == n and frames.dtype == torch.uint8 and frames.shape[-1] == 3
    k = span.rotation // 90
    stamps = np.array([read_stamp(np.rot90(f.numpy(), -k)) for f in frames])
    np.testing.assert_allclose(stamps, span.source_times(start, end, n), atol=1.5e-3)  # stamps are in whole ms
    gap = np.diff(span.frame_times).max() if len(span.frame_times) > 1 else 1 / fps_src
    assert np.all(stamps <= span.times + 1.5e-3), (stamps, span.times)          # never a frame from the future
    assert np.all(span.times - stamps < gap + 1.5e-3), (stamps, span.times)     # never more than one source frame old
    wave = span.audio()
    assert wave.shape == (round((end - start) * 16000),) and wave.dtype == torch.float32 and wave.abs().max() <= 1
    marks = [(start + t, k) for t, k in audio_marks(wave, 16000) if start + t > 0.1]
    seconds = [s for s in range(1, int(SECONDS) + 1) if start + 0.01 < s < end - 0.2]
    assert [round(t) for t, _ in marks] == seconds, (marks, seconds)
    assert all(k == round(t) % 8 for t, k in marks), marks
    errors = [abs(t - round(t)) for t, _ in marks]
    assert max(errors, default=0) < 0.003, marks  # sound in time with the pictures to 3 ms


@pytest.mark.parametrize("name", list(KINDS))
def test_decode_kinds(files, name):
    path, (suffix, kw) = files[name], KINDS[name]
    info = probe(path)
    assert info.has_video and info.has_audio and info.rotation == 0
    assert SECONDS - 0.05 <= info.duration < SECONDS + 0.2, info.duration
    assert (info.width, info.height) == kw.get("size", (96, 64))
    assert info.audio_rate == kw.get("audio_rate", 44100) and info.audio_channels == kw.get("channels", 2)
    assert abs(info.fps - kw.get("fps", 25)) < (1.5 if kw.get("vfr") else 0.01), info.fps
    for start, end in [(0.0, 1.3), (0.7, 2.0), (1.93, 3.23), (2.6, 3.9)]:
        check_span(read_span(path, start, end, info=info), start, end, info.fps)
    # a window reads the same from any span that holds it: the same frames, and the same sound
    a, b = read_span(path, 0.7, 2.0), read_span(path, 0.8, 1.5)
    quick = read_span(path, 0.7, 2.0, info=info)              # with `info`, MP4, MOV and AVI open without probing
    assert torch.equal(quick.frames, a.frames) and torch.equal(quick.audio(), a.audio())
    assert torch.equal(a.video(0.8, 1.5, 11), b.video(0.8, 1.5, 11))
    for wave in (a.audio(0.8, 1.5), read_audio(path, 0.8, 1.5)):
        if suffix in (".mkv", ".webm"):  # millisecond timestamps: the same sound to within a millisecond
            (t1, k1), (t2, k2) = audio_marks(wave, 16000)[0], audio_marks(b.audio(), 16000)[0]
            assert k1 == k2 and abs(t1 - t2) < 1e-3, (t1, t2)
        else: torch.testing.assert_close(wave, b.audio(), atol=2e-3, rtol=0)


def test_sound_at_the_target_rate_is_taken_as_decoded(files):
    "Mono sound at 16 kHz skips the resampler: the samples are the decoder's own (16-bit PCM: divided by 32768)."
    path = files["mov pcm 16k mono"]
    with av.open(str(path)) as c: pcm = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    np.testing.assert_array_equal(read_audio(path, 0.0, 2.0).numpy(), pcm[:32000] / np.float32(32768))
    np.testing.assert_array_equal(read_span(path, 0.5, 1.5, info=probe(path)).audio().numpy(), pcm[8000:24000] / np.float32(32768))


def test_quick_open_keeps_its_demuxer(files):
    "With `info`, an MP4, MOV or AVI file is opened once, by the demuxer its suffix names (FFmpeg 8 calls MP4's 'mp4'), not opened again by guessing."
    for name in ("mp4 h264 aac", "mov h264 aac", "avi mpeg4 mp3"):
        path = str(files[name])
        with _open(path, quick=True) as quick, av.open(path, format=_QUICK_DEMUXERS[path[path.rindex("."):]]) as named:
            assert quick.format.name == named.format.name, (name, quick.format.name, named.format.name)


def test_span_equals_a_plain_decode(files):
    "A span of an MP4 as crisscross.prepare writes it (opened quickly, no decoder opened to probe, the other stream's packets skipped) holds "
    "exactly the frames and samples of a plain decode of the whole file; `clips` stacks what `video` returns."
    path = str(files["mp4 aac 16k mono"])
    with av.open(path) as c: plain = {round(f.time, 4): f.to_ndarray(format="rgb24") for f in c.decode(video=0)}
    with av.open(path) as c: pcm = np.concatenate([f.to_ndarray()[0] for f in c.decode(audio=0)])
    for start, end, lo, hi in [(0.5, 3.5, 1.6, 2.35), (0.0, 2.0, 0.0, 1.0), (2.03, 3.97, 2.5, 3.9)]:
        span = read_span(path, start, end, info=probe(path), video_range=(lo, hi))
        expected = np.stack([plain[round(t, 4)] for t in span.source_times(lo, hi, len(span.times))])
        np.testing.assert_array_equal(span.frames.numpy(), expected)
        i0 = round(start * 16000)
        np.testing.assert_array_equal(span.audio().numpy(), pcm[i0:i0 + round((end - start) * 16000)])
        windows = [(lo, lo + 0.5), (hi - 0.5, hi)]
        assert torch.equal(span.clips(windows, 8), torch.stack([span.video(s, e, 8) for s, e in windows]))


def test_seek_far_from_a_keyframe(tmp_path):
    "A span near the end of a file with one keyframe at 0 s must still come out right (the seek goes back, decoding runs forward)."
    path = write_test_video(tmp_path / "one_keyframe.mp4", seconds=SECONDS, fps=30, gop=300)
    check_span(read_span(path, 2.55, 3.85), 2.55, 3.85, 30)


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm", ".mov"])
@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotation(tmp_path, suffix, rotation):
    path = write_test_video(tmp_path / f"rot{suffix}", seconds=2.0, rotation=rotation)
    info = probe(path)
    assert info.rotation == rotation
    assert (info.width, info.height) == ((64, 96) if rotation % 180 else (96, 64))
    span = read_span(path, 0.5, 1.5, info=info)
    assert span.frames.shape[1:3] == (info.height, info.width)
    check_span_pictures_only(span, 0.5, 1.5)


def check_span_pictures_only(span, start, end):
    n = round((end - start) * span.fps)
    stamps = [read_stamp(np.rot90(f.numpy(), -(span.rotation // 90))) for f in span.frames]
    np.testing.assert_allclose(stamps, span.source_times(start, end, n), atol=1.5e-3)


def test_short_side_and_threads(files):
    path = files["mp4 h264 aac"]
    small = read_span(path, 1.0, 2.0, short_side=32)
    assert small.frames.shape == (16, 32, 48, 3)
    check_span_pictures_only(small, 1.0, 2.0)
    assert read_span(path, 1.0, 2.0, short_side=128).frames.shape == (16, 128, 192, 3)  # enlarging works too
    one, auto = read_span(path, 1.0, 2.0), read_span(path, 1.0, 2.0, threads=0)
    assert torch.equal(one.frames, auto.frames)


def test_non_ascii_paths(tmp_path):
    folder = tmp_path / "données ünï" / "日本語"
    path = write_test_video(folder / "vidéo_日本 (1).mp4", seconds=2.0)
    info = probe(path)
    assert info.path == str(path) and info.has_audio
    check_span(read_span(path, 0.5, 1.5), 0.5, 1.5, 25)
    bad = write_corrupt_variants(folder / "bad ✗", path)
    with pytest.raises(MediaError, match="bad ✗") as e: read_span(bad["empty"], 0, 1)
    assert e.value.reason == "empty"


class _Pipe(io.RawIOBase):
    "A write-only stream that cannot seek: a muxer writing to it cannot go back to fill in the duration."
    def __init__(self): self.data = bytearray()
    def writable(self): return True
    def write(self, b): self.data += bytes(b); return len(b)


def test_file_without_duration(files, tmp_path):
    src = av.open(str(files["mp4 h264 aac"]))
    pipe = _Pipe()
    with av.open(pipe, "w", format="matroska") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is None: continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    src.close()
    path = tmp_path / "streamed.mkv"
    path.write_bytes(bytes(pipe.data))
    with av.open(str(path)) as c: assert c.duration is None and all(s.duration is None for s in c.streams)
    info = probe(path)
    assert SECONDS - 0.05 < info.duration < SECONDS + 0.1, info.duration  # from the last packet's timestamp
    check_span(read_span(path, 2.6, 3.9, info=info), 2.6, 3.9, 25)


@pytest.mark.parametrize("suffix,rate,channels", [(".wav", 44100, 2), (".flac", 48000, 6), (".mp3", 22050, 1),
                                                  (".ogg", 44100, 2), (".m4a", 8000, 1)])
def test_audio_files(tmp_path, suffix, rate, channels):
    path = write_test_audio(tmp_path / f"sound{suffix}", seconds=SECONDS, rate=rate, channels=channels)
    info = probe(path)
    assert not info.has_video and info.has_audio and (info.audio_rate, info.audio_channels) == (rate, channels)
    wave = read_audio(path, 0.6, 3.7, info=info)
    assert wave.shape == (round(3.1 * 16000),)
    marks = [(0.6 + t, k) for t, k in audio_marks(wave, 16000)]
    assert [round(t) for t, _ in marks] == [1, 2, 3] and all(k == round(t) % 8 for t, k in marks), marks
    assert max(abs(t - round(t)) for t, _ in marks) < 0.003, marks
    assert read_audio(path, 3.5, 4.5).shape == (16000,)  # past the end: padded with silence
    with pytest.raises(MediaError) as e: read_span(path, 0, 1)
    assert e.value.reason == "no_video"


# what each bad file gives: probe, and read_span of a span in its second half
BAD = {"empty": ("empty", "empty"), "random": ("unreadable", "unreadable"), "truncated": ("truncated", "truncated"),
       "audio_only": (None, "no_video"), "video_only": (None, "no_audio")}


@pytest.mark.parametrize("name", ["mp4 h264 aac", "mkv h264 aac 5.1 48k", "webm vp8 vorbis", "avi mpeg4 mp3"])
def test_bad_files(files, tmp_path, name):
    bad = write_corrupt_variants(tmp_path / "bad", files[name])
    for kind, path in bad.items():
        probed, decoded = BAD[kind]
        if files[name].suffix == ".avi" and kind == "truncated":
            probed = None  # AVI keeps its index at the end: cut short, it opens as a shorter file
            assert probe(path).duration < SECONDS / 2
        for fn, want in [(probe, probed), (lambda p: read_span(p, 2.5, 3.5), decoded)]:
            try: fn(path); reason = None
            except MediaError as e:
                reason = e.reason
                assert str(path) in str(e) and e.path == str(path)
            assert reason == want, (kind, fn, reason, want)
    assert read_span(bad["video_only"], 1.0, 2.0, need_audio=False).audio_missing


def test_truncated_mp4_with_index_first(tmp_path):
    "A 'fast start' MP4 keeps its index at the front: cut short, it opens, and probe sees its data stop early."
    path = write_test_video(tmp_path / "faststart.mp4", seconds=SECONDS, options={"movflags": "faststart"})
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[:path.stat().st_size // 3])
    with pytest.raises(MediaError, match="its data stops at") as e: probe(cut)
    assert e.value.reason == "truncated"
    info = probe(path)  # with the index of the whole file, as a data set's cache would have it
    with pytest.raises(MediaError) as e: read_span(cut, 2.5, 3.5, info=info)
    assert e.value.reason == "truncated"
    assert read_span(cut, 0.2, 0.7, info=info).frames.shape[0] == 8  # what survived still reads


def test_damaged_files_raise_only_media_errors(files, tmp_path):
    "Bytes overwritten or cut anywhere: every call either works or raises MediaError, never anything else."
    rng = np.random.default_rng(0)
    names = ["mp4 h264 aac", "mkv h264 aac 5.1 48k", "webm vp8 vorbis", "avi mpeg4 mp3"]
    outcomes = set()
    for trial in range(48):
        good = files[names[trial % len(names)]]
        data = bytearray(good.read_bytes())
        if trial % 3 == 0:
            for i in rng.integers(0, len(data), 30): data[i] = rng.integers(256)
        elif trial % 3 == 1:
            i, n = rng.integers(len(data)), rng.integers(1, 4000)
            data[i:i + n] = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        else: data = data[:rng.integers(1, len(data))]
        path = tmp_path / f"damaged{trial}{good.suffix}"
        path.write_bytes(bytes(data))
        start = float(rng.uniform(0, 2.5))
        for fn in (probe, lambda p: read_span(p, start, start + 1.0).frames, lambda p: read_audio(p, start, start + 1.0)):
            try: out = fn(path); outcomes.add("ok")
            except MediaError as e: outcomes.add(e.reason); continue
            if isinstance(out, torch.Tensor): assert out.shape[0] in (16, 16000)
    assert "ok" in outcomes and len(outcomes) > 2, outcomes


def test_media_error_crosses_processes(files, tmp_path):
    "Data loader workers send exceptions to the main process by pickling them."
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with ProcessPoolExecutor(1) as pool:
        with pytest.raises(MediaError) as e: pool.submit(probe, str(empty)).result()
        info = pool.submit(probe, str(files["mp4 h264 aac"])).result()
    assert e.value.reason == "empty" and e.value.path == str(empty) and "0 bytes" in str(e.value)
    assert isinstance(info, MediaInfo) and info == pickle.loads(pickle.dumps(info))


FFMPEG = shutil.which("ffmpeg")


@pytest.mark.skipif(FFMPEG is None, reason="the ffmpeg program is not installed (apt-get install ffmpeg to run this)")
@pytest.mark.parametrize("out_name,args", [
    ("cli.mp4", ["-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac", "-movflags", "+faststart"]),
    ("cli.ts", ["-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac"]),
    ("cli.avi", ["-c:v", "mpeg4", "-q:v", "3", "-c:a", "pcm_s16le"]),
    ("cli.webm", ["-c:v", "libvpx", "-deadline", "realtime", "-b:v", "500k", "-c:a", "libvorbis"]),
])
def test_files_made_by_ffmpeg(files, tmp_path, out_name, args):
    out = tmp_path / out_name
    run = subprocess.run([FFMPEG, "-v", "error", "-y", "-i", str(files["mp4 h264 aac"]), *args, str(out)], capture_output=True, text=True)
    if run.returncode != 0: pytest.skip(f"this ffmpeg cannot write {out_name}: {run.stderr.strip()[-200:]}")
    info = probe(out)
    assert SECONDS - 0.1 < info.duration < SECONDS + 0.2 and info.has_audio
    for start, end in [(0.7, 2.0), (2.6, 3.9)]:
        check_span(read_span(out, start, end, info=info), start, end, info.fps)


@pytest.mark.skipif(FFMPEG is None, reason="the ffmpeg program is not installed (apt-get install ffmpeg to run this)")
@pytest.mark.parametrize("rotation", [90, 270])
def test_rotation_as_ffmpeg_shows_it(files, tmp_path, rotation):
    "Frames come out as the ffmpeg program shows them (it turns rotated videos upright), whoever wrote the rotation."
    made_by_us = write_test_video(tmp_path / "ours.mp4", seconds=1.0, rotation=rotation)
    by_ffmpeg = tmp_path / "tagged.mp4"  # newer ffmpeg programs take -display_rotation, older ones a 'rotate' tag
    src = str(files["mp4 h264 aac"])
    for cmd in ([FFMPEG, "-v", "error", "-y", "-display_rotation", str(rotation), "-i", src, "-c", "copy", str(by_ffmpeg)],
                [FFMPEG, "-v", "error", "-y", "-i", src, "-c", "copy", "-metadata:s:v:0", f"rotate={rotation}", str(by_ffmpeg)]):
        if subprocess.run(cmd, capture_output=True).returncode == 0: break
    for path in (made_by_us, by_ffmpeg):
        info = probe(path)
        if path == by_ffmpeg and info.rotation == 0: pytest.skip("this ffmpeg program writes no rotation")
        raw = subprocess.run([FFMPEG, "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                             capture_output=True, check=True).stdout
        shown = np.frombuffer(raw, np.uint8).reshape(info.height, info.width, 3)  # ffmpeg turns it upright by default
        ours = read_span(path, 0.0, 0.5, info=info).frames[0].numpy()
        assert ours.shape == shown.shape == (96, 64, 3) and np.abs(ours.astype(int) - shown).mean() < 2, path


def write_packets(path, codec: str, samples: int, rate: int = 44100, fmt: str | None = None) -> tuple:
    "Encode `samples` of a 440 Hz tone with PyAV into `path`, nothing else: (path, number of packets written)."
    from fractions import Fraction
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        out.start_encoding()
        cc, tone = stream.codec_context, 0.5 * np.sin(2 * np.pi * 440 * np.arange(samples) / rate)
        kind = cc.format.name.rstrip("p")
        data = (tone * 32767).astype(np.int16) if kind == "s16" else (tone * 2 ** 31).astype(np.int32) if kind == "s32" \
            else tone.astype(np.float32)
        step, packets = cc.frame_size or samples, []
        for s in range(0, samples, step):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[None, s:s + step]), format=cc.format.name, layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, s, Fraction(1, rate)
            packets += stream.encode(frame)
        packets = [p for p in packets + list(stream.encode(None)) if p.size]
        out.mux(packets)
    return path, len(packets)


# complete files of one packet or a few: a FLAC sample shorter than its 4608-sample block, a WAV of one packet, the
# shortest MP3 and AAC (ADTS and M4A) files an encoder makes (its start-up packet plus one)
SHORT = {"flac one packet": ("a.flac", "flac", None), "wav one packet": ("a.wav", "pcm_s16le", None),
         "mp3 one frame": ("a.mp3", "libmp3lame", None), "aac adts one frame": ("a.aac", "aac", "adts"),
         "m4a one frame": ("a.m4a", "aac", None)}


@pytest.mark.parametrize("name", list(SHORT))
def test_short_complete_files_are_not_truncated(tmp_path, name):
    "A complete file of one packet (or a few) is probed and read, not called truncated (the FLAC case failed)."
    file_name, codec, fmt = SHORT[name]
    samples = 1000  # 23 ms at 44.1 kHz: less than one frame of every codec here
    path, n_packets = write_packets(tmp_path / file_name, codec, samples, fmt=fmt)
    assert n_packets <= 3, n_packets
    info = probe(path)
    assert info.has_audio and 0.02 < info.duration < 0.08, info.duration
    for wave in (read_audio(path, 0, info.duration, info=info), read_audio(path, 0, info.duration)):
        assert wave.shape == (round(info.duration * 16000),) and wave.abs().max() > 0.2, (wave.shape, wave.abs().max())


def test_short_flac_as_written_by_write_test_audio(tmp_path):
    "The six 0.05-0.09 s FLAC samples of issue 23: one packet each, complete, and read whole."
    for seconds in (0.01, 0.05, 0.09):
        path = write_test_audio(tmp_path / f"s{seconds}.flac", seconds=seconds, rate=48000, channels=1)
        info = probe(path)
        assert abs(info.duration - seconds) < 1e-3, (seconds, info.duration)
        assert read_audio(path, 0, seconds, info=info).abs().max() > 0.2


@pytest.mark.parametrize("suffix", [".flac", ".wav", ".mp3", ".m4a"])
def test_truncated_audio_files_are_still_caught(tmp_path, suffix):
    "A long audio file cut to 40% of its bytes is `truncated` (the short-file rule does not let cut files through)."
    path = write_test_audio(tmp_path / f"long{suffix}", seconds=SECONDS, channels=1)
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(path.read_bytes()[:int(0.4 * path.stat().st_size)])
    try: info = probe(cut)
    except MediaError as e: assert e.reason == "truncated" and str(cut) in str(e), e
    else:  # formats that state no length in the header (MP3 guesses it from the bit rate) open as a shorter file
        assert info.duration < 0.5 * SECONDS, (suffix, info.duration)
