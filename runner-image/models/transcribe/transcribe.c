// esup-whisper-transcribe MODEL.bin AUDIO.wav [LANG] [THREADS]
//
// Loads a ggml Whisper model with whisper.cpp and prints the transcript of a 16 kHz mono
// 16-bit PCM WAV file on stdout (one line). LANG is a Whisper language code or "auto" (default
// "en"). ESUP_WHISPER_TIMINGS=1 adds whisper.cpp's stage timings on stderr; ESUP_FLASH_ATTN=0
// turns flash attention off. Exit status: 0 ok, 2 usage, 3 bad audio, 4 model load failure,
// 5 inference failure.
// Deliberately tiny: the runner itself uses whisper-rs; this only checks converted models.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "whisper.h"

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint16_t le16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

// Reads a RIFF/WAVE file that must be PCM, 1 channel, 16 kHz, 16 bits (what check writes).
// Returns the samples as floats in [-1, 1) or NULL with a message on stderr.
static float *read_wav(const char *path, int *n_out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return NULL;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(size > 0 ? (size_t)size : 1);
    if (!buf || size < 12 || fread(buf, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "%s: cannot read file\n", path);
        fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    if (memcmp(buf, "RIFF", 4) != 0 || memcmp(buf + 8, "WAVE", 4) != 0) {
        fprintf(stderr, "%s: not a RIFF/WAVE file\n", path);
        free(buf);
        return NULL;
    }
    int fmt_ok = 0;
    float *pcm = NULL;
    // Walk the chunks: fmt must say PCM/mono/16 kHz/16 bits before data is accepted.
    for (long off = 12; off + 8 <= size;) {
        uint32_t len = le32(buf + off + 4);
        const unsigned char *body = buf + off + 8;
        if (off + 8 + (long)len > size) {
            len = (uint32_t)(size - off - 8);  // tolerate a data chunk length left at 0xFFFFFFFF
        }
        if (memcmp(buf + off, "fmt ", 4) == 0 && len >= 16) {
            fmt_ok = le16(body) == 1 && le16(body + 2) == 1 && le32(body + 4) == WHISPER_SAMPLE_RATE &&
                     le16(body + 14) == 16;
        } else if (memcmp(buf + off, "data", 4) == 0) {
            if (!fmt_ok) {
                break;
            }
            int n = (int)(len / 2);
            pcm = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
            for (int i = 0; pcm && i < n; i++) {
                pcm[i] = (float)(int16_t)le16(body + 2 * i) / 32768.0f;
            }
            *n_out = n;
            break;
        }
        off += 8 + (long)len + (len & 1);
    }
    free(buf);
    if (!pcm) {
        fprintf(stderr, "%s: need PCM 16-bit mono %d Hz audio\n", path, WHISPER_SAMPLE_RATE);
    }
    return pcm;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: %s MODEL.bin AUDIO.wav [LANG|auto] [THREADS]\n", argv[0]);
        return 2;
    }
    const char *lang = argc > 3 ? argv[3] : "en";
    int threads = argc > 4 ? atoi(argv[4]) : 2;

    int n_samples = 0;
    float *pcm = read_wav(argv[2], &n_samples);
    if (!pcm) {
        return 3;
    }

    struct whisper_context_params cparams = whisper_context_default_params();
    cparams.use_gpu = false;
    // ESUP_FLASH_ATTN=0: whisper.cpp's attention without the fused kernel (measurements only).
    const char *fa = getenv("ESUP_FLASH_ATTN");
    if (fa && strcmp(fa, "0") == 0) {
        cparams.flash_attn = false;
    }
    struct whisper_context *ctx = whisper_init_from_file_with_params(argv[1], cparams);
    if (!ctx) {
        fprintf(stderr, "%s: whisper.cpp could not load the model\n", argv[1]);
        free(pcm);
        return 4;
    }

    // Greedy decoding without timestamps and without temperature fallback: deterministic and
    // bounded in time (fallback re-decodes hard audio up to 5 times), what a WER check needs.
    struct whisper_full_params params = whisper_full_default_params(WHISPER_SAMPLING_GREEDY);
    params.temperature_inc = 0.0f;
    params.n_threads = threads > 0 ? threads : 1;
    params.language = lang;
    params.detect_language = false;
    params.no_timestamps = true;
    params.print_progress = false;
    params.print_realtime = false;
    params.print_timestamps = false;

    int rc = whisper_full(ctx, params, pcm, n_samples);
    free(pcm);
    if (rc != 0) {
        fprintf(stderr, "whisper_full failed (%d)\n", rc);
        whisper_free(ctx);
        return 5;
    }
    // ESUP_WHISPER_TIMINGS=1: whisper.cpp's per-stage times (mel, encode, decode) and the CPU
    // features it was built with, on stderr: where a run spends its time (docs/benchmarks.md).
    const char *timings = getenv("ESUP_WHISPER_TIMINGS");
    if (timings && strcmp(timings, "1") == 0) {
        fprintf(stderr, "system_info: %s\n", whisper_print_system_info());
        whisper_print_timings(ctx);
    }
    int lang_id = whisper_full_lang_id(ctx);
    fprintf(stderr, "language: %s\n", lang_id >= 0 ? whisper_lang_str(lang_id) : "?");
    for (int i = 0; i < whisper_full_n_segments(ctx); i++) {
        fputs(whisper_full_get_segment_text(ctx, i), stdout);
    }
    fputc('\n', stdout);
    whisper_free(ctx);
    return 0;
}
