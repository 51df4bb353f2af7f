"""Unit tests of ct2_to_ggml on tiny synthetic CTranslate2 Whisper models written here.

The writer below follows CTranslate2's serialisation (python/ctranslate2/specs/model_spec.py)
independently of the converter's reader, and the ggml reader follows whisper.cpp's loader, so
a mistake on either side of the converter shows up as a failed round trip.
Run: runner-image/models/test (or pytest runner-image/models with the models venv).
"""

from __future__ import annotations

import base64
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest

import ct2_to_ggml as conv

N_MELS = 4
WIDTH = 32  # a whole q8_0 block per row
HEADS = 2
FFN = 4 * WIDTH
AUDIO_CTX = 6
TEXT_CTX = 5


# ------------------------------------------------------------------ synthetic inputs -------


def gpt2_byte_encoder() -> dict[int, str]:
    """GPT-2's byte -> character table, written out again so the test does not trust the
    converter's own copy (anchored below on values every GPT-2 vocabulary shows)."""
    keep = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(0x100 + extra)
            extra += 1
    assert table[ord(" ")] == "Ġ" and table[ord("\n")] == "Ċ"
    return table


def regular_token_bytes(multilingual: bool) -> list[bytes]:
    """Distinct byte strings for every regular id, with spaces, newlines, non-UTF-8 bytes and,
    as in the real multilingual vocabulary, an empty token at id 50256."""
    count = 50257 if multilingual else 50256
    tokens = [bytes([i]) for i in range(256)]
    tokens += [f" w{i}\n".encode() if i % 3 == 0 else f"t{i}".encode() for i in range(256, count)]
    tokens[300] = b"\xff\xfe"
    if multilingual:
        tokens[50256] = b""
    return tokens


def tiktoken_file(tokens: list[bytes]) -> bytes:
    return b"".join(base64.b64encode(t) + b" " + str(i).encode() + b"\n" for i, t in enumerate(tokens))


def vocabulary(multilingual: bool) -> list[str]:
    enc = gpt2_byte_encoder()
    words = ["".join(enc[b] for b in t) for t in regular_token_bytes(multilingual)]
    n_vocab = 51865 if multilingual else 51864
    words.append("<|endoftext|>")
    words += [f"<|special{i}|>" for i in range(len(words), n_vocab)]
    return words


def mel_npz() -> bytes:
    buf = io.BytesIO()
    filters = np.arange(N_MELS * 201, dtype=np.float32).reshape(N_MELS, 201) / 1000
    np.savez(buf, mel_80=np.zeros((80, 201), np.float32), **{f"mel_{N_MELS}": filters})
    return buf.getvalue()


def assets() -> conv.Assets:
    return conv.Assets(
        mel_filters_npz=mel_npz(),
        tiktoken={
            "gpt2": tiktoken_file(regular_token_bytes(False)),
            "multilingual": tiktoken_file(regular_token_bytes(True)),
        },
    )


def whisper_weights(rng: np.random.Generator, multilingual: bool, layers=(2, 1)) -> dict[str, np.ndarray]:
    """OpenAI-named float32 weights of a tiny Whisper: the ground truth of the round trip."""
    n_vocab = 51865 if multilingual else 51864
    r = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    w = {
        "encoder.positional_embedding": r(AUDIO_CTX, WIDTH),
        "encoder.conv1.weight": r(WIDTH, N_MELS, 3),
        "encoder.conv1.bias": r(WIDTH),
        "encoder.conv2.weight": r(WIDTH, WIDTH, 3),
        "encoder.conv2.bias": r(WIDTH),
        "encoder.ln_post.weight": r(WIDTH),
        "encoder.ln_post.bias": r(WIDTH),
        "decoder.positional_embedding": r(TEXT_CTX, WIDTH),
        "decoder.token_embedding.weight": r(n_vocab, WIDTH),
        "decoder.ln.weight": r(WIDTH),
        "decoder.ln.bias": r(WIDTH),
    }

    def block(prefix: str, cross: bool) -> None:
        attns = ["attn", "cross_attn"] if cross else ["attn"]
        for a in attns:
            for p in ("query", "key", "value", "out"):
                w[f"{prefix}.{a}.{p}.weight"] = r(WIDTH, WIDTH)
                if p != "key":
                    w[f"{prefix}.{a}.{p}.bias"] = r(WIDTH)
            w[f"{prefix}.{a}_ln.weight"] = r(WIDTH)
            w[f"{prefix}.{a}_ln.bias"] = r(WIDTH)
        w[f"{prefix}.mlp.0.weight"], w[f"{prefix}.mlp.0.bias"] = r(FFN, WIDTH), r(FFN)
        w[f"{prefix}.mlp.2.weight"], w[f"{prefix}.mlp.2.bias"] = r(WIDTH, FFN), r(WIDTH)
        w[f"{prefix}.mlp_ln.weight"], w[f"{prefix}.mlp_ln.bias"] = r(WIDTH), r(WIDTH)

    for i in range(layers[0]):
        block(f"encoder.blocks.{i}", cross=False)
    for i in range(layers[1]):
        block(f"decoder.blocks.{i}", cross=True)
    return w


