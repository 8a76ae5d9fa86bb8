//! `e3pipe peaks`: the roofs the pipeline's points are read against, one line per (device, dtype, threads) its
//! bench steps use, measured where the cache has none (or all again with `--force`).

use std::fmt::Write as _;
use std::path::Path;

use crate::bench::peaks::Peaks;
use crate::cache::peaks as cache_peaks;
use crate::cache::store::Store;
use crate::error::{Error, Result};
use crate::interrupt;
use crate::output;
use crate::pipeline::executor::Local;
use crate::pipeline::kinds::bench::plan::BenchPlan;
use crate::pipeline::kinds::bench::run::measure_peaks;
use crate::pipeline::plan::{Force, plan};
use crate::pipeline::spec::Pipeline;

pub fn run(pipeline_file: &Path, force: bool) -> Result<()> {
    let pipeline = Pipeline::load(pipeline_file)?;
    let plan = plan(&pipeline, &[], &Force::default())?;
    let store = Store::new(&pipeline.root);
    let mut seen = Vec::new();
    interrupt::install_handler();
    for step in &plan.steps {
        let Some(bench) = step.work.as_any().downcast_ref::<BenchPlan>() else {
            continue;
        };
        let Some(key) = &bench.peaks_key else {
            continue;
        };
        if seen.contains(key) {
            continue;
        }
        seen.push(key.clone());
        let cached = cache_peaks::load(&store.dir, key).filter(|_| !force);
        let peaks = match cached {
            Some(p) => p,
            None => {
                measure_peaks(bench, &pipeline.root, key, &Local)?.ok_or_else(|| Error::Step {
                    step: step.name.clone(),
                    message: "the worker measured no peaks".into(),
                })?
            }
        };
        output::result(&describe(&peaks));
        if crate::interrupt::INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Interrupted);
        }
    }
    if seen.is_empty() {
        output::result(
            "no bench step here has work e3pipe can count (none, or TorchScript models only): no peaks to measure",
        );
    }
    Ok(())
}

fn describe(p: &Peaks) -> String {
    let mut text = format!(
        "{}, {}, {} thread(s): {:.1} GFLOP/s matmul (best of {} at n = {}; median {:.1}), {:.1} GB/s read (median {:.1}); measured {}",
        p.device,
        p.dtype,
        p.threads,
        p.matmul_flops_per_s / 1e9,
        p.runs,
        p.matmul_n,
        p.matmul_median_flops_per_s / 1e9,
        p.memory_bytes_per_s / 1e9,
        p.memory_median_bytes_per_s / 1e9,
        p.measured_at
    );
    if let Some(d) = &p.datasheet {
        let _ = write!(
            text,
            "\n  datasheet ({}, {}): {:.1} TFLOP/s, {:.0} GB/s",
            d.gpu,
            d.source,
            d.matmul_flops_per_s / 1e12,
            d.memory_bytes_per_s / 1e9
        );
    }
    text
}
