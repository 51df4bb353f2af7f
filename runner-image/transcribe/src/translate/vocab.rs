//! The Marian model's vocabulary (`vocab.json`: piece → id, shared by source and target) and
//! the token ids of its `config.json`.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::TranslateError;

#[derive(Debug, Clone)]
pub struct Vocab {
    to_id: HashMap<String, i64>,
    to_piece: HashMap<i64, String>,
    pub unk: i64,
}

impl Vocab {
    pub fn from_json(text: &str) -> Result<Self, TranslateError> {
        let to_id: HashMap<String, i64> = serde_json::from_str(text)
            .map_err(|e| TranslateError::ModelInvalid(format!("vocab.json: {e}")))?;
        let unk = *to_id
            .get("<unk>")
            .ok_or_else(|| TranslateError::ModelInvalid("vocab.json has no <unk>".into()))?;
        let to_piece = to_id.iter().map(|(p, i)| (*i, p.clone())).collect();
        Ok(Self {
            to_id,
            to_piece,
            unk,
        })
    }

    pub fn id(&self, piece: &str) -> i64 {
        self.to_id.get(piece).copied().unwrap_or(self.unk)
    }

    pub fn piece(&self, id: i64) -> Option<&str> {
        self.to_piece.get(&id).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.to_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.to_id.is_empty()
    }
}

/// The fields of Hugging Face's `config.json` that greedy decoding needs.
#[derive(Debug, Clone, Deserialize)]
pub struct MarianConfig {
    pub decoder_start_token_id: i64,
    pub eos_token_id: i64,
    pub pad_token_id: i64,
    #[serde(default = "default_max_length")]
    pub max_length: usize,
}

fn default_max_length() -> usize {
    512
}

impl MarianConfig {
    pub fn read(path: &Path) -> Result<Self, TranslateError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| TranslateError::ModelMissing(format!("{}: {e}", path.display())))?;
        serde_json::from_str(&text)
            .map_err(|e| TranslateError::ModelInvalid(format!("{}: {e}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocab_maps_both_ways_and_unknown_pieces_to_unk() {
        let v = Vocab::from_json(r#"{"</s>":0,"<unk>":1,"▁le":2,"<pad>":3}"#)
            .map_err(|e| e.to_string());
        let v = v.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((v.id("▁le"), v.id("▁inconnu"), v.unk), (2, 1, 1));
        assert_eq!(v.piece(3), Some("<pad>"));
        assert_eq!(v.piece(9), None);
        assert_eq!(v.len(), 4);
    }

    #[test]
    fn vocab_without_unk_is_rejected() {
        assert!(matches!(
            Vocab::from_json(r#"{"a":0}"#),
            Err(TranslateError::ModelInvalid(_))
        ));
        assert!(matches!(
            Vocab::from_json("[1]"),
            Err(TranslateError::ModelInvalid(_))
        ));
    }

    #[test]
    fn config_reads_hugging_face_fields() {
        let c: MarianConfig = serde_json::from_str(
            r#"{"decoder_start_token_id":59513,"eos_token_id":0,"pad_token_id":59513,"vocab_size":59514,"d_model":512}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (
                c.decoder_start_token_id,
                c.eos_token_id,
                c.pad_token_id,
                c.max_length
            ),
            (59513, 0, 59513, 512)
        );
    }
}
