//! Tokenizers: a user's `tokenizer.json`, or the GPT-2 / BERT / T5 tokenizers built into the binary (rebuilt from
//! registry packages by `scripts/build_tokenizers.py`; provenance in `assets/tokenizers/PROVENANCE.md`), so e3pipe
//! runs from any directory with no hub access.

use std::path::Path;

use tokenizers::Tokenizer;

use e3pipe::error::{Error, Result};
use e3pipe::models::config::BuiltinTokenizer;

const GPT2_JSON: &[u8] = include_bytes!("../../../assets/tokenizers/gpt2/tokenizer.json");
const BERT_JSON: &[u8] = include_bytes!("../../../assets/tokenizers/bert/tokenizer.json");
const T5_JSON: &[u8] = include_bytes!("../../../assets/tokenizers/t5/tokenizer.json");

/// A built-in tokenizer (chosen by model type, see `BuiltinTokenizer`), and its name for results.
pub fn builtin(which: BuiltinTokenizer) -> Result<(Tokenizer, &'static str)> {
    let (bytes, name) = match which {
        BuiltinTokenizer::Gpt2 => (GPT2_JSON, "builtin:gpt2"),
        BuiltinTokenizer::Bert => (BERT_JSON, "builtin:bert-base-uncased"),
        BuiltinTokenizer::T5 => (T5_JSON, "builtin:t5"),
    };
    let tokenizer = Tokenizer::from_bytes(bytes).map_err(|e| Error::Tokenizer {
        path: name.into(),
        message: e.to_string(),
    })?;
    Ok((without_length_limits(tokenizer), name))
}

/// A `tokenizer.json` file; padding and truncation are switched off so inputs keep exactly the length we build.
pub fn from_file(path: &Path) -> Result<Tokenizer> {
    if !path.is_file() {
        return Err(Error::Tokenizer {
            path: path.into(),
            message: "file does not exist".into(),
        });
    }
    let tokenizer = Tokenizer::from_file(path).map_err(|e| Error::Tokenizer {
        path: path.into(),
        message: e.to_string(),
    })?;
    Ok(without_length_limits(tokenizer))
}

fn without_length_limits(mut tokenizer: Tokenizer) -> Tokenizer {
    tokenizer.with_padding(None);
    // Only fails for an invalid truncation config; `None` is always valid.
    let _ = tokenizer.with_truncation(None);
    tokenizer
}

/// Token ids of `text`, with or without the special tokens the model expects.
pub fn encode(tokenizer: &Tokenizer, text: &str, special: bool) -> Result<Vec<i64>> {
    let encoding = tokenizer
        .encode(text, special)
        .map_err(|e| Error::Tokenizer {
            path: "tokenizer".into(),
            message: e.to_string(),
        })?;
    Ok(encoding.get_ids().iter().map(|&i| i64::from(i)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_tokenizers_give_known_ids() {
        let cases = [
            (BuiltinTokenizer::Gpt2, vec![15496, 995]),
            (BuiltinTokenizer::Bert, vec![101, 7592, 2088, 102]),
            (BuiltinTokenizer::T5, vec![8774, 296, 1]),
        ];
        for (arch, expected) in cases {
            let (tok, _) = builtin(arch).unwrap();
            assert_eq!(
                encode(&tok, "Hello world", true).unwrap(),
                expected,
                "{arch:?}"
            );
        }
    }
}
