"""Unit tests of speech_check's pure parts: normalisation, word error rate, resampling."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

import speech_check as sc


def test_normalise_keeps_accents_and_splits_elisions():
    assert sc.normalise("L'Université, c'est ouverte!  Vidéo-cours.") == [
        "l", "université", "c", "est", "ouverte", "vidéo", "cours"]


@pytest.mark.parametrize("hyp,wer", [
    ("the cat sat on the mat", 0.0),
    ("The cat sat on the mat.", 0.0),
    ("the cat sat on mat", 1 / 6),           # one deletion
    ("the big cat sat on the mat", 1 / 6),   # one insertion
    ("the dog sat on the hat", 2 / 6),       # two substitutions
    ("", 1.0),
])
def test_word_error_rate(hyp, wer):
    assert sc.word_error_rate("the cat sat on the mat", hyp) == pytest.approx(wer)


def test_word_error_rate_can_exceed_one_with_insertions():
    assert sc.word_error_rate("a b", "x y z w") == 2.0


def wav_bytes(samples: np.ndarray, rate: int, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype("<i2").tobytes())
    return buf.getvalue()


def test_resample_keeps_a_tone_and_the_duration():
    rate, seconds, freq = 22050, 1.0, 440.0
    t = np.arange(int(rate * seconds)) / rate
    tone = (10000 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    out = sc.resample_wav(wav_bytes(tone, rate))
    with wave.open(io.BytesIO(out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
        y = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(float)
    assert len(y) == 16000
    peak = np.argmax(np.abs(np.fft.rfft(y)))  # 1 Hz bins over one second
    assert peak == 440
    assert abs(np.sqrt(np.mean(y**2)) - 10000 / np.sqrt(2)) < 100


def test_resample_mixes_stereo_down():
    left = np.full(1600, 1000, np.int16)
    stereo = np.stack([left, -left], axis=1).reshape(-1)
    out = sc.resample_wav(wav_bytes(stereo, 16000, channels=2))
    with wave.open(io.BytesIO(out)) as w:
        y = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert len(y) == 1600 and np.all(y == 0)


def test_resample_rejects_empty_and_8_bit_audio():
    with pytest.raises(ValueError, match="empty"):
        sc.resample_wav(wav_bytes(np.zeros(0, np.int16), 22050))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(1)
        w.setframerate(8000)
        w.writeframes(b"\x80" * 10)
    with pytest.raises(ValueError, match="16-bit"):
        sc.resample_wav(buf.getvalue())
