#!/usr/bin/env python3
"""Transcribes espeak-ng speech of known texts with converted ggml models; checks the WER.

Used by runner-image/models/check. Pure parts (text normalisation, word error rate, WAV
resampling) are unit-tested in test_speech_check.py; the rest runs real programs: espeak-ng
and esup-whisper-transcribe (whisper.cpp from whisper-rs-sys).
"""

from __future__ import annotations

import argparse
import io
import json
import re
import subprocess
import sys
import unicodedata
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

WHISPER_RATE = 16000


@dataclass(frozen=True)
class Case:
    model: str  # ggml-<model>.bin
    voice: str  # espeak-ng voice
    speed: int  # espeak-ng words per minute
    text: str
    language: str  # passed to whisper: a code, or "auto"
    max_wer: float  # see docs/models.md for how each bound was set
    expect_language: str | None = None


# espeak-ng's French is hard for Whisper base: these sentences were kept because base
# recognises them well enough to catch a broken model (faster-whisper, running the same
# CTranslate2 weights, gives the same transcripts: see docs/models.md).
ENGLISH = (
    "Welcome to the university video platform. Today we will learn how the operator "
    "schedules transcription jobs on shared graphics cards."
)
FRENCH = (
    "Bonjour à tous. La vidéo de ce cours sera disponible demain matin sur la plateforme. "
    "Le cours de mathématiques commence à neuf heures. Les étudiants doivent lire le premier "
    "chapitre avant la séance."
)

CASES = [
    Case("tiny.en", "en-us", 150, ENGLISH, "en", 0.35),
    Case("base", "en-us", 150, ENGLISH, "en", 0.25),
    Case("base", "fr", 130, FRENCH, "fr", 0.5),
    Case("base", "fr", 130, FRENCH, "auto", 0.5, expect_language="fr"),
    # The q8_0 file the runner loads on CPUs: a broken quantisation gives unrelated text (WER
    # >= 1). French measured 0.455, and 0.636 with ggml's llamafile kernels: the last sentence
    # flips with any change of arithmetic, hence more room than for f16.
    Case("base-q8_0", "en-us", 150, ENGLISH, "en", 0.25),
    Case("base-q8_0", "fr", 130, FRENCH, "fr", 0.7),
]


def normalise(text: str) -> list[str]:
    """Lower-case words without punctuation; accents kept (they matter in French);
    apostrophes and hyphens split words, as in "l'université" -> "l", "université"."""
    text = unicodedata.normalize("NFC", text).lower()
    text = re.sub(r"[’'\-]", " ", text)
    text = re.sub(r"[^\w\s]", " ", text)
    return text.split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    """(substitutions + deletions + insertions) / reference words, by edit distance."""
    ref, hyp = normalise(reference), normalise(hypothesis)
    if not ref:
        return 0.0 if not hyp else 1.0
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        current = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1] / len(ref)


def resample_wav(data: bytes, rate: int = WHISPER_RATE) -> bytes:
    """A PCM 16-bit WAV (any rate, mono or stereo) as mono 16-bit WAV at `rate`.

    Band-limited resampling in the frequency domain: exact for the short clips used here and
    needs nothing beyond numpy (no sox/ffmpeg on a bare machine).
    """
    with wave.open(io.BytesIO(data)) as w:
        if w.getsampwidth() != 2:
            raise ValueError("only 16-bit PCM WAV is supported")
        channels, source_rate = w.getnchannels(), w.getframerate()
        samples = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float64)
    samples = samples.reshape(-1, channels).mean(axis=1)
    n_out = int(round(len(samples) * rate / source_rate))
    if n_out == 0:
        raise ValueError("audio is empty")
    spectrum = np.fft.rfft(samples)
    kept = np.zeros(n_out // 2 + 1, dtype=complex)
    m = min(len(spectrum), len(kept))
    kept[:m] = spectrum[:m]
    out = np.fft.irfft(kept, n_out) * (n_out / len(samples))
    pcm = np.clip(np.round(out), -32768, 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    return buf.getvalue()


def speak(voice: str, speed: int, text: str) -> bytes:
    wav = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
        check=True, capture_output=True,
    ).stdout
    return resample_wav(wav)


def transcribe(binary: Path, model: Path, wav: Path, language: str, threads: int) -> tuple[str, str]:
    """Runs the transcriber; returns (text, detected language)."""
    done = subprocess.run(
        [str(binary), str(model), str(wav), language, str(threads)],
        capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{binary.name} {model.name} failed ({done.returncode}): {done.stderr[-2000:]}")
    found = re.findall(r"^language: (\S+)$", done.stderr, re.M)
    return done.stdout.strip(), (found[-1] if found else "?")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transcriber", type=Path, required=True)
    parser.add_argument("--models", type=Path, required=True, help="directory of ggml-*.bin")
    parser.add_argument("--work", type=Path, required=True, help="directory for the audio")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    results, failures = [], 0
    for i, case in enumerate(CASES):
        wav = args.work / f"{case.voice}-{case.speed}.wav"
        if not wav.exists():
            wav.write_bytes(speak(case.voice, case.speed, case.text))
        text, detected = transcribe(
            args.transcriber, args.models / f"ggml-{case.model}.bin", wav, case.language, args.threads
        )
        wer = word_error_rate(case.text, text)
        ok = wer <= case.max_wer and (case.expect_language in (None, detected))
        failures += not ok
        results.append({**case.__dict__, "transcript": text, "detected": detected, "wer": round(wer, 4), "ok": ok})
        print(
            f"{'ok  ' if ok else 'FAIL'} {case.model:8} {case.voice:6} lang={case.language:4} "
            f"detected={detected:3} WER={wer:.3f} (max {case.max_wer})\n     {text}",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(f"speech check: {len(CASES) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
