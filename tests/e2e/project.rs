//! A throwaway e3pipe project in a temp dir, with tiny real-architecture models (random weights, real vocabularies
//! and tokenizers), and a runner for the real binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) struct Project {
    pub dir: tempfile::TempDir,
}

pub(crate) struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub(crate) fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// (computed, cached, failed, infeasible) from the closing line.
    pub(crate) fn points(&self) -> (usize, usize, usize, usize) {
        let line = self
            .stdout
            .lines()
            .find(|l| l.starts_with("points: "))
            .unwrap_or_else(|| panic!("no points line in:\n{}", self.all()));
        let nums: Vec<usize> = line
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        (nums[0], nums[1], nums[2], nums[3])
    }
}

pub(crate) const GPT2_TINY: &str = "name: gpt2-tiny\narch: decoder\nweights: random\nseed: 1\nconfig:\n  model_type: gpt2\n  vocab_size: 50257\n  n_positions: 600\n  n_embd: 64\n  n_layer: 2\n  n_head: 2\n";
pub(crate) const T5_TINY: &str = "name: t5-tiny\narch: encoder-decoder\nweights: random\nseed: 1\nconfig:\n  model_type: t5\n  vocab_size: 32128\n  d_model: 64\n  d_kv: 16\n  d_ff: 128\n  num_layers: 2\n  num_heads: 4\n";
pub(crate) const BERT_TINY: &str = "name: bert-tiny\narch: encoder\nweights: random\nseed: 1\nconfig:\n  model_type: bert\n  vocab_size: 30522\n  hidden_size: 64\n  num_hidden_layers: 2\n  num_attention_heads: 2\n  intermediate_size: 128\n  max_position_embeddings: 512\n";

pub(crate) fn bench_yaml(arch: &str, lengths: &str, num_tokens: usize, num_runs: usize) -> String {
    format!(
        "name: test\narch: {arch}\ncontext_lengths: {lengths}\nnum_tokens: {num_tokens}\nbatch_size: 1\nnum_runs: {num_runs}\nwarmup_runs: 1\nthreads: 1\n"
    )
}

/// The three architectures' bench configs (`decoder`, `seq2seq`, `encoder`) at `lengths`, `runs` runs each, each
/// text passed through `edit` (e.g. to sweep batch sizes).
pub(crate) fn write_benches(p: &Project, lengths: &str, runs: usize, edit: fn(String) -> String) {
    for (file, arch, tokens) in [
        ("decoder", "decoder", 4),
        ("seq2seq", "encoder-decoder", 4),
        ("encoder", "encoder", 0),
    ] {
        p.write(
            &format!("configs/bench/{file}.yaml"),
            &edit(bench_yaml(arch, lengths, tokens, runs)),
        );
    }
}

/// One bench step of the tiny BERT ...
pub(crate) const BERT_ONLY: &str = "steps:\n  - name: b\n    kind: bench\n    model: configs/model/bert.yaml\n    bench: configs/bench/encoder.yaml\n";
/// ... and the derived steps after it.
pub(crate) const AGGREGATE_AFTER_B: &str =
    "  - name: aggregate\n    kind: aggregate\n    needs: [b]\n";
pub(crate) const PLOT_AFTER_AGGREGATE: &str =
    "  - name: plot\n    kind: plot\n    needs: [aggregate]\n";

/// A point's record in a results document.
pub(crate) fn point(doc: &serde_json::Value, length: usize) -> &serde_json::Value {
    doc.pointer(&format!("/metrics/{length}/point"))
        .unwrap_or_else(|| panic!("no point {length} in {doc:#}"))
}

/// A pipeline with the three tiny models and aggregate + plot.
pub(crate) const THREE_MODELS: &str = "steps:
  - name: bench-gpt2
    kind: bench
    model: configs/model/gpt2.yaml
    bench: configs/bench/decoder.yaml
  - name: bench-t5
    kind: bench
    model: configs/model/t5.yaml
    bench: configs/bench/seq2seq.yaml
  - name: bench-bert
    kind: bench
    model: configs/model/bert.yaml
    bench: configs/bench/encoder.yaml
  - name: aggregate
    kind: aggregate
    needs: [bench-gpt2, bench-t5, bench-bert]
  - name: plot
    kind: plot
    needs: [aggregate]
";

impl Project {
    /// A project measuring the tiny BERT at `lengths` (1 run, 1 thread), with `after` appended to its pipeline
    /// (e.g. `AGGREGATE_AFTER_B`).
    pub(crate) fn bert(lengths: &str, after: &str) -> Project {
        let p = Project::new();
        p.write("pipelines/p.yaml", &format!("{BERT_ONLY}{after}"));
        p.write(
            "configs/bench/encoder.yaml",
            &bench_yaml("encoder", lengths, 0, 1),
        );
        p
    }

    pub(crate) fn new() -> Project {
        let p = Project {
            dir: tempfile::tempdir().unwrap(),
        };
        p.write("configs/model/gpt2.yaml", GPT2_TINY);
        p.write("configs/model/t5.yaml", T5_TINY);
        p.write("configs/model/bert.yaml", BERT_TINY);
        write_benches(&p, "[32, 512]", 3, |t| t);
        p.write("pipelines/p.yaml", THREE_MODELS);
        p
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    pub(crate) fn write(&self, rel: &str, text: &str) {
        let path = self.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub(crate) fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
    }

    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_e3pipe"));
        cmd.args(args)
            .current_dir(self.root())
            .env_remove("RUST_LOG")
            .env("E3PIPE_NO_CUDA", "1");
        cmd
    }

    /// Starts the binary in the background, capturing its output.
    pub(crate) fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    }

    pub(crate) fn run(&self, args: &[&str]) -> Run {
        to_run(self.command(args).output().unwrap())
    }

    pub(crate) fn results(&self, model: &str) -> serde_json::Value {
        serde_json::from_str(&self.read(&format!("latest/inference/{model}.json"))).unwrap()
    }

    pub(crate) fn cache_entries(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.path("cache/points"))
            .map(|d| {
                d.filter_map(std::result::Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Every file below `dir`.
pub(crate) fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

pub(crate) fn to_run(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: text(out.stdout),
        stderr: text(out.stderr),
    }
}
