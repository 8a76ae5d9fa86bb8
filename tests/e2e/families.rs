//! The Llama family through the real binary: random-init `llama`, `qwen2` and `mistral` models from model YAMLs,
//! a Hugging Face directory saved by transformers (sharded bf16), the stand-in tokenizer labelled, the KV cache
//! of the KV heads only, and configs that cannot run refused before anything is written.

use crate::project::{Project, bench_yaml, point};

/// A tiny member of the family: vocabulary large enough for the stand-in tokenizer's ids.
fn tiny(model_type: &str, extra: &str) -> String {
    format!(
        "name: {model_type}-tiny\narch: decoder\nweights: random\nseed: 1\nconfig:\n  model_type: {model_type}\n  vocab_size: 50257\n  hidden_size: 32\n  intermediate_size: 64\n  num_hidden_layers: 2\n  num_attention_heads: 4\n  num_key_value_heads: 2\n  max_position_embeddings: 600\n{extra}"
    )
}

const PIPELINE: &str = "steps:\n  - name: llama\n    kind: bench\n    model: configs/model/llama.yaml\n    bench: configs/bench/decoder.yaml\n  - name: qwen2\n    kind: bench\n    model: configs/model/qwen2.yaml\n    bench: configs/bench/decoder.yaml\n  - name: mistral\n    kind: bench\n    model: configs/model/mistral.yaml\n    bench: configs/bench/decoder.yaml\n  - name: aggregate\n    kind: aggregate\n    needs: [llama, qwen2, mistral]\n";

#[test]
fn llama_qwen2_and_mistral_run_from_model_yamls() {
    let p = Project::new();
    p.write(
        "configs/model/llama.yaml",
        &tiny(
            "llama",
            "  rope_scaling: {rope_type: llama3, factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 64}\n  eos_token_id: [50256, 50255]\n",
        ),
    );
    p.write(
        "configs/model/qwen2.yaml",
        &tiny("qwen2", "  tie_word_embeddings: true\n"),
    );
    p.write(
        "configs/model/mistral.yaml",
        &tiny("mistral", "  sliding_window: 16\n"),
    );
    p.write(
        "configs/bench/decoder.yaml",
        &bench_yaml("decoder", "[8, 64]", 4, 2),
    );
    p.write("pipelines/p.yaml", PIPELINE);
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    assert_eq!(r.points(), (6, 0, 0, 0), "{}", r.all());
    for model in ["llama-tiny", "qwen2-tiny", "mistral-tiny"] {
        let doc = p.results(model);
        for length in [8, 64] {
            let pt = point(&doc, length);
            assert_eq!(pt["status"], "ok", "{pt:#}");
            assert_eq!(pt["input_tokens"], length);
            assert_eq!(pt["stats"]["itl_ms"]["n"], 2 * 3, "{pt:#}");
        }
        let record = &doc["config"]["model"];
        assert!(
            record["tokenizer"]
                .as_str()
                .unwrap()
                .starts_with("stand-in: GPT-2's BPE"),
            "{record:#}"
        );
        assert!(
            record["attention"]
                .as_str()
                .unwrap()
                .contains("grouped-query"),
            "{record:#}"
        );
    }
    // Mistral's window is what its attention record says, and its 64-token prefill is counted with it: each
    // query sees at most 16 keys, so fewer FLOPs than Llama's full causal prefill of the same shapes.
    let mistral = p.results("mistral-tiny");
    assert!(
        mistral["config"]["model"]["attention"]
            .as_str()
            .unwrap()
            .contains("sliding window of 16 keys"),
        "{mistral:#}"
    );
    let flops = |doc: &serde_json::Value| doc["metrics"]["64"]["flops"].as_f64().unwrap();
    let llama = p.results("llama-tiny");
    assert!(
        flops(&mistral) < flops(&llama),
        "{} vs {}",
        flops(&mistral),
        flops(&llama)
    );
    let csv = p.read("tables/inference_results.csv");
    assert_eq!(csv.lines().count(), 1 + 6, "{csv}");
}