def ct2_variables(w: dict[str, np.ndarray], layers=(2, 1)) -> dict[str, np.ndarray]:
    """The same model laid out the way CTranslate2's Whisper converter stores it."""
    zeros = np.zeros(WIDTH, np.float32)
    v = {
        "encoder/num_heads": np.array(HEADS, np.int16),
        "decoder/num_heads": np.array(HEADS, np.int16),
        "decoder/pre_norm": np.array(1, np.int8),
        "encoder/position_encodings/encodings": w["encoder.positional_embedding"],
        "encoder/conv1/weight": w["encoder.conv1.weight"],
        "encoder/conv1/bias": w["encoder.conv1.bias"],
        "encoder/conv2/weight": w["encoder.conv2.weight"],
        "encoder/conv2/bias": w["encoder.conv2.bias"],
        "encoder/layer_norm/gamma": w["encoder.ln_post.weight"],
        "encoder/layer_norm/beta": w["encoder.ln_post.bias"],
        "decoder/position_encodings/encodings": w["decoder.positional_embedding"],
        "decoder/embeddings/weight": w["decoder.token_embedding.weight"],
        "decoder/layer_norm/gamma": w["decoder.ln.weight"],
        "decoder/layer_norm/beta": w["decoder.ln.bias"],
    }

    def ffn(src: str, dst: str) -> None:
        v[f"{dst}/ffn/linear_0/weight"] = w[f"{src}.mlp.0.weight"]
        v[f"{dst}/ffn/linear_0/bias"] = w[f"{src}.mlp.0.bias"]
        v[f"{dst}/ffn/linear_1/weight"] = w[f"{src}.mlp.2.weight"]
        v[f"{dst}/ffn/linear_1/bias"] = w[f"{src}.mlp.2.bias"]
        v[f"{dst}/ffn/layer_norm/gamma"] = w[f"{src}.mlp_ln.weight"]
        v[f"{dst}/ffn/layer_norm/beta"] = w[f"{src}.mlp_ln.bias"]

    def self_attn(src: str, dst: str) -> None:
        a = f"{src}.attn"
        v[f"{dst}/self_attention/linear_0/weight"] = np.concatenate(
            [w[f"{a}.query.weight"], w[f"{a}.key.weight"], w[f"{a}.value.weight"]])
        v[f"{dst}/self_attention/linear_0/bias"] = np.concatenate(
            [w[f"{a}.query.bias"], zeros, w[f"{a}.value.bias"]])
        v[f"{dst}/self_attention/linear_1/weight"] = w[f"{a}.out.weight"]
        v[f"{dst}/self_attention/linear_1/bias"] = w[f"{a}.out.bias"]
        v[f"{dst}/self_attention/layer_norm/gamma"] = w[f"{a}_ln.weight"]
        v[f"{dst}/self_attention/layer_norm/beta"] = w[f"{a}_ln.bias"]

    for i in range(layers[0]):
        self_attn(f"encoder.blocks.{i}", f"encoder/layer_{i}")
        ffn(f"encoder.blocks.{i}", f"encoder/layer_{i}")
    for i in range(layers[1]):
        src, dst = f"decoder.blocks.{i}", f"decoder/layer_{i}"
        self_attn(src, dst)
        ffn(src, dst)
        c = f"{src}.cross_attn"
        v[f"{dst}/attention/linear_0/weight"] = w[f"{c}.query.weight"]
        v[f"{dst}/attention/linear_0/bias"] = w[f"{c}.query.bias"]
        v[f"{dst}/attention/linear_1/weight"] = np.concatenate([w[f"{c}.key.weight"], w[f"{c}.value.weight"]])
        v[f"{dst}/attention/linear_1/bias"] = np.concatenate([zeros, w[f"{c}.value.bias"]])
        v[f"{dst}/attention/linear_2/weight"] = w[f"{c}.out.weight"]
        v[f"{dst}/attention/linear_2/bias"] = w[f"{c}.out.bias"]
        v[f"{dst}/attention/layer_norm/gamma"] = w[f"{c}_ln.weight"]
        v[f"{dst}/attention/layer_norm/beta"] = w[f"{c}_ln.bias"]
    return v


