#!/usr/bin/env python3
"""Builds a small Marian-shaped translation model for the tests of esup-transcribe.

No registry ships opus-mt weights, so the tests make a model with the same files, input and
output names and shapes as Hugging Face's ONNX export of Helsinki-NLP/opus-mt-*:
  encoder_model.onnx  input_ids[b,s] int64, attention_mask[b,s] int64 -> last_hidden_state[b,s,d]
  decoder_model.onnx  encoder_attention_mask[b,s], input_ids[b,t], encoder_hidden_states[b,s,d]
                      -> logits[b,t,V]
  source.spm, target.spm (SentencePiece unigram, nmt_nfkc), vocab.json (</s>=0, <unk>=1, ...,
  <pad>=V-1), config.json (decoder_start = pad, as in Marian).
The weights are set by hand so the result is known: the encoder embeds tokens one-hot and the
decoder copies the encoder state of its current position, i.e. "translation" is a copy; and
every decoder step puts a large logit on <pad>, which a correct Marian decoder must never emit
(Marian's bad_words_ids). It also writes expected.json: greedy decoding done here with the
Python onnxruntime on the same files, which the Rust side must reproduce.

Usage: make_test_marian.py OUT_DIR
"""

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import sentencepiece as spm
from onnx import TensorProto, helper, numpy_helper

CORPUS = [
    "Bonjour à tous, bienvenue sur la plateforme vidéo de l'université.",
    "Le cours de mathématiques commence à neuf heures.",
    "Les étudiants doivent lire le premier chapitre avant la séance.",
    "Welcome to the university video platform.",
    "Today we will learn how the operator schedules transcription jobs.",
    "The lecture starts at nine o'clock tomorrow morning.",
]
SENTENCES = [
    "Bonjour à tous.",
    "Le cours commence à neuf heures.",
    "Welcome to the platform, the platform of the university.",
    "Bonjour 🙂 à tous",  # an emoji the vocabulary lacks: <unk>, dropped on output
]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    prefix = out / "spm"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 4),
        model_prefix=str(prefix),
        vocab_size=120,
        model_type="unigram",
        character_coverage=1.0,
        normalization_rule_name="nmt_nfkc",
        hard_vocab_limit=False,
        unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=str(prefix) + ".model")
    shutil.copy(str(prefix) + ".model", out / "source.spm")
    shutil.copy(str(prefix) + ".model", out / "target.spm")

    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not sp.is_unknown(i) and not sp.is_control(i)]
    vocab = {"</s>": 0, "<unk>": 1}
    for p in pieces:
        vocab.setdefault(p, len(vocab))
    pad = len(vocab)
    vocab["<pad>"] = pad
    size = len(vocab)
    (out / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0))
    (out / "config.json").write_text(json.dumps({
        "model_type": "marian", "decoder_start_token_id": pad, "eos_token_id": 0,
        "pad_token_id": pad, "max_length": 64, "vocab_size": size, "d_model": size,
    }))

    f32 = TensorProto.FLOAT
    i64 = TensorProto.INT64
    # Encoder: one-hot embeddings, masked.
    enc = helper.make_graph(
        [
            helper.make_node("Gather", ["embed", "input_ids"], ["emb"]),
            helper.make_node("Unsqueeze", ["attention_mask", "axis2"], ["mask3"]),
            helper.make_node("Cast", ["mask3"], ["maskf"], to=f32),
            helper.make_node("Mul", ["emb", "maskf"], ["last_hidden_state"]),
        ],
        "marian_encoder",
        [helper.make_tensor_value_info("input_ids", i64, ["batch_size", "encoder_sequence_length"]),
         helper.make_tensor_value_info("attention_mask", i64, ["batch_size", "encoder_sequence_length"])],
        [helper.make_tensor_value_info("last_hidden_state", f32, ["batch_size", "encoder_sequence_length", size])],
        [numpy_helper.from_array(np.eye(size, dtype=np.float32), "embed"),
         numpy_helper.from_array(np.array([2], dtype=np.int64), "axis2")],
    )
    # Decoder: logits[t] = 10 * encoder_state[t] + 100 * onehot(pad), masked by the encoder mask.
    lure = np.zeros((size, size), dtype=np.float32)
    lure[:, pad] = 100.0
    dec = helper.make_graph(
        [
            helper.make_node("Shape", ["input_ids"], ["ids_shape"]),
            helper.make_node("Slice", ["ids_shape", "one", "two"], ["t"]),
            helper.make_node("Slice", ["encoder_hidden_states", "zero", "t", "one"], ["states"]),
            helper.make_node("Slice", ["encoder_attention_mask", "zero", "t", "one"], ["mask_t"]),
            helper.make_node("Unsqueeze", ["mask_t", "two"], ["mask3"]),
            helper.make_node("Cast", ["mask3"], ["maskf"], to=f32),
            helper.make_node("Mul", ["states", "maskf"], ["masked"]),
            helper.make_node("Mul", ["masked", "ten"], ["scaled"]),
            helper.make_node("Gather", ["lure", "input_ids"], ["bias"]),
            helper.make_node("Add", ["scaled", "bias"], ["logits"]),
        ],
        "marian_decoder",
        [helper.make_tensor_value_info("encoder_attention_mask", i64, ["batch_size", "encoder_sequence_length"]),
         helper.make_tensor_value_info("input_ids", i64, ["batch_size", "decoder_sequence_length"]),
         helper.make_tensor_value_info("encoder_hidden_states", f32, ["batch_size", "encoder_sequence_length", size])],
        [helper.make_tensor_value_info("logits", f32, ["batch_size", "decoder_sequence_length", size])],
        [numpy_helper.from_array(lure, "lure"),
         numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"),
         numpy_helper.from_array(np.array([1], dtype=np.int64), "one"),
         numpy_helper.from_array(np.array([2], dtype=np.int64), "two"),
         numpy_helper.from_array(np.array(10.0, dtype=np.float32), "ten")],
    )
    for graph, name in ((enc, "encoder_model.onnx"), (dec, "decoder_model.onnx")):
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="esup-transcribe-tests")
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, out / name)

    # Reference greedy decoding with the Python runtime, as MarianTokenizer + generate() do it.
    encoder = ort.InferenceSession(str(out / "encoder_model.onnx"), providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(str(out / "decoder_model.onnx"), providers=["CPUExecutionProvider"])
    inverse = {i: p for p, i in vocab.items()}
    expected = {}
    for text in SENTENCES:
        ids = [vocab.get(p, 1) for p in sp.encode(text, out_type=str)] + [0]
        ids_a = np.array([ids], dtype=np.int64)
        mask = np.ones_like(ids_a)
        (hidden,) = encoder.run(None, {"input_ids": ids_a, "attention_mask": mask})
        generated = [pad]
        while len(generated) <= min(64, 3 * len(ids) + 10):
            (logits,) = decoder.run(None, {"encoder_attention_mask": mask,
                                           "input_ids": np.array([generated], dtype=np.int64),
                                           "encoder_hidden_states": hidden})
            row = logits[0, -1].copy()
            row[pad] = -np.inf
            nxt = int(row.argmax())
            if nxt == 0:
                break
            generated.append(nxt)
        out_pieces = [inverse[i] for i in generated[1:] if i not in (0, 1, pad)]
        expected[text] = {"ids": ids, "translation": sp.decode_pieces(out_pieces)}
    (out / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
