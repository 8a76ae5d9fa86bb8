//! Prompts of exactly N tokens. The Python tool this replaces never padded its prompts, so every "curve" fed the
//! same 10 tokens; here a point labelled N feeds N ids, special tokens included, and the runner asserts it.

use tokenizers::Tokenizer;

use crate::models::tokenizer::encode;
use e3pipe::error::{Error, Result};

/// Public-domain prose the prompts are cut from (see `assets/text/README.md`).
pub const CORPUS: &str = include_str!("../../../assets/text/corpus.txt");

/// The special tokens the tokenizer wraps a text in (e.g. `[CLS]`/`[SEP]` for BERT, `</s>` for T5, none for GPT-2).
fn special_affixes(tokenizer: &Tokenizer) -> Result<(Vec<i64>, Vec<i64>)> {
    let plain = encode(tokenizer, "word", false)?;
    let wrapped = encode(tokenizer, "word", true)?;
    let start = wrapped
        .windows(plain.len().max(1))
        .position(|w| w == plain.as_slice())
        .unwrap_or(wrapped.len());
    let prefix = wrapped[..start].to_vec();
    let suffix = wrapped
        .get(start + plain.len()..)
        .map(<[i64]>::to_vec)
        .unwrap_or_default();
    Ok((prefix, suffix))
}

/// Exactly `n` token ids: the model's special tokens around the corpus text, cut or repeated to fit.
/// For `n` smaller than the special tokens themselves, the first `n` of them.
/// A length too large for memory is an error (`out of memory`, with the size), not an abort.
pub fn exact_length_ids(tokenizer: &Tokenizer, n: usize) -> Result<Vec<i64>> {
    exact_length_batch(tokenizer, n, 1)
}

/// `batch` distinct prompts of exactly `n` token ids each, row after row: row r is cut from the corpus starting
/// `r × (corpus tokens / batch)` tokens in (wrapping around), between the model's special tokens, so no two rows of
/// a batch are the same text and no cache or kernel can exploit identical rows. Row 0 is `exact_length_ids`'s.
pub fn exact_length_batch(tokenizer: &Tokenizer, n: usize, batch: usize) -> Result<Vec<i64>> {
    let (prefix, suffix) = special_affixes(tokenizer)?;
    let body_len = n.saturating_sub(prefix.len() + suffix.len());
    let text = encode(tokenizer, CORPUS, false)?;
    let row_len = n.max(prefix.len() + suffix.len());
    let total = row_len.checked_mul(batch.max(1));
    let mut ids: Vec<i64> = Vec::new();
    total
        .and_then(|t| ids.try_reserve_exact(t).ok())
        .ok_or_else(|| Error::Step {
            step: "bench".into(),
            message: format!(
                "out of memory: {batch} × {n} input token ids need {} bytes",
                (n as u128) * (batch as u128) * 8
            ),
        })?;
    let stride = (text.len() / batch.max(1)).max(1);
    for row in 0..batch.max(1) {
        let start = ids.len();
        ids.extend(&prefix);
        ids.extend(
            text.iter()
                .cycle()
                .skip((row * stride) % text.len().max(1))
                .take(body_len),
        );
        ids.extend(&suffix);
        ids.truncate(start + n);
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::tokenizer::builtin;
    use e3pipe::models::config::BuiltinTokenizer;

    #[test]
    fn every_builtin_tokenizer_gives_exactly_n_tokens() {
        for which in [
            BuiltinTokenizer::Gpt2,
            BuiltinTokenizer::Bert,
            BuiltinTokenizer::T5,
        ] {
            let (tok, _) = builtin(which).unwrap();
            for n in [1, 2, 7, 128, 1000, 5000] {
                let ids = exact_length_ids(&tok, n).unwrap();
                assert_eq!(ids.len(), n, "{which:?} at {n}");
            }
        }
    }

    #[test]
    fn special_tokens_wrap_the_prompt() {
        let (bert, _) = builtin(BuiltinTokenizer::Bert).unwrap();
        let ids = exact_length_ids(&bert, 7).unwrap();
        assert_eq!((ids[0], ids[6]), (101, 102));
        let (t5, _) = builtin(BuiltinTokenizer::T5).unwrap();
        assert_eq!(*exact_length_ids(&t5, 128).unwrap().last().unwrap(), 1);
        let (gpt2, _) = builtin(BuiltinTokenizer::Gpt2).unwrap();
        let ids = exact_length_ids(&gpt2, 128).unwrap();
        assert!(
            ids.iter().all(|&i| i != 50256),
            "no end-of-text inside a GPT-2 prompt"
        );
    }

    #[test]
    fn an_impossible_length_is_an_error_not_an_abort() {
        let (gpt2, _) = builtin(BuiltinTokenizer::Gpt2).unwrap();
        let e = exact_length_ids(&gpt2, usize::MAX / 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of memory") && e.contains("bytes"), "{e}");
    }

    #[test]
    fn a_batch_holds_distinct_prompts_of_exactly_n_tokens() {
        for which in [
            BuiltinTokenizer::Gpt2,
            BuiltinTokenizer::Bert,
            BuiltinTokenizer::T5,
        ] {
            let (tok, _) = builtin(which).unwrap();
            let ids = exact_length_batch(&tok, 64, 4).unwrap();
            assert_eq!(ids.len(), 4 * 64, "{which:?}");
            let rows: Vec<&[i64]> = ids.chunks(64).collect();
            let (prefix, suffix) = special_affixes(&tok).unwrap();
            assert_eq!(rows[0], exact_length_ids(&tok, 64).unwrap().as_slice());
            for i in 0..4 {
                for j in i + 1..4 {
                    assert_ne!(
                        rows[i], rows[j],
                        "{which:?}: rows {i} and {j} are the same prompt"
                    );
                }
                // Each row keeps the model's special tokens at its ends.
                assert!(
                    rows[i].starts_with(&prefix) && rows[i].ends_with(&suffix),
                    "{which:?}"
                );
            }
        }
        let (gpt2, _) = builtin(BuiltinTokenizer::Gpt2).unwrap();
        let e = exact_length_batch(&gpt2, usize::MAX / 2, 4)
            .unwrap_err()
            .to_string();
        assert!(e.contains("out of memory"), "{e}");
    }

    #[test]
    fn long_prompts_repeat_real_text() {
        let (gpt2, _) = builtin(BuiltinTokenizer::Gpt2).unwrap();
        let text_len = encode(&gpt2, CORPUS, false).unwrap().len();
        let ids = exact_length_ids(&gpt2, text_len + 10).unwrap();
        assert_eq!(&ids[text_len..], &ids[..10]);
    }
}