def quantize(v: dict[str, np.ndarray], mode: str) -> dict[str, np.ndarray]:
    """Applies CTranslate2's quantisation to every '*weight' (what its model_spec.py does)."""
    out = {}
    for name, value in v.items():
        if not name.endswith("weight") or value.dtype != np.float32:
            out[name] = value.astype(np.float16) if value.dtype == np.float32 and mode == "float16" else value
            continue
        if mode == "float16":
            out[name] = value.astype(np.float16)
        elif mode == "int8":
            flat = value.reshape(value.shape[0], -1)
            amax = np.abs(flat).max(axis=1)
            amax[amax == 0] = 127.0
            scale = (127.0 / amax).astype(np.float32)
            out[name] = np.rint(value * scale.reshape((-1,) + (1,) * (value.ndim - 1))).astype(np.int8)
            out[name + "_scale"] = scale
        elif mode == "int16":
            scale = np.float32(2**10 / np.abs(value).max())
            out[name] = np.rint(value * scale).astype(np.int16)
            out[name + "_scale"] = np.array(scale, np.float32)
        elif mode == "bfloat16":
            bits = value.view(np.uint32)
            # Round to nearest even, as a bfloat16 cast does.
            rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
            out[name] = rounded.view(np.dtype("V2"))
        else:
            raise ValueError(mode)
    return out


TYPE_IDS = {"float32": 0, "int8": 1, "int16": 2, "int32": 3, "float16": 4}


def write_ct2(variables: dict[str, np.ndarray], aliases: dict[str, str], version: int = 6) -> bytes:
    """CTranslate2's model.bin serialisation (variables sorted by name, as it writes them)."""
    out = io.BytesIO()

    def string(s: str) -> None:
        out.write(struct.pack("<H", len(s) + 1) + s.encode() + b"\0")

    out.write(struct.pack("<I", version))
    if version >= 2:
        string("WhisperSpec")
        out.write(struct.pack("<I", 3))
    out.write(struct.pack("<I", len(variables)))
    for name in sorted(variables):
        value = variables[name]
        string(name)
        out.write(struct.pack("<B", value.ndim))
        out.write(struct.pack(f"<{value.ndim}I", *value.shape))
        raw = value.tobytes()
        if version >= 4:
            type_id = 5 if value.dtype == np.dtype("V2") else TYPE_IDS[value.dtype.name]
            out.write(struct.pack("<BI", type_id, len(raw)))
        else:
            out.write(struct.pack("<BI", value.dtype.itemsize, value.size))
        out.write(raw)
    if version >= 3:
        out.write(struct.pack("<I", len(aliases)))
        for alias, target in sorted(aliases.items()):
            string(alias)
            string(target)
    return out.getvalue()