/// A word-level tokenizer of the corpus's commonest words (ids 0..60), small enough for a 99-token model.
fn small_tokenizer() -> String {
    let words = [
        "[UNK]", "the", "and", "to", "a", "she", "it", "of", "said", "I", "Alice", "was", "in",
        "you", "that", "as", "her", "at", "on", "with", "had", "all", "be", "for", "so", "very",
        "not", "but", "little", "they", "this", "out", "is", "down", "what", "up", "one", "about",
        "were", "like", "his", "herself", "there", "would", "went", "when", "if", "could", "then",
        "no", "into", "know", "or", "thought", "did", "how", "them", "see", "time", "Rabbit",
    ];
    let vocab: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(i, w)| format!("\"{w}\": {i}"))
        .collect();
    format!(
        r#"{{"version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null, "pre_tokenizer": {{"type": "Whitespace"}}, "post_processor": null, "decoder": null, "model": {{"type": "WordLevel", "vocab": {{{}}}, "unk_token": "[UNK]"}}}}"#,
        vocab.join(", ")
    )
}

#[test]
fn a_checkpoint_saved_by_transformers_runs_sharded_and_bf16_and_records_its_outputs() {
    // tests/fixtures/tiny-qwen2: transformers 5.24's `save_pretrained` in bf16, two shards and an index.
    let p = Project::new();
    let fixture =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-qwen2");
    p.write("tokenizer.json", &small_tokenizer());
    p.write(
        "configs/model/qwen2.yaml",
        &format!(
            "name: qwen2-saved\narch: decoder\npath: {}\ntokenizer: tokenizer.json\n",
            fixture.display()
        ),
    );
    p.write(
        "pipelines/p.yaml",
        "steps:\n  - name: q\n    kind: bench\n    model: configs/model/qwen2.yaml\n    bench: configs/bench/decoder.yaml\n",
    );
    p.write(
        "configs/bench/decoder.yaml",
        &format!(
            "{}record_outputs: true\n",
            bench_yaml("decoder", "[8, 12]", 5, 2)
        ),
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    let doc = p.results("qwen2-saved");
    for length in [8, 12] {
        let pt = point(&doc, length);
        assert_eq!(pt["status"], "ok", "{pt:#}");
        let outputs = &pt["outputs"];
        let input: Vec<i64> = serde_json::from_value(outputs["input_ids"].clone()).unwrap();
        let generated: Vec<i64> = serde_json::from_value(outputs["generated_ids"].clone()).unwrap();
        assert_eq!(input.len(), length, "{outputs}");
        assert!(input.iter().all(|id| (0..60).contains(id)), "{outputs}");
        // All `num_tokens`, none of them EOS (2), all in the 99-token vocabulary.
        assert_eq!(generated.len(), 5, "{outputs}");
        assert!(
            generated.iter().all(|id| (0..99).contains(id) && *id != 2),
            "{outputs}"
        );
        assert!(outputs.get("hidden_head").is_none());
    }
    // Recording outputs is in the key: the same points without it are other points.
    p.write(
        "configs/bench/decoder.yaml",
        &bench_yaml("decoder", "[8, 12]", 5, 2),
    );
    let plain = p.run(&["run", "pipelines/p.yaml", "--dry-run"]);
    assert!(
        plain
            .stdout
            .contains("stale (record_outputs: true -> none)"),
        "{}",
        plain.stdout
    );
}

#[test]
fn configs_the_family_cannot_run_are_refused_before_anything_is_written() {
    for (extra, model_type, wanted) in [
        ("", "llama", "vocab_size"), // replaced below with a small vocabulary
        (
            "  num_key_value_heads: 3\n",
            "llama",
            "multiple of `num_key_value_heads`",
        ),
        (
            "  rope_scaling: {rope_type: yarn, factor: 4.0}\n",
            "llama",
            "unsupported rope type `yarn`",
        ),
        (
            "  use_sliding_window: true\n",
            "qwen2",
            "use_sliding_window",
        ),
        (
            "  sliding_window: 0\n",
            "mistral",
            "`sliding_window` must be positive",
        ),
        ("  hidden_act: gelu\n", "llama", "unsupported `hidden_act`"),
        ("  rope_thetta: 10000\n", "llama", "rope_theta"),
    ] {
        let p = Project::new();
        let mut yaml = tiny(model_type, extra).replace("  num_key_value_heads: 2\n", "");
        if extra.is_empty() {
            yaml = yaml.replace("vocab_size: 50257", "vocab_size: 1000");
        } else if !extra.contains("num_key_value_heads") {
            yaml.push_str("  num_key_value_heads: 2\n");
        }
        p.write("configs/model/llama.yaml", &yaml);
        p.write(
            "configs/bench/decoder.yaml",
            &bench_yaml("decoder", "[8]", 2, 1),
        );
        p.write(
            "pipelines/p.yaml",
            "steps:\n  - name: l\n    kind: bench\n    model: configs/model/llama.yaml\n    bench: configs/bench/decoder.yaml\n",
        );
        let r = p.run(&["run", "pipelines/p.yaml"]);
        assert_eq!(r.code, 2, "{extra}: {}", r.all());
        assert!(r.stderr.contains(wanted), "{extra}: {}", r.stderr);
        assert!(
            !p.path("results").exists() && !p.path("latest").exists(),
            "{extra}: wrote"
        );
    }
}

#[test]
fn the_original_tools_fifteen_models_plan_in_one_pipeline() {
    // pipelines/e3mini.yaml of this repository, as a user coming from the original runs it first.
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let p = Project::new();
    for dir in ["pipelines", "configs/model", "configs/bench"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                let rel = format!("{dir}/{}", path.file_name().unwrap().to_string_lossy());
                p.write(&rel, &std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let r = p.run(&["run", "pipelines/e3mini.yaml", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.all());
    for model in [
        "gpt2",
        "gpt2-large",
        "llama-3.2-1b",
        "llama-3.2-3b",
        "qwen2.5-0.5b",
        "qwen2.5-1.5b",
        "t5-base",
        "t5-large",
        "flan-t5-base",
        "flan-t5-large",
        "bart-base",
        "bert-base-uncased",
        "distilbert-base-uncased",
        "roberta-base",
        "modernbert-base",
    ] {
        assert!(
            r.stdout.contains(&format!(": model {model} (")),
            "{model}: {}",
            r.stdout
        );
    }
    // 15 models × 4 lengths; what cannot run is said per point before anything runs.
    assert_eq!(
        r.stdout.matches("  1024 tokens  ").count(),
        15,
        "{}",
        r.stdout
    );
    // GPT-2 and GPT-2 large (1024 + 50 past 1024 positions), BERT, DistilBERT and RoBERTa (512) at 1024.
    assert_eq!(r.stdout.matches("infeasible").count(), 5, "{}", r.stdout);
    assert!(!p.path("results").exists());
}

fn tiny_encoder(model_type: &str, body: &str) -> String {
    format!(
        "name: {model_type}-tiny\narch: encoder\nweights: random\nseed: 1\nconfig:\n  model_type: {model_type}\n{body}"
    )
}

#[test]
fn roberta_distilbert_modernbert_and_bart_run_beside_the_llama_family() {
    // The reduced e3mini: one tiny model of every type added here, three architectures, through aggregate and plot.
    let p = Project::new();
    p.write(
        "configs/model/roberta.yaml",
        &tiny_encoder(
            "roberta",
            "  vocab_size: 50265\n  hidden_size: 32\n  num_hidden_layers: 2\n  num_attention_heads: 4\n  intermediate_size: 64\n  max_position_embeddings: 130\n  type_vocab_size: 1\n  pad_token_id: 1\n",
        ),
    );
    p.write(
        "configs/model/distilbert.yaml",
        &tiny_encoder(
            "distilbert",
            "  vocab_size: 30522\n  dim: 32\n  n_layers: 2\n  n_heads: 4\n  hidden_dim: 64\n  max_position_embeddings: 128\n",
        ),
    );
    p.write(
        "configs/model/modernbert.yaml",
        &tiny_encoder(
            "modernbert",
            "  vocab_size: 50368\n  hidden_size: 32\n  intermediate_size: 48\n  num_hidden_layers: 3\n  num_attention_heads: 4\n  max_position_embeddings: 512\n  local_attention: 16\n",
        ),
    );
    p.write(
        "configs/model/bart.yaml",
        "name: bart-tiny\narch: encoder-decoder\nweights: random\nseed: 1\nconfig:\n  model_type: bart\n  vocab_size: 50265\n  d_model: 32\n  encoder_layers: 2\n  decoder_layers: 2\n  encoder_attention_heads: 4\n  decoder_attention_heads: 4\n  encoder_ffn_dim: 64\n  decoder_ffn_dim: 64\n  max_position_embeddings: 128\n",
    );
    p.write("configs/model/llama.yaml", &tiny("llama", ""));
    p.write(
        "configs/bench/encoder.yaml",
        &bench_yaml("encoder", "[16, 128]", 0, 2),
    );
    p.write(
        "configs/bench/seq2seq.yaml",
        &bench_yaml("encoder-decoder", "[16, 128]", 3, 2),
    );
    p.write(
        "configs/bench/decoder.yaml",
        &bench_yaml("decoder", "[16, 128]", 3, 2),
    );
    let step = |name: &str, bench: &str| {
        format!(
            "  - name: {name}\n    kind: bench\n    model: configs/model/{name}.yaml\n    bench: configs/bench/{bench}.yaml\n"
        )
    };
    p.write(
        "pipelines/p.yaml",
        &format!(
            "steps:\n{}{}{}{}{}  - name: aggregate\n    kind: aggregate\n    needs: [roberta, distilbert, modernbert, bart, llama]\n  - name: plot\n    kind: plot\n    needs: [aggregate]\n",
            step("roberta", "encoder"),
            step("distilbert", "encoder"),
            step("modernbert", "encoder"),
            step("bart", "seq2seq"),
            step("llama", "decoder"),
        ),
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 0, "{}", r.all());
    // RoBERTa's 130 positions hold 128 tokens after the padding id's two; the rest fit too.
    assert_eq!(r.points(), (10, 0, 0, 0), "{}", r.all());
    let csv = p.read("tables/inference_results.csv");
    for model in [
        "roberta-tiny",
        "distilbert-tiny",
        "modernbert-tiny",
        "bart-tiny",
        "llama-tiny",
    ] {
        assert_eq!(
            csv.lines()
                .filter(|l| l.contains(&format!(",{model},")))
                .count(),
            2,
            "{model}: {csv}"
        );
        let doc = p.results(model);
        assert_eq!(point(&doc, 128)["input_tokens"], 128);
    }
    // ModernBERT at 128 tokens: two of three layers local (±8 tokens), so fewer FLOPs than all-global would count.
    let modern = p.results("modernbert-tiny");
    let flops = modern["metrics"]["128"]["flops"].as_f64().unwrap();
    let config: e3pipe::models::config::ArchConfig =
        serde_json::from_value(modern["config"]["model"]["hyperparameters"].clone()).unwrap();
    let e3pipe::models::config::ArchConfig::ModernBert(local) = config else {
        panic!("{config:?}")
    };
    let all_global =
        e3pipe::models::config::ArchConfig::ModernBert(e3pipe::models::config::ModernBertConfig {
            global_attn_every_n_layers: Some(1),
            ..local.clone()
        });
    let global_flops = e3pipe::models::work::point_work(&all_global, 128, 0, 1, 4)
        .headline
        .flops;
    assert!(flops < global_flops, "{flops} vs {global_flops}");
    assert!(p.path("figs/latency_curve.png").is_file());
    // RoBERTa's stand-in tokenizer is labelled; DistilBERT's is its own (BERT's WordPiece).
    assert!(
        p.results("roberta-tiny")["config"]["model"]["tokenizer"]
            .as_str()
            .unwrap()
            .starts_with("stand-in")
    );
    assert_eq!(
        p.results("distilbert-tiny")["config"]["model"]["tokenizer"],
        "built-in encoder"
    );
}

#[test]
fn a_model_too_large_for_the_host_is_an_oom_point_not_a_crash_or_a_hang() {
    // A billion layers: the work is counted per layer times the count (not looped), and the worker refuses to build
    // weights larger than the host's memory, so the point is `oom` with the size, and the run ends (exit 1).
    let p = Project::new();
    p.write(
        "configs/model/llama.yaml",
        &tiny("llama", "").replace("num_hidden_layers: 2", "num_hidden_layers: 1000000000000"),
    );
    p.write(
        "configs/bench/decoder.yaml",
        &bench_yaml("decoder", "[8]", 2, 1),
    );
    p.write(
        "pipelines/p.yaml",
        "steps:\n  - name: l\n    kind: bench\n    model: configs/model/llama.yaml\n    bench: configs/bench/decoder.yaml\n",
    );
    let r = p.run(&["run", "pipelines/p.yaml"]);
    assert_eq!(r.code, 1, "{}", r.all());
    let pt = point(&p.results("llama-tiny"), 8).clone();
    assert_eq!(pt["status"], "oom", "{pt:#}");
    assert!(
        pt["reason"]
            .as_str()
            .unwrap()
            .contains("its weights need at least"),
        "{pt:#}"
    );
}
