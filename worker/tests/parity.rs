//! Parity with Hugging Face `transformers` (the reference implementation): tiny random models saved by
//! `scripts/make_fixtures.py` load by HF parameter name and reproduce the reference outputs within 1e-4 in fp32;
//! decode steps with the KV cache match full recomputation; the trained `MiniLM` reproduces its hidden states.

// A masked and an unmasked encode over the same all-ones mask must be bit-identical, so some comparisons are exact.
#![allow(clippy::float_cmp)]
// Test code: a failed fixture load should stop the test where it happened.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use e3pipe::models::config::Arch;
use e3pipe::models::spec::{DTypeChoice, DeviceChoice, ModelSource, ModelSpec, read_hf_config};
use e3pipe_worker::models::Model;
use tch::{Device, Kind, Tensor};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
}

fn reference(file: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(file)
        .unwrap()
        .into_iter()
        .collect()
}

fn hf_spec(dir: &Path) -> ModelSpec {
    let config = read_hf_config(dir).unwrap();
    ModelSpec {
        file: dir.join("config.json"),
        name: dir.file_name().unwrap().to_string_lossy().into_owned(),
        arch: config.arch(),
        source: ModelSource::HfDir { dir: dir.into() },
        config: Some(config),
        tokenizer: None,
        dtype: DTypeChoice::Fp32,
        device: DeviceChoice::Cpu,
    }
}

fn load(dir: &Path) -> Model {
    Model::load(&hf_spec(dir), Device::Cpu, Kind::Float).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    let diff = (a - b).abs().max().double_value(&[]);
    // Printed for the record (`cargo test --test parity -- --nocapture`).
    eprintln!("max |diff| = {diff:.2e}");
    diff
}

#[test]
fn gpt2_matches_transformers_and_cache_matches_recomputation() {
    let dir = fixtures().join("tiny-gpt2");
    let r = reference(&dir.join("reference.safetensors"));
    let model = load(&dir);
    let _guard = tch::no_grad_guard();
    let full = model.logits(&r["input_ids"], None).unwrap();
    let diff = max_abs_diff(&full, &r["logits"]);
    assert!(
        diff < 1e-4,
        "gpt2 logits differ from transformers by {diff}"
    );
    let incremental = model.incremental_logits(&r["input_ids"], None).unwrap();
    let diff = max_abs_diff(&incremental, &full);
    assert!(
        diff < 1e-4,
        "gpt2 KV-cache decode differs from recomputation by {diff}"
    );
}

fn check_t5(name: &str) {
    let dir = fixtures().join(name);
    let r = reference(&dir.join("reference.safetensors"));
    let model = load(&dir);
    let _guard = tch::no_grad_guard();
    let hidden = model.encode(&r["input_ids"], None).unwrap();
    let diff = max_abs_diff(&hidden, &r["encoder_last_hidden_state"]);
    assert!(
        diff < 1e-4,
        "{name} encoder differs from transformers by {diff}"
    );
    // An all-ones mask changes nothing: leaving it out when nothing is padded is exact.
    let mask = Tensor::ones_like(&r["input_ids"]);
    let masked = model.encode(&r["input_ids"], Some(&mask)).unwrap();
    assert_eq!(max_abs_diff(&masked, &hidden), 0.0);
    let full = model
        .logits(&r["input_ids"], Some(&r["decoder_input_ids"]))
        .unwrap();
    let diff = max_abs_diff(&full, &r["logits"]);
    assert!(
        diff < 1e-4,
        "{name} logits differ from transformers by {diff}"
    );
    let incremental = model
        .incremental_logits(&r["input_ids"], Some(&r["decoder_input_ids"]))
        .unwrap();
    let diff = max_abs_diff(&incremental, &full);
    assert!(
        diff < 1e-4,
        "{name} KV-cache decode differs from recomputation by {diff}"
    );
}

#[test]
fn t5_matches_transformers() {
    check_t5("tiny-t5");
}

#[test]
fn t5_gated_untied_matches_transformers() {
    check_t5("tiny-t5-gated");
}

#[test]
fn bert_with_padding_matches_transformers() {
    let dir = fixtures().join("tiny-bert");
    let r = reference(&dir.join("reference.safetensors"));
    let model = load(&dir);
    let _guard = tch::no_grad_guard();
    let hidden = model
        .encode(&r["input_ids"], Some(&r["attention_mask"]))
        .unwrap();
    // HF computes padded positions too; compare every position, padded or not.
    let diff = max_abs_diff(&hidden, &r["last_hidden_state"]);
    assert!(
        diff < 1e-4,
        "bert hidden states differ from transformers by {diff}"
    );
}