def model_dir(tmp_path: Path, multilingual: bool, vocab_format: str = "txt") -> Path:
    d = tmp_path / "ct2"
    d.mkdir(exist_ok=True)
    words = vocabulary(multilingual)
    if vocab_format == "txt":
        (d / "vocabulary.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    elif vocab_format == "json":
        (d / "vocabulary.json").write_text(json.dumps(words), encoding="utf-8")
    else:  # tokenizer.json, as Hugging Face writes it: BPE vocab plus added special tokens
        eot = words.index("<|endoftext|>")
        tok = {
            "model": {"type": "BPE", "vocab": {t: i for i, t in enumerate(words[:eot])}},
            "added_tokens": [{"id": i, "content": t} for i, t in enumerate(words) if i >= eot],
        }
        if multilingual:  # the empty token cannot be a dict key twice: HF leaves its id out
            del tok["model"]["vocab"][""]
        (d / "tokenizer.json").write_text(json.dumps(tok), encoding="utf-8")
    return d


# ------------------------------------------------------------------ ggml reader ------------


def read_ggml(data: bytes) -> dict:
    """Parses a ggml Whisper file the way whisper.cpp's loader does."""
    pos = 0

    def take(fmt: str):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    magic, *hp, ftype = take("12i")
    assert magic == 0x67676D6C
    n_mel, n_fft = take("2i")
    mel = np.frombuffer(data, "<f4", n_mel * n_fft, pos).reshape(n_mel, n_fft)
    pos += 4 * n_mel * n_fft
    (n_tokens,) = take("i")
    tokens = []
    for _ in range(n_tokens):
        (length,) = take("i")
        tokens.append(data[pos : pos + length])
        pos += length
    tensors = {}
    while pos < len(data):
        n_dims, name_len, ttype = take("3i")
        ne = take(f"{n_dims}i")
        name = data[pos : pos + name_len].decode()
        pos += name_len
        count = int(np.prod(ne))
        if ttype == 8:  # q8_0: per 32 weights along a row, an f16 scale then 32 int8
            block = np.dtype([("d", "<f2"), ("qs", "i1", 32)])
            blocks = np.frombuffer(data, block, count // 32, pos)
            values = blocks["qs"].astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
            tensors[name] = (ttype, values.reshape(tuple(reversed(ne))))
            pos += (count // 32) * block.itemsize
            continue
        dtype = {0: "<f4", 1: "<f2"}[ttype]
        tensors[name] = (ttype, np.frombuffer(data, dtype, count, pos).reshape(tuple(reversed(ne))))
        pos += count * np.dtype(dtype).itemsize
    return {"hparams": hp, "ftype": ftype, "mel": mel, "tokens": tokens, "tensors": tensors}


def convert_bytes(
    directory: Path, model_bin: bytes, the_assets: conv.Assets | None = None, weight_type: str = "f16"
) -> bytes:
    out = io.BytesIO()
    conv.convert(directory, the_assets or assets(), out, model_bin, weight_type)
    return out.getvalue()


# ------------------------------------------------------------------ tests ------------------


@pytest.mark.parametrize("multilingual", [False, True])
def test_float32_round_trip_gives_whisper_cpp_layout(tmp_path, multilingual):
    w = whisper_weights(np.random.default_rng(1), multilingual)
    v = ct2_variables(w)
    blob = write_ct2(v, {"decoder/projection/weight": "decoder/embeddings/weight"})
    g = read_ggml(convert_bytes(model_dir(tmp_path, multilingual), blob))

    n_vocab = 51865 if multilingual else 51864
    assert g["hparams"] == [n_vocab, AUDIO_CTX, WIDTH, HEADS, 2, TEXT_CTX, WIDTH, HEADS, 1, N_MELS]
    assert g["ftype"] == 1
    assert np.array_equal(g["mel"], np.arange(N_MELS * 201, dtype=np.float32).reshape(N_MELS, 201) / 1000)
    # The regular tokens as raw bytes, id for id; whisper.cpp adds the special ones itself.
    assert g["tokens"] == regular_token_bytes(multilingual)

    assert set(g["tensors"]) == set(w)
    for name, expected in w.items():
        ttype, got = g["tensors"][name]
        small = expected.ndim < 2 or name.endswith("positional_embedding")
        if name.endswith("conv1.bias") or name.endswith("conv2.bias"):
            assert got.shape == (WIDTH, 1), name
            small = True
        else:
            assert got.shape == expected.shape, name
        assert ttype == (0 if small else 1), name
        want = expected.reshape(got.shape)
        if small:
            assert np.array_equal(got, want), name
        else:
            assert np.array_equal(got, want.astype(np.float16)), name


def test_split_of_fused_projections_keeps_query_key_value_apart(tmp_path):
    w = whisper_weights(np.random.default_rng(2), False)
    g = read_ggml(convert_bytes(model_dir(tmp_path, False), write_ct2(ct2_variables(w), {})))
    t = {k: v[1] for k, v in g["tensors"].items()}
    for block in ("encoder.blocks.1.attn", "decoder.blocks.0.attn", "decoder.blocks.0.cross_attn"):
        for p in ("query", "key", "value"):
            assert np.array_equal(t[f"{block}.{p}.weight"], w[f"{block}.{p}.weight"].astype(np.float16))
        assert not np.array_equal(t[f"{block}.query.weight"], t[f"{block}.key.weight"])


@pytest.mark.parametrize("mode,tolerance", [("float16", 1e-3), ("int8", None), ("int16", None), ("bfloat16", 2**-7)])
def test_quantised_models_are_dequantised_with_their_scales(tmp_path, mode, tolerance):
    w = whisper_weights(np.random.default_rng(3), True)
    v = quantize(ct2_variables(w), mode)
    g = read_ggml(convert_bytes(model_dir(tmp_path, True), write_ct2(v, {})))
    largest = max(np.abs(x).max() for x in w.values())
    for name, expected in w.items():
        got = g["tensors"][name][1].astype(np.float32).reshape(expected.shape)
        rows = np.abs(expected).reshape(expected.shape[0], -1).max(axis=1)
        if mode == "int8" and name.endswith("weight") and expected.ndim >= 2:
            # Half a quantisation step per row, plus f16 rounding of the result.
            bound = (rows / 127 / 2).reshape((-1,) + (1,) * (expected.ndim - 1)) + np.abs(expected) * 1e-3
        elif mode == "int16" and name.endswith("weight") and expected.ndim >= 2:
            # One scale per stored variable: a fused q/k/v shares the largest of the three.
            bound = largest / 2**10 / 2 + np.abs(expected) * 1e-3
        else:
            bound = np.abs(expected) * (tolerance or 1e-3) + 1e-6
        assert np.all(np.abs(got - expected) <= bound), name
    # A truly quantised weight is not bit-identical: guards against reading the int bytes as-is.
    if mode in ("int8", "int16"):
        q = g["tensors"]["encoder.blocks.0.mlp.0.weight"][1].astype(np.float32)
        assert np.abs(q - w["encoder.blocks.0.mlp.0.weight"]).max() > 0


def test_aliased_quantised_weight_uses_its_targets_scale():
    w = np.array([[1.0, -2.0], [0.5, 0.25]], np.float32)
    scale = np.array([127 / 2.0, 127 / 0.5], np.float32)
    model = conv.Ct2Model(6, "WhisperSpec", 3, {
        "decoder/embeddings/weight": np.rint(w * scale[:, None]).astype(np.int8),
        "decoder/embeddings/weight_scale": scale,
    }, {"decoder/projection/weight": "decoder/embeddings/weight"})
    assert np.allclose(model.float32("decoder/projection/weight"), w, atol=0.01)


@pytest.mark.parametrize("vocab_format", ["txt", "json", "tokenizer"])
def test_every_vocabulary_file_format_gives_the_same_tokens(tmp_path, vocab_format):
    v = ct2_variables(whisper_weights(np.random.default_rng(4), True, layers=(1, 1)), layers=(1, 1))
    g = read_ggml(convert_bytes(model_dir(tmp_path, True, vocab_format), write_ct2(v, {})))
    assert g["tokens"] == regular_token_bytes(True)
    assert g["tokens"][50256] == b""


def test_old_binary_versions_are_read(tmp_path):
    v = ct2_variables(whisper_weights(np.random.default_rng(5), False, layers=(1, 1)), layers=(1, 1))
    # Versions < 4 only knew float32/int16/int8, by item size.
    blob = write_ct2({k: (x.astype(np.int16) if x.dtype == np.int8 else x) for k, x in v.items()}, {}, version=3)
    model = conv.read_ct2_model(blob)
    assert model.binary_version == 3 and model.spec == "WhisperSpec"
    assert np.array_equal(model.raw("encoder/conv1/weight"), v["encoder/conv1/weight"])
    read_ggml(convert_bytes(model_dir(tmp_path, False), blob))


def test_conversion_is_deterministic(tmp_path):
    v = ct2_variables(whisper_weights(np.random.default_rng(6), True, layers=(1, 1)), layers=(1, 1))
    blob = write_ct2(v, {})
    d = model_dir(tmp_path, True)
    assert convert_bytes(d, blob) == convert_bytes(d, blob)


def test_truncated_model_names_the_variable_it_stopped_in(tmp_path):
    blob = write_ct2(ct2_variables(whisper_weights(np.random.default_rng(7), False)), {})
    with pytest.raises(conv.ConversionError, match=r"truncated.*variable #\d+ 'decoder/"):
        conv.read_ct2_model(blob[: len(blob) // 2])
    with pytest.raises(conv.ConversionError, match="unexpected bytes"):
        conv.read_ct2_model(blob + b"\0")


def test_nonzero_key_bias_is_refused(tmp_path):
    v = ct2_variables(whisper_weights(np.random.default_rng(8), False, layers=(1, 1)), layers=(1, 1))
    v["encoder/layer_0/self_attention/linear_0/bias"][WIDTH] = 1.0
    with pytest.raises(conv.ConversionError, match="key part"):
        convert_bytes(model_dir(tmp_path, False), write_ct2(v, {}))


def test_vocabulary_that_disagrees_with_openai_tokenizer_is_refused(tmp_path):
    v = ct2_variables(whisper_weights(np.random.default_rng(9), False, layers=(1, 1)), layers=(1, 1))
    d = model_dir(tmp_path, False)
    words = (d / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    words[1000], words[1001] = words[1001], words[1000]
    (d / "vocabulary.txt").write_text("\n".join(words), encoding="utf-8")
    with pytest.raises(conv.ConversionError, match="first difference at id 1000"):
        convert_bytes(d, write_ct2(v, {}))


def test_untied_output_projection_is_refused(tmp_path):
    w = whisper_weights(np.random.default_rng(10), False, layers=(1, 1))
    v = ct2_variables(w, layers=(1, 1))
    v["decoder/projection/weight"] = v["decoder/embeddings/weight"] * 2
    with pytest.raises(conv.ConversionError, match="projection"):
        convert_bytes(model_dir(tmp_path, False), write_ct2(v, {}))


def test_other_ctranslate2_models_are_refused():
    with pytest.raises(conv.ConversionError, match="not a Whisper model"):
        conv.hparams_of(conv.Ct2Model(6, "TransformerSpec", 1, {}))
    with pytest.raises(conv.ConversionError, match="binary version"):
        conv.read_ct2_model(struct.pack("<I", 99))


def write_sdist(sdist: Path) -> None:
    """An openai-whisper sdist holding just the assets the converter reads."""
    import tarfile

    a = assets()
    with tarfile.open(sdist, "w:gz") as tar:
        for name, content in [("mel_filters.npz", a.mel_filters_npz),
                              ("gpt2.tiktoken", a.tiktoken["gpt2"]),
                              ("multilingual.tiktoken", a.tiktoken["multilingual"])]:
            info = tarfile.TarInfo(f"openai_whisper-1/whisper/assets/{name}")
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


def test_cli_writes_atomically_and_reports_errors(tmp_path, capsys):
    v = ct2_variables(whisper_weights(np.random.default_rng(11), False, layers=(1, 1)), layers=(1, 1))
    d = model_dir(tmp_path, False)
    blob = write_ct2(v, {})
    (d / "model.bin.part1").write_bytes(blob[:1000])
    (d / "model.bin.part2").write_bytes(blob[1000:])
    sdist = tmp_path / "openai-whisper.tar.gz"
    write_sdist(sdist)
    out = tmp_path / "ggml.bin"
    parts = [str(d / "model.bin.part1"), str(d / "model.bin.part2")]
    assert conv.main([str(d), str(out), "--assets", str(sdist), "--model-bin", *parts]) == 0
    assert read_ggml(out.read_bytes())["hparams"][0] == 51864

    # Only the first part: a clear error, and no output file left behind.
    out2 = tmp_path / "partial.bin"
    assert conv.main([str(d), str(out2), "--assets", str(sdist), "--model-bin", parts[0]]) == 1
    assert "truncated" in capsys.readouterr().err
    assert not out2.exists() and not (tmp_path / "partial.bin.tmp").exists()


# ------------------------------------------------------------------ q8_0 ---------------------


def test_q8_0_model_quantises_the_matrices_only(tmp_path):
    w = whisper_weights(np.random.default_rng(7), True)
    blob = write_ct2(ct2_variables(w), {"decoder/projection/weight": "decoder/embeddings/weight"})
    g = read_ggml(convert_bytes(model_dir(tmp_path, True), blob, weight_type="q8_0"))
    # ggml's MOSTLY_Q8_0 (7) plus 1000 x the quantisation version (2), as whisper.cpp's quantize.
    assert g["ftype"] == 2007
    assert set(g["tensors"]) == set(w)
    quantised = 0
    for name, expected in w.items():
        ttype, got = g["tensors"][name]
        want = expected.reshape(got.shape)
        if name.endswith(("conv1.weight", "conv2.weight")):
            # whisper.cpp keeps the conv kernels in f16 whatever the weight type.
            assert ttype == 1 and np.array_equal(got, want.astype(np.float16)), name
        elif expected.ndim < 2 or name.endswith("positional_embedding") or name.endswith("bias"):
            assert ttype == 0 and np.array_equal(got, want), name
        else:
            assert ttype == 8, name
            # Within half a quantisation step (max|x| / 127 per block) plus the f16 rounding of
            # the scale, which up to 127 steps multiply (2^-11 relative).
            blocks = want.reshape(-1, 32)
            step = np.abs(blocks).max(axis=1, keepdims=True) / 127
            err = np.abs(got.reshape(-1, 32) - blocks)
            assert np.all(err <= step * (0.5 + 127 / 2048) + 1e-12), name
            assert err.mean() < 0.3 * step.mean(), name
            quantised += 1
    assert quantised == 2 * 4 + 2 * 2 + 1 * (4 + 4 + 2) + 1  # enc attn+mlp, dec attn+cross+mlp, embedding


def test_q8_0_blocks_follow_ggml_reference_arithmetic():
    row = np.zeros(64, dtype=np.float32)
    row[:4] = [1.27, -0.635, 0.005, -0.005]  # d = 0.01: 127, -63.5 -> -64 (away from zero), 0.5 -> 1
    raw = conv.quantize_q8_0(row.reshape(1, 64))
    assert raw.shape == (1, 68) and raw.dtype == np.uint8
    blocks = raw.view(np.dtype([("d", "<f2"), ("qs", "i1", 32)]))[0]
    assert blocks[0]["d"] == np.float16(np.float32(1.27) / np.float32(127))
    assert list(blocks[0]["qs"][:4]) == [127, -64, 1, -1]
    # An all-zero block has scale 0 and zero weights, not NaNs.
    assert blocks[1]["d"] == 0 and not blocks[1]["qs"].any()


def test_q8_0_refuses_rows_that_are_not_whole_blocks():
    with pytest.raises(conv.ConversionError, match="multiple of 32"):
        conv.quantize_q8_0(np.ones((2, 48), dtype=np.float32))


def test_cli_writes_q8_0(tmp_path):
    w = whisper_weights(np.random.default_rng(3), False)
    directory = model_dir(tmp_path, False)
    (directory / "model.bin").write_bytes(
        write_ct2(ct2_variables(w), {"decoder/projection/weight": "decoder/embeddings/weight"})
    )
    sdist = tmp_path / "openai_whisper-0.tar.gz"
    write_sdist(sdist)
    out = tmp_path / "ggml-q8.bin"
    assert conv.main([str(directory), str(out), "--assets", str(sdist), "--type", "q8_0"]) == 0
    assert read_ggml(out.read_bytes())["ftype"] == 2007
