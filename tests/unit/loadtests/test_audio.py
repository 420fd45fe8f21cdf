"""The synthetic upload corpus: deterministic, in the formats the phones record, voice-like, cached."""

from __future__ import annotations

import io
import json
import wave

import numpy as np
import pytest
import soundfile as sf

from loadtests import audio

SHORT = audio.ClipSpec("t-vowel", 2.0, 16_000, 1, 150.0, "vowel", 3)


def read(data: bytes):
    with wave.open(io.BytesIO(data)) as w:
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return frames.reshape(-1, w.getnchannels()), w.getframerate()


def test_the_same_spec_always_gives_the_same_bytes():
    assert audio.wav_bytes(SHORT) == audio.wav_bytes(SHORT)


def test_the_corpus_mixes_durations_rates_and_channel_counts_like_phone_recordings():
    assert {s.sample_rate for s in audio.CORPUS} == {16_000, 44_100, 48_000}
    assert {s.channels for s in audio.CORPUS} == {1, 2}
    assert min(s.duration_s for s in audio.CORPUS) == 2.0
    assert max(s.duration_s for s in audio.CORPUS) == 10.0
    assert len({s.name for s in audio.CORPUS}) == len(audio.CORPUS)


@pytest.mark.parametrize("spec", [audio.CORPUS[5], audio.CORPUS[6]], ids=lambda s: s.name)
def test_a_clip_has_its_declared_rate_channels_and_duration(spec):
    samples, rate = read(audio.wav_bytes(spec))
    assert rate == spec.sample_rate
    assert samples.shape == (round(spec.duration_s * spec.sample_rate), spec.channels)


def test_a_vowel_is_pitched_at_its_f0_and_neither_silent_nor_clipped():
    samples, rate = read(audio.wav_bytes(SHORT))
    x = samples[:, 0].astype(np.float64)
    assert 0.05 < np.sqrt(np.mean((x / 32768) ** 2)) < 0.5
    assert np.mean(np.abs(x) >= 32767) < 0.001
    mid = x[rate // 2 : rate // 2 + 4096]  # steady part, past the attack
    ac = np.correlate(mid, mid, "full")[len(mid) - 1 :]
    lo, hi = rate // 400, rate // 60  # pitch search range 60-400 Hz
    f0 = rate / (lo + int(np.argmax(ac[lo:hi])))
    assert f0 == pytest.approx(SHORT.f0_hz, rel=0.06)


def test_speech_clips_have_pauses_where_a_vowel_has_none():
    def quiet_fraction(spec):
        x = read(audio.wav_bytes(spec))[0][:, 0].astype(np.float64)
        frames = x[: len(x) // 320 * 320].reshape(-1, 320)
        return np.mean(np.sqrt(np.mean(frames**2, axis=1)) < 300)

    speech = audio.ClipSpec("t-speech", 3.0, 16_000, 1, 150.0, "speech", 3)
    assert quiet_fraction(speech) > 0.05
    assert quiet_fraction(SHORT) < 0.1


def test_the_right_channel_of_a_stereo_clip_is_a_delayed_quieter_copy():
    spec = audio.ClipSpec("t-stereo", 2.0, 48_000, 2, 150.0, "vowel", 4)
    samples, _ = read(audio.wav_bytes(spec))
    delay = 48_000 // 3000
    left, right = samples[:-delay, 0].astype(float), samples[delay:, 1].astype(float)
    assert np.allclose(right, 0.85 * left, atol=1.0)


def test_the_corpus_is_built_once_then_reused_from_its_folder(tmp_path, monkeypatch):
    folder = tmp_path / "corpus"
    first = audio.ensure_corpus(folder)
    assert [c.path.name for c in first] == [s.filename for s in audio.CORPUS]
    manifest = json.loads((folder / audio.MANIFEST).read_text())
    assert {e["file"] for e in manifest["clips"]} == {s.filename for s in audio.CORPUS}

    def must_not_build(_folder):
        raise AssertionError("a valid cache must be reused, not rebuilt")

    monkeypatch.setattr(audio, "build_corpus", must_not_build)
    assert audio.ensure_corpus(folder) == first


def test_a_built_corpus_is_readable_by_other_users_like_the_images_non_root_one(tmp_path):
    folder = tmp_path / "corpus"
    audio.ensure_corpus(folder)
    assert folder.stat().st_mode & 0o005 == 0o005
    assert all(p.stat().st_mode & 0o004 for p in folder.iterdir())


def test_a_corpus_from_another_generator_version_is_rebuilt(tmp_path):
    folder = tmp_path / "corpus"
    audio.ensure_corpus(folder)
    manifest = json.loads((folder / audio.MANIFEST).read_text())
    manifest["generator_version"] = audio.GENERATOR_VERSION - 1
    (folder / audio.MANIFEST).write_text(json.dumps(manifest))
    (folder / audio.CORPUS[0].filename).write_bytes(b"stale")
    audio.ensure_corpus(folder)
    assert (folder / audio.CORPUS[0].filename).read_bytes() == audio.wav_bytes(audio.CORPUS[0])


@pytest.mark.parametrize("bad", audio.invalid_uploads(audio.wav_bytes(SHORT)), ids=lambda b: b.kind)
def test_every_broken_upload_is_really_undecodable_or_misaddressed(bad):
    if bad.kind == "missing-field":
        assert bad.field != "audio"
        return
    with pytest.raises(sf.LibsndfileError):
        sf.read(io.BytesIO(bad.content))


def test_the_cache_folder_can_be_configured_by_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SPIRA_GATE_CORPUS_DIR", str(tmp_path / "c"))
    assert audio.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("SPIRA_GATE_CORPUS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert (
        audio.default_cache_dir()
        == tmp_path / "xdg" / "spira-loadtests" / f"audio-v{audio.GENERATOR_VERSION}"
    )
