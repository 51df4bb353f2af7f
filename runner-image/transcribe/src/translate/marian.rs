//! Greedy decoding of a Marian encoder/decoder exported to ONNX the way Hugging Face's exporter
//! (optimum) writes it: `encoder_model.onnx` (input_ids, attention_mask → last_hidden_state)
//! and `decoder_model.onnx` (encoder_attention_mask, input_ids, encoder_hidden_states → logits),
//! with the SentencePiece models `source.spm`/`target.spm` and `vocab.json`.

use std::path::Path;

use ort::session::Session;
use ort::value::Tensor;
use sentencepiece::SentencePieceProcessor;

use super::vocab::{MarianConfig, Vocab};
use super::{TranslateError, runtime};

pub struct MarianTranslator {
    encoder: Session,
    decoder: Session,
    source: SentencePieceProcessor,
    target: SentencePieceProcessor,
    vocab: Vocab,
    config: MarianConfig,
}

const ENCODER_INPUTS: [&str; 2] = ["input_ids", "attention_mask"];
const DECODER_INPUTS: [&str; 3] = [
    "encoder_attention_mask",
    "input_ids",
    "encoder_hidden_states",
];

fn inference(what: &'static str) -> impl Fn(ort::Error) -> TranslateError {
    move |e| TranslateError::Inference(format!("{what}: {e}"))
}

fn session(
    env: &ort::environment::Environment,
    path: &Path,
    threads: usize,
    inputs: &[&str],
) -> Result<Session, TranslateError> {
    if !path.is_file() {
        return Err(TranslateError::ModelMissing(path.display().to_string()));
    }
    let invalid = |e: String| TranslateError::ModelInvalid(format!("{}: {e}", path.display()));
    let session = Session::builder(env)
        .map_err(|e| invalid(e.to_string()))?
        .with_intra_threads(threads.max(1))
        .map_err(|e| invalid(e.to_string()))?
        .commit_from_file(path)
        .map_err(|e| invalid(e.to_string()))?;
    let names: Vec<&str> = session.inputs().iter().map(|o| o.name()).collect();
    if names.len() != inputs.len() || inputs.iter().any(|i| !names.contains(i)) {
        return Err(invalid(format!(
            "inputs are {names:?}, expected {inputs:?} (export without past key values)"
        )));
    }
    Ok(session)
}

fn spm(path: &Path) -> Result<SentencePieceProcessor, TranslateError> {
    if !path.is_file() {
        return Err(TranslateError::ModelMissing(path.display().to_string()));
    }
    SentencePieceProcessor::open(path)
        .map_err(|e| TranslateError::Tokenizer(format!("{}: {e}", path.display())))
}

/// The index of the best logit, never `banned` (Marian's pad token, which is also the decoder
/// start token and must not be generated).
pub fn best_token(logits: &[f32], banned: i64) -> Option<i64> {
    logits
        .iter()
        .enumerate()
        .filter(|(i, v)| *i as i64 != banned && !v.is_nan())
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i as i64)
}

impl MarianTranslator {
    /// Loads `dir` (one opus-mt model exported to ONNX) with ONNX Runtime from `ort_library`.
    pub fn load(dir: &Path, ort_library: &Path, threads: usize) -> Result<Self, TranslateError> {
        if !dir.is_dir() {
            return Err(TranslateError::ModelMissing(dir.display().to_string()));
        }
        let env = runtime::ort_environment(ort_library)?;
        let vocab_path = dir.join("vocab.json");
        let vocab_text = std::fs::read_to_string(&vocab_path)
            .map_err(|e| TranslateError::ModelMissing(format!("{}: {e}", vocab_path.display())))?;
        Ok(Self {
            encoder: session(
                env,
                &dir.join("encoder_model.onnx"),
                threads,
                &ENCODER_INPUTS,
            )?,
            decoder: session(
                env,
                &dir.join("decoder_model.onnx"),
                threads,
                &DECODER_INPUTS,
            )?,
            source: spm(&dir.join("source.spm"))?,
            target: spm(&dir.join("target.spm"))?,
            vocab: Vocab::from_json(&vocab_text)?,
            config: MarianConfig::read(&dir.join("config.json"))?,
        })
    }