#[test]
fn trained_minilm_reproduces_its_reference() {
    // The wheel's model directory, linked by `make setup`; CI installs it too.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/minilm");
    assert!(
        dir.join("model.safetensors").is_file(),
        "run `make setup` first: {} is missing",
        dir.display()
    );
    let r = reference(&fixtures().join("minilm-reference.safetensors"));
    let model = load(&dir);
    assert_eq!(model.arch, Arch::Encoder);
    let _guard = tch::no_grad_guard();
    let hidden = model
        .encode(&r["input_ids"], Some(&r["attention_mask"]))
        .unwrap();
    let diff = max_abs_diff(&hidden, &r["last_hidden_state"]);
    assert!(
        diff < 1e-4,
        "MiniLM hidden states differ from transformers by {diff}"
    );
    // And the built-in BERT tokenizer gives the reference ids.
    let (tok, _) =
        e3pipe_worker::models::tokenizer::builtin(e3pipe::models::config::BuiltinTokenizer::Bert)
            .unwrap();
    let ids = e3pipe_worker::models::tokenizer::encode(
        &tok,
        "The quick brown fox jumps over the lazy dog.",
        true,
    )
    .unwrap();
    assert_eq!(Tensor::from_slice(&ids).view([1, -1]), r["input_ids"]);
}

/// Greedy generation exactly as the bench runner times it (prefill, or encoder + first decoder step, then N - 1
/// cached steps), with every unwritten cache position poisoned after the first token.
fn generate_like_the_runner(model: &Model, ids: &Tensor, n: i64) -> Tensor {
    let _guard = tch::no_grad_guard();
    let (batch, length) = ids.size2().unwrap();
    let (mut next, mut state) = if model.arch == Arch::Decoder {
        model.prefill(ids, length + n).unwrap()
    } else {
        let hidden = model.encode(ids, None).unwrap();
        let mut state = model.start_decoder(&hidden, None, n).unwrap();
        let start = Tensor::full(
            [batch, 1],
            model.decoder_start_token(),
            (Kind::Int64, Device::Cpu),
        );
        (model.step(&start, &mut state).unwrap(), state)
    };
    state.poison_unwritten();
    let mut generated = vec![next.shallow_clone()];
    for _ in 1..n {
        next = model.step(&next, &mut state).unwrap();
        generated.push(next.shallow_clone());
    }
    Tensor::cat(&generated, 1)
}

#[test]
fn greedy_generation_reproduces_transformers_generate() {
    // `greedy.safetensors`: transformers' `generate(min_new_tokens = max_new_tokens = N, do_sample=False)` on the
    // fixture's prompt (scripts/make_greedy_reference.py); `generated_ids` holds only the N new tokens.
    for name in ["tiny-gpt2", "tiny-t5", "tiny-t5-gated"] {
        let dir = fixtures().join(name);
        let r = reference(&dir.join("greedy.safetensors"));
        let expected = &r["generated_ids"];
        let n = expected.size()[1];
        assert!(n >= 4, "{name}: too few tokens to test decoding");
        let model = load(&dir);
        let got = generate_like_the_runner(&model, &r["input_ids"], n);
        assert_eq!(got.size(), expected.size(), "{name}: exactly N tokens");
        assert_eq!(
            &got, expected,
            "{name}: greedy tokens differ from transformers"
        );
    }
}

fn script_spec(file: &Path, arch: Arch) -> ModelSpec {
    ModelSpec {
        file: file.into(),
        name: "script".into(),
        arch,
        source: ModelSource::TorchScript { file: file.into() },
        config: None,
        tokenizer: None,
        dtype: DTypeChoice::Fp32,
        device: DeviceChoice::Cpu,
    }
}

#[test]
fn torchscript_models_follow_the_calling_convention() {
    let r = reference(&fixtures().join("torchscript-reference.safetensors"));
    let _guard = tch::no_grad_guard();
    let encoder = Model::load(
        &script_spec(&fixtures().join("tiny-bert-encoder.pt"), Arch::Encoder),
        Device::Cpu,
        Kind::Float,
    )
    .unwrap();
    let hidden = encoder
        .encode(&r["encoder.input_ids"], Some(&r["encoder.attention_mask"]))
        .unwrap();
    assert!(max_abs_diff(&hidden, &r["encoder.last_hidden_state"]) < 1e-4);

    let decoder = Model::load(
        &script_spec(&fixtures().join("tiny-gpt2-decoder.pt"), Arch::Decoder),
        Device::Cpu,
        Kind::Float,
    )
    .unwrap();
    let ids = &r["decoder.input_ids"];
    let (mut next, mut state) = decoder.prefill(ids, 64).unwrap();
    let mut generated = vec![next.shallow_clone()];
    for _ in 0..5 {
        next = decoder.step(&next, &mut state).unwrap();
        generated.push(next.shallow_clone());
    }
    let sequence = Tensor::cat(&[ids.shallow_clone(), Tensor::cat(&generated, 1)], 1);
    assert_eq!(sequence, r["decoder.greedy_sequence"]);

    let seq2seq = Model::load(
        &script_spec(&fixtures().join("tiny-t5-seq2seq.pt"), Arch::EncoderDecoder),
        Device::Cpu,
        Kind::Float,
    )
    .unwrap();
    let mask = &r["seq2seq.attention_mask"];
    let hidden = seq2seq.encode(&r["seq2seq.input_ids"], Some(mask)).unwrap();
    assert!(max_abs_diff(&hidden, &r["seq2seq.enc_hidden"]) < 1e-4);
}