    /// Source ids as MarianTokenizer makes them: SentencePiece pieces looked up in vocab.json,
    /// then `</s>`.
    pub fn encode(&self, text: &str) -> Result<Vec<i64>, TranslateError> {
        let pieces = self
            .source
            .encode(text)
            .map_err(|e| TranslateError::Tokenizer(e.to_string()))?;
        let mut ids: Vec<i64> = pieces.iter().map(|p| self.vocab.id(&p.piece)).collect();
        ids.push(self.config.eos_token_id);
        Ok(ids)
    }

    /// Text of generated ids: special tokens dropped, pieces joined by the target model.
    pub fn decode(&self, ids: &[i64]) -> Result<String, TranslateError> {
        let specials = [
            self.config.eos_token_id,
            self.config.pad_token_id,
            self.vocab.unk,
        ];
        let pieces: Vec<&str> = ids
            .iter()
            .filter(|i| !specials.contains(i))
            .filter_map(|i| self.vocab.piece(*i))
            .collect();
        self.target
            .decode_pieces(&pieces)
            .map_err(|e| TranslateError::Tokenizer(e.to_string()))
    }

    /// Greedy translation of one sentence or cue.
    pub fn translate(&mut self, text: &str) -> Result<String, TranslateError> {
        if text.trim().is_empty() {
            return Ok(String::new());
        }
        let ids = self.encode(text)?;
        let n = ids.len();
        let mask = vec![1i64; n];
        let tensor = |shape: Vec<usize>, data: Vec<i64>| {
            Tensor::from_array((shape, data)).map_err(inference("tensor"))
        };
        let encoded = self
            .encoder
            .run(ort::inputs!["input_ids" => tensor(vec![1, n], ids)?, "attention_mask" => tensor(vec![1, n], mask.clone())?])
            .map_err(inference("encoder"))?;
        let (shape, hidden) = encoded["last_hidden_state"]
            .try_extract_tensor::<f32>()
            .map_err(inference("encoder output"))?;
        let hidden_shape: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
        let hidden = hidden.to_vec();
        drop(encoded);

        // Bounded: a model stuck in a loop stops at 3× the source plus a margin.
        let limit = self.config.max_length.min(3 * n + 10);
        let mut out = vec![self.config.decoder_start_token_id];
        while out.len() <= limit {
            let t = out.len();
            let logits = self
                .decoder
                .run(ort::inputs![
                    "encoder_attention_mask" => tensor(vec![1, n], mask.clone())?,
                    "input_ids" => tensor(vec![1, t], out.clone())?,
                    "encoder_hidden_states" => Tensor::from_array((hidden_shape.clone(), hidden.clone())).map_err(inference("tensor"))?
                ])
                .map_err(inference("decoder"))?;
            let (shape, values) = logits["logits"]
                .try_extract_tensor::<f32>()
                .map_err(inference("decoder output"))?;
            let vocab = shape.last().copied().unwrap_or(0) as usize;
            if vocab == 0 || values.len() < t * vocab {
                return Err(TranslateError::ModelInvalid(format!(
                    "decoder logits have shape {:?}",
                    &shape[..]
                )));
            }
            let row = &values[(t - 1) * vocab..t * vocab];
            let next = best_token(row, self.config.pad_token_id).ok_or_else(|| {
                TranslateError::Inference("decoder produced no usable logit".into())
            })?;
            if next == self.config.eos_token_id {
                break;
            }
            out.push(next);
        }
        self.decode(&out[1..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_token_skips_the_banned_token_and_nans() {
        assert_eq!(best_token(&[0.1, 5.0, 0.3], 1), Some(2));
        assert_eq!(best_token(&[0.1, 5.0, f32::NAN], 9), Some(1));
        assert_eq!(best_token(&[f32::NAN], 9), None);
        assert_eq!(best_token(&[], 0), None);
    }
}