fn load_error(spec: &ModelSpec) -> String {
    match Model::load(spec, Device::Cpu, Kind::Float) {
        Ok(_) => panic!("`{}` loaded but should not have", spec.file.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_model_files_are_named_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(
        fixtures().join("tiny-gpt2/config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    // Missing weights file.
    let err = load_error(&hf_spec(&dir));
    assert!(
        err.contains("model.safetensors") && err.contains("does not exist"),
        "{err}"
    );
    // Truncated weights file.
    let bytes = std::fs::read(fixtures().join("tiny-gpt2/model.safetensors")).unwrap();
    std::fs::write(dir.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let err = load_error(&hf_spec(&dir));
    assert!(err.contains("not a readable safetensors file"), "{err}");
    // Wrong shape: the config says 48 wide, the file holds 32.
    std::fs::copy(
        fixtures().join("tiny-gpt2/model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    let config = std::fs::read_to_string(fixtures().join("tiny-gpt2/config.json")).unwrap();
    std::fs::write(
        dir.join("config.json"),
        config.replace("\"n_embd\": 32", "\"n_embd\": 48"),
    )
    .unwrap();
    let err = load_error(&hf_spec(&dir));
    assert!(
        err.contains("has shape [") && err.contains("the config needs ["),
        "{err}"
    );
    std::fs::copy(
        fixtures().join("tiny-gpt2/config.json"),
        dir.join("config.json"),
    )
    .unwrap();
    // Missing tensors: BERT weights under a GPT-2 config name the first missing tensor.
    std::fs::copy(
        fixtures().join("tiny-bert/model.safetensors"),
        dir.join("model.safetensors"),
    )
    .unwrap();
    let err = load_error(&hf_spec(&dir));
    assert!(
        err.contains("tensor `") && err.contains("is missing"),
        "{err}"
    );
    // A config of an unsupported model_type.
    std::fs::write(dir.join("config.json"), r#"{"model_type": "gemma"}"#).unwrap();
    let err = read_hf_config(&dir).err().unwrap().to_string();
    assert!(err.contains("unsupported model_type `gemma`"), "{err}");
    assert!(err.contains("`llama`, `qwen2`, `mistral`"), "{err}");
    // A TorchScript file that is not one, and one with the wrong calling convention.
    std::fs::write(dir.join("bad.pt"), b"not torchscript").unwrap();
    let err = load_error(&script_spec(&dir.join("bad.pt"), Arch::Encoder));
    assert!(err.contains("not a loadable TorchScript file"), "{err}");
    let err = load_error(&script_spec(
        &fixtures().join("tiny-bert-encoder.pt"),
        Arch::Decoder,
    ));
    assert!(
        err.contains("does not follow e3pipe's `decoder` TorchScript calling convention"),
        "{err}"
    );
    // A tokenizer.json that does not parse.
    std::fs::write(dir.join("tokenizer.json"), b"{ nope").unwrap();
    let err = e3pipe_worker::models::tokenizer::from_file(&dir.join("tokenizer.json"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("tokenizer.json") && err.contains("cannot be loaded"),
        "{err}"
    );
}

#[test]
fn torchscript_models_are_converted_to_the_requested_dtype() {
    // The exported tiny BERT builds its attention mask in fp32 inside the script, so once its weights are
    // converted to bf16 it cannot run: loading must say so, not quietly measure fp32 and label it bf16.
    let spec = script_spec(&fixtures().join("tiny-bert-encoder.pt"), Arch::Encoder);
    let err = Model::load(&spec, Device::Cpu, Kind::BFloat16)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("does not run in `bf16` (set `dtype: fp32`"),
        "{err}"
    );
    assert!(Model::load(&spec, Device::Cpu, Kind::Float).is_ok());
}

#[test]
fn llama_family_matches_transformers_at_prefill_every_cached_step_and_in_generation() {
    // tiny-llama: GQA (4 query heads over 2 KV heads), Llama 3 rope scaling, untied head, one fp32 file.
    // tiny-qwen2: one KV head, q/k/v biases, tied head, a bf16 checkpoint in two shards.
    // tiny-mistral: a sliding window of 4 keys, shorter than the 9-token prompt and the generation.
    // All saved by transformers 5.24's `save_pretrained` (scripts/make_llama_fixtures.py).
    for name in ["tiny-llama", "tiny-qwen2", "tiny-mistral"] {
        let dir = fixtures().join(name);
        let r = reference(&dir.join("reference.safetensors"));
        let model = load(&dir);
        let _guard = tch::no_grad_guard();
        let ids = &r["input_ids"];
        let full = model.logits(ids, None).unwrap();
        let diff = max_abs_diff(&full, &r["logits"]);
        assert!(
            diff < 1e-5,
            "{name}: logits differ from transformers by {diff}"
        );
        // One token at a time through the KV cache (unwritten positions poisoned with NaN).
        let incremental = model.incremental_logits(ids, None).unwrap();
        let diff = max_abs_diff(&incremental, &r["logits"]);
        assert!(
            diff < 1e-5,
            "{name}: cached decode differs from transformers by {diff}"
        );
        let expected = &r["generated_ids"];
        let got = generate_like_the_runner(&model, ids, expected.size()[1]);
        assert_eq!(
            &got, expected,
            "{name}: greedy tokens differ from transformers"
        );
    }
}

#[test]
fn the_kv_cache_holds_only_the_key_value_heads() {
    // tiny-qwen2: 4 query heads share 1 KV head of 8 values: 2 (k, v) × 2 layers × 8 values per position.
    let model = load(&fixtures().join("tiny-qwen2"));
    assert_eq!(model.kv_cache_bytes(1, 10, 6), Some(2 * 2 * 16 * 8 * 4));
    let gpt2 = load(&fixtures().join("tiny-gpt2"));
    // GPT-2 caches every head: n_embd 32 per position.
    assert_eq!(gpt2.kv_cache_bytes(1, 10, 6), Some(2 * 2 * 16 * 32 * 4));
}

#[test]
fn roberta_and_distilbert_match_transformers() {
    // tiny-roberta: the padding id 1 sits inside the first row, where transformers does not advance the position.
    // tiny-distilbert: DistilBERT's own parameter names, no token types.
    for name in ["tiny-roberta", "tiny-distilbert"] {
        let dir = fixtures().join(name);
        let r = reference(&dir.join("reference.safetensors"));
        let model = load(&dir);
        let _guard = tch::no_grad_guard();
        let hidden = model.encode(&r["input_ids"], None).unwrap();
        let diff = max_abs_diff(&hidden, &r["last_hidden_state"]);
        assert!(
            diff < 1e-5,
            "{name}: hidden states differ from transformers by {diff}"
        );
    }
}

#[test]
fn bart_matches_transformers_through_its_cache_and_in_generation() {
    // tiny-bart: untied head, `scale_embedding`, a non-zero `final_logits_bias`, learned positions offset by 2;
    // tiny-bart-tied: one shared embedding and head, unscaled (as bart-base).
    for name in ["tiny-bart", "tiny-bart-tied"] {
        check_bart(name);
    }
}

fn check_bart(name: &str) {
    let dir = fixtures().join(name);
    let r = reference(&dir.join("reference.safetensors"));
    let model = load(&dir);
    let _guard = tch::no_grad_guard();
    let hidden = model.encode(&r["input_ids"], None).unwrap();
    let diff = max_abs_diff(&hidden, &r["encoder_last_hidden_state"]);
    assert!(
        diff < 1e-5,
        "bart encoder differs from transformers by {diff}"
    );
    let dec = &r["decoder_input_ids"];
    let full = model.logits(&r["input_ids"], Some(dec)).unwrap();
    let diff = max_abs_diff(&full, &r["logits"]);
    assert!(
        diff < 1e-5,
        "bart logits differ from transformers by {diff}"
    );
    let incremental = model
        .incremental_logits(&r["input_ids"], Some(dec))
        .unwrap();
    let diff = max_abs_diff(&incremental, &r["logits"]);
    assert!(
        diff < 1e-5,
        "bart cached decode differs from transformers by {diff}"
    );
    let expected = &r["generated_ids"];
    let got = generate_like_the_runner(&model, &r["input_ids"], expected.size()[1]);
    assert_eq!(
        &got, expected,
        "bart: greedy tokens differ from transformers"
    );
}

#[test]
fn modernbert_matches_transformers_with_global_and_local_layers() {
    // tiny-modernbert: 4 layers, global at 0 and 3, the others within ±2 tokens of a 9-token prompt; rotary bases
    // 160000 and 10000; no biases; the first layer without an attention norm.
    let dir = fixtures().join("tiny-modernbert");
    let r = reference(&dir.join("reference.safetensors"));
    let model = load(&dir);
    let _guard = tch::no_grad_guard();
    let hidden = model.encode(&r["input_ids"], None).unwrap();
    let diff = max_abs_diff(&hidden, &r["last_hidden_state"]);
    assert!(
        diff < 1e-5,
        "modernbert hidden states differ from transformers by {diff}"
    );
}
