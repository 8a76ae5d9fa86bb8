//! Measures one (model, context length) point: feasibility, exact-length input, warm-up runs discarded, then
//! measured runs until the stopping rule (`e3pipe::bench::stopping`) says enough. Every clock read is preceded by a
//! device synchronisation (a no-op on CPU) and uses the monotonic clock.
//!
//! What each timed region holds (and nothing else: inputs, masks and caches for the next run are built before the
//! clock starts):
//! - `forward_pass_latency_ms` (encoder): one forward to the last hidden state.
//! - `ttft_ms`: decoder: the prefill over the prompt (the KV cache allocated for prompt + generated tokens, the
//!   LM head on the last position) and the greedy pick of the first token; encoder-decoder: the encoder
//!   (`encoder_latency_ms`), the cross-attention keys/values of every decoder layer, and the first decoder step.
//! - `itl_ms`: each further decode step alone (one token in, the greedy next token out, the cache extended in
//!   place); `tbt_ms` is a run's mean of them (the seed's meaning).
//! - `e2e_latency_ms`: from the start of the prefill to the last generated token.

use std::collections::BTreeMap;
use std::time::Instant;

use tch::{Kind, Tensor};
use tokenizers::Tokenizer;

use crate::bench::cuda_memory;
use crate::bench::energy;
use crate::bench::input::exact_length_batch;
use crate::models::device::synchronize;
use crate::models::{Model, kind_name};
use e3pipe::bench::config::BenchParams;
use e3pipe::bench::memory::{self, MemorySource};
use e3pipe::bench::result::{
    Energy, EnergyWindow, EnergyWindows, METHOD_ID, PointOutputs, PointResult, Status,
    headline_metric,
};
use e3pipe::bench::stats::{summarize, summarize_after_adaptive_stop};
use e3pipe::bench::stopping::should_stop;
use e3pipe::error::{Error, Result};
use e3pipe::models::config::{Arch, infeasibility};
use e3pipe::models::gpu::{self, Gpu, GpuWindow};
use e3pipe::models::hardware::{Device as Placement, describe, gpu_of};

/// The GPU (or MIG slice) a tensor device is, as `nvidia-smi` lists it.
fn gpu_at(device: tch::Device) -> Option<Gpu> {
    match device {
        tch::Device::Cuda(i) => gpu_of(Placement::Cuda(i)),
        _ => None,
    }
}

/// The shortest energy window: many updates of the slowest counter read (NVML's, about every 100 ms).
const MIN_ENERGY_WINDOW_S: f64 = 1.0;

/// Per-run timings, milliseconds.
#[derive(Default)]
struct Samples {
    by_metric: BTreeMap<&'static str, Vec<f64>>,
}

impl Samples {
    fn push(&mut self, metric: &'static str, value: f64) {
        self.by_metric.entry(metric).or_default().push(value);
    }
}

/// What the measured runs of a point produced.
struct Measured {
    samples: Samples,
    stopped_by: e3pipe::bench::stopping::StopReason,
    /// The energy windows, where a meter measures.
    energy: Option<EnergyWindows>,
    /// The GPU's state around the window (CUDA only).
    state: Option<GpuWindow>,
    /// The first measured run's outputs (`record_outputs`).
    outputs: Option<Tensor>,
}

/// The `read_back` diagnostic: one element of `t` copied to the host, which waits for the work producing it.
fn read_back(t: &Tensor) -> Result<()> {
    let torch = |e: tch::TchError| Error::Torch(e.to_string());
    let first = t.f_flatten(0, -1).and_then(|f| f.f_get(0)).map_err(torch)?;
    first.f_double_value(&[]).map_err(torch)?;
    Ok(())
}

fn ms_since(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1e3
}

/// `TorchScript`'s profiling executor profiles the first call and optimises on the second: warm-ups must cover both,
/// or the first measured runs would time the optimiser.
pub const TORCHSCRIPT_MIN_WARMUP_RUNS: usize = 2;

/// Warm-up runs a point gets: as configured, but at least what `TorchScript`'s executor needs.
pub fn warmup_runs(model: &Model, params: &BenchParams) -> usize {
    if model.is_script() {
        params.warmup_runs.max(TORCHSCRIPT_MIN_WARMUP_RUNS)
    } else {
        params.warmup_runs
    }
}

/// The attention mask to feed: none for the native models, whose rows are never padded (every row is exactly the
/// context length; a mask would only force a slower attention kernel on CUDA); all ones for `TorchScript`, whose
/// calling convention takes one.
pub fn input_mask(model: &Model, batch: i64, length: i64) -> Option<Tensor> {
    model
        .is_script()
        .then(|| Tensor::ones([batch, length], (Kind::Int64, model.device)))
}

/// One timed run; records into `samples` when `record`. With `capture`, returns what the run produced, taken
/// after its clock stopped: the generated ids `[B, N]` (generators) or the last hidden state (encoders).
fn run_once(
    model: &Model,
    ids: &Tensor,
    mask: Option<&Tensor>,
    params: &BenchParams,
    samples: &mut Samples,
    record: bool,
    capture: bool,
) -> Result<Option<Tensor>> {
    let device = model.device;
    let batch = params.batch_size as f64;
    let input_tokens = batch * ids.size()[1] as f64;
    let tokens = params.num_tokens;
    // The decoder's start tokens are an input, built before the clock starts (T5).
    let start_ids = (model.arch == Arch::EncoderDecoder).then(|| {
        Tensor::full(
            [params.batch_size as i64, 1],
            model.decoder_start_token(),
            (Kind::Int64, device),
        )
    });
    synchronize(device);
    let start = Instant::now();
    match model.arch {
        Arch::Encoder => {
            let hidden = model.encode(ids, mask)?;
            if params.read_back {
                read_back(&hidden)?;
            }
            synchronize(device);
            let forward_ms = ms_since(start);
            if record {
                samples.push("forward_pass_latency_ms", forward_ms);
                samples.push("sequences_per_sec", batch / (forward_ms / 1e3));
                samples.push("tokens_per_sec", input_tokens / (forward_ms / 1e3));
                samples.push("prefill_tokens_per_sec", input_tokens / (forward_ms / 1e3));
            }
            Ok(capture.then_some(hidden))
        }
        Arch::Decoder | Arch::EncoderDecoder => {
            let (mut next, mut state, encoder_ms) = if model.arch == Arch::Decoder {
                let max_len = ids.size()[1] + tokens as i64;
                let (next, state) = model.prefill(ids, max_len)?;
                (next, state, None)
            } else {
                let hidden = model.encode(ids, mask)?;
                if params.read_back {
                    read_back(&hidden)?;
                }
                synchronize(device);
                let encoder_ms = ms_since(start);
                let mut state = model.start_decoder(&hidden, mask, tokens as i64)?;
                let start_ids = start_ids.as_ref().ok_or_else(|| Error::Model {
                    model: model.name.clone(),
                    message: "no decoder start tokens".into(),
                })?;
                let next = model.step(start_ids, &mut state)?;
                (next, state, Some(encoder_ms))
            };
            if params.read_back {
                read_back(&next)?;
            }
            synchronize(device);
            let ttft_ms = ms_since(start);
            let mut step_ms = Vec::new();
            // Handles to the tokens on the device, no copy: read after the clock stops.
            let mut generated = capture.then(|| vec![next.shallow_clone()]);
            for _ in 1..tokens {
                let step_start = Instant::now();
                next = model.step(&next, &mut state)?;
                synchronize(device);
                step_ms.push(ms_since(step_start));
                if let Some(g) = generated.as_mut() {
                    g.push(next.shallow_clone());
                }
            }
            let e2e_ms = ms_since(start);
            if record {
                samples.push("ttft_ms", ttft_ms);
                let prefill_ms = encoder_ms.unwrap_or(ttft_ms);
                samples.push("prefill_tokens_per_sec", input_tokens / (prefill_ms / 1e3));
                if let Some(e) = encoder_ms {
                    samples.push("encoder_latency_ms", e);
                }
                if !step_ms.is_empty() {
                    samples.push("tbt_ms", step_ms.iter().sum::<f64>() / step_ms.len() as f64);
                }
                for ms in &step_ms {
                    samples.push("itl_ms", *ms);
                }
                samples.push("e2e_latency_ms", e2e_ms);
                samples.push(
                    "throughput_tokens_per_sec",
                    batch * tokens as f64 / (e2e_ms / 1e3),
                );
            }
            Ok(generated.map(|g| Tensor::cat(&g, 1)))
        }
    }
}

/// What `record_outputs` keeps of a point, read on the host after every clock stopped: the first row's prompt ids,
/// and its greedy ids (generators) or the first 8 values of its last hidden state at position 0 (encoders).
fn recorded_outputs(model: &Model, ids: &Tensor, produced: Option<&Tensor>) -> PointOutputs {
    let row_ids = |t: &Tensor| {
        Vec::<i64>::try_from(t.get(0).to_kind(Kind::Int64).to_device(tch::Device::Cpu))
            .unwrap_or_default()
    };
    let mut out = PointOutputs {
        input_ids: row_ids(ids),
        generated_ids: None,
        hidden_head: None,
    };
    if let Some(t) = produced {
        if model.arch.generates() {
            out.generated_ids = Some(row_ids(t));
        } else {
            let head = t.get(0).get(0);
            let n = head.size().first().copied().unwrap_or(0).min(8);
            out.hidden_head = Vec::<f64>::try_from(
                head.narrow(0, 0, n)
                    .to_kind(Kind::Double)
                    .to_device(tch::Device::Cpu),
            )
            .ok();
        }
    }
    out
}

/// The process-wide settings the points are measured under: libtorch's intra-op threads (the job's, which every
/// point's key holds).
pub fn prepare(threads: usize) {
    tch::set_num_threads(i32::try_from(threads).unwrap_or(i32::MAX));
}

/// Measures one point. Infeasible points and failures are results, not errors, so the step goes on; `Err` is
/// only returned for an interruption.
pub fn measure_point(
    model: &Model,
    tokenizer: &Tokenizer,
    params: &BenchParams,
    context_length: usize,
) -> Result<PointResult> {
    let started = Instant::now();
    let mut result = PointResult {
        model: model.name.clone(),
        arch: model.arch,
        context_length,
        input_tokens: 0,
        status: Status::Ok,
        reason: None,
        batch_size: params.batch_size,
        num_tokens: if model.arch.generates() {
            params.num_tokens
        } else {
            0
        },
        dtype: kind_name(model.kind).into(),
        device: describe(match model.device {
            tch::Device::Cuda(i) => Placement::Cuda(i),
            _ => Placement::Cpu,
        }),
        threads: tch::get_num_threads().max(1) as usize,
        libtorch_version: e3pipe::models::runtime::loaded_libtorch_version(),
        e3pipe_version: env!("CARGO_PKG_VERSION").into(),
        weights: String::new(),
        weights_bytes: model.weights_bytes,
        peak_rss_bytes: None,
        rss_baseline_bytes: None,
        cuda_peak_bytes: None,
        cuda_reserved_peak_bytes: None,
        memory_source: MemorySource::HostRss,
        stats: BTreeMap::new(),
        warmup_runs: warmup_runs(model, params),
        stopped_by: None,
        method: METHOD_ID.into(),
        run_id: String::new(),
        anchor: None,
        outputs: None,
        wall_s: 0.0,
        finished_at: String::new(),
        energy: None,
        energy_source: String::new(),
        executor: "local".into(),
        slurm_job_id: None,
        hardware: None,
        runtime: None,
        gpu_state: None,
        warnings: Vec::new(),
        order: None,
    };
    let finish = |mut r: PointResult| {
        r.wall_s = started.elapsed().as_secs_f64();
        r.finished_at = e3pipe::clock::now_rfc3339();
        r
    };
    if let Some(reason) = infeasibility(model.config.as_ref(), context_length, result.num_tokens) {
        result.status = Status::Infeasible;
        result.reason = Some(reason);
        return Ok(finish(result));
    }

    // Sizes too large for this machine (a huge length, batch or `num_tokens`) end as `oom` points, never as an
    // abort. A KV cache larger than the host's memory is refused before allocating it: the OS would hand out the
    // address space lazily and the point would thrash or be killed instead of failing.
    if model.device == tch::Device::Cpu
        && let (Some(needed), Some(total)) = (
            model.kv_cache_bytes(params.batch_size, context_length, result.num_tokens),
            memory::total_bytes(),
        )
        && needed > u128::from(total)
    {
        result.status = Status::Oom;
        result.reason = Some(format!(
            "out of memory: the KV cache for {context_length} + {} tokens at batch {} needs {needed} bytes; this machine has {total}",
            result.num_tokens, params.batch_size
        ));
        return Ok(finish(result));
    }
    // Sizes too large for this machine (a huge length or batch) end here as `oom` points, never as an abort.
    let ids = match exact_length_batch(tokenizer, context_length, params.batch_size) {
        Ok(ids) => ids,
        Err(e) => return Ok(finish(failed(result, &e))),
    };
    if ids.len() != context_length * params.batch_size.max(1) {
        // The bug this project exists to avoid: never label a point with a length it did not feed.
        result.status = Status::Error;
        result.reason = Some(format!(
            "could build only {} of {} × {context_length} input tokens (the tokenizer encodes the prompt text to nothing?)",
            ids.len(),
            params.batch_size
        ));
        return Ok(finish(result));
    }
    if let Some(bad) = ids
        .iter()
        .find(|&&i| model.config.as_ref().is_some_and(|c| i >= c.vocab_size()))
    {
        result.status = Status::Error;
        result.reason = Some(format!(
            "token id {bad} is outside the model's vocabulary; the tokenizer does not match the model"
        ));
        return Ok(finish(result));
    }
    // Per sequence: every row of the batch is exactly the context length.
    result.input_tokens = context_length;
    let batch = params.batch_size.max(1) as i64;
    let inputs = catch_torch(|| {
        let torch = |e: tch::TchError| Error::Torch(e.to_string());
        // `batch` distinct prompts, one per row.
        let ids = Tensor::f_from_slice(&ids)
            .and_then(|t| t.f_view([batch, context_length as i64]))
            .and_then(|t| t.f_to_device(model.device))
            .map_err(torch)?;
        Ok((ids, input_mask(model, batch, context_length as i64)))
    });
    drop(ids);
    let (ids, mask) = match inputs {
        Ok(inputs) => inputs,
        Err(e) => return Ok(finish(failed(result, &e))),
    };
    let mask = mask.as_ref();
    let warmups = result.warmup_runs;
    let headline = headline_metric(model.arch);

    let cuda_index = match model.device {
        tch::Device::Cuda(i) => Some(i),
        _ => None,
    };
    // Trims the heap before resetting the high-water mark, so a longer point before this one does not count.
    let gpu = gpu_at(model.device);
    let meter = energy::Meter::for_gpu(model.device, gpu.as_ref());
    let warmup_s = params.warmup_s_on(cuda_index.is_some());
    result.energy_source = meter.source();
    let rss_reset = memory::reset_peak();
    let cuda_measured = cuda_index.is_some_and(cuda_memory::reset_peak);
    let outcome = catch_torch(|| -> Result<Measured> {
        let _guard = tch::no_grad_guard();
        let mut samples = Samples::default();
        // The device at rest, on the same counter, before anything of this point runs.
        let idle = meter.measures().then(|| {
            let window = meter.start();
            std::thread::sleep(std::time::Duration::from_secs_f64(MIN_ENERGY_WINDOW_S));
            meter.stop(window)
        });
        for _ in 0..warmups {
            run_once(model, &ids, mask, params, &mut samples, false, false)?;
        }
        // On a GPU, clocks ramp up from idle over a fraction of a second: keep running until they have.
        let warming = Instant::now();
        while warming.elapsed().as_secs_f64() < warmup_s {
            if e3pipe::interrupt::interrupted() {
                return Err(Error::Interrupted);
            }
            run_once(model, &ids, mask, params, &mut samples, false, false)?;
        }
        // The GPU's state just before and just after the window (`nvidia-smi` runs outside it, never during).
        let state_start = gpu.as_ref().and_then(|g| gpu::sample(&g.parent_uuid));
        let measuring = Instant::now();
        let window = meter.start();
        let mut runs = 0;
        let mut outputs = None;
        loop {
            if let Some(reason) = should_stop(
                params,
                runs,
                measuring.elapsed().as_secs_f64(),
                samples.by_metric.get(headline).map(Vec::as_slice),
            ) {
                // An energy counter advances in steps (NVML about every 100 ms): a window of a few short runs
                // would read one or two of them. The same runs, unmeasured, until the window spans
                // `MIN_ENERGY_WINDOW_S`; energy per run divides by every run in the window.
                let mut energy_runs = runs;
                if meter.measures() {
                    while measuring.elapsed().as_secs_f64() < MIN_ENERGY_WINDOW_S {
                        if e3pipe::interrupt::interrupted() {
                            return Err(Error::Interrupted);
                        }
                        run_once(model, &ids, mask, params, &mut samples, false, false)?;
                        energy_runs += 1;
                    }
                }
                let measured = meter.stop(window);
                // A generator's prefill alone (one token, no decode steps), in a window of its own, so that its
                // energy can be told from the decode's. Unmeasured runs: no latency sample is taken.
                let prefill = if meter.measures() && model.arch.generates() && params.num_tokens > 1
                {
                    let prefill_only = BenchParams {
                        num_tokens: 1,
                        ..*params
                    };
                    let (started, window) = (Instant::now(), meter.start());
                    let mut prefill_runs = 0;
                    while prefill_runs == 0 || started.elapsed().as_secs_f64() < MIN_ENERGY_WINDOW_S
                    {
                        if e3pipe::interrupt::interrupted() {
                            return Err(Error::Interrupted);
                        }
                        run_once(
                            model,
                            &ids,
                            mask,
                            &prefill_only,
                            &mut Samples::default(),
                            false,
                            false,
                        )?;
                        prefill_runs += 1;
                    }
                    meter.stop(window).map(|(joules, seconds)| EnergyWindow {
                        joules,
                        seconds,
                        runs: prefill_runs,
                    })
                } else {
                    None
                };
                let window_of = |(joules, seconds): (f64, f64), runs| EnergyWindow {
                    joules,
                    seconds,
                    runs,
                };
                let energy = measured.map(|m| EnergyWindows {
                    measured: window_of(m, energy_runs),
                    idle: idle.flatten().map(|i| window_of(i, 0)),
                    prefill,
                });
                let state = gpu.as_ref().and_then(|g| {
                    let end = gpu::sample(&g.parent_uuid)?;
                    Some(GpuWindow {
                        start: state_start.clone().unwrap_or_default(),
                        end,
                        other_processes: gpu::others_on(&g.parent_uuid),
                    })
                });
                return Ok(Measured {
                    samples,
                    stopped_by: reason,
                    energy,
                    state,
                    outputs,
                });
            }
            if e3pipe::interrupt::interrupted() {
                return Err(Error::Interrupted);
            }
            // The first measured run's outputs, when asked for (`record_outputs`).
            let produced = run_once(
                model,
                &ids,
                mask,
                params,
                &mut samples,
                true,
                params.record_outputs && runs == 0,
            )?;
            if produced.is_some() {
                outputs = produced;
            }
            runs += 1;
        }
    });
    // Without a reset the high-water mark would include earlier points and model loading: report none.
    result.peak_rss_bytes = if rss_reset {
        memory::peak_rss_bytes()
    } else {
        None
    };
    result.rss_baseline_bytes = result
        .peak_rss_bytes
        .and_then(|_| memory::baseline_rss_bytes());
    if cuda_index.is_some() {
        result.cuda_peak_bytes = if cuda_measured {
            cuda_index.and_then(cuda_memory::peak_bytes)
        } else {
            None
        };
        result.cuda_reserved_peak_bytes = if cuda_measured {
            cuda_index.and_then(cuda_memory::reserved_peak_bytes)
        } else {
            None
        };
        result.memory_source = if result.cuda_peak_bytes.is_some() {
            MemorySource::CudaAllocator
        } else {
            e3pipe::output::warn(&format!(
                "{}@{context_length}: the GPU allocator's peak could not be read; `max_memory_gb` is left empty rather than filled with host memory",
                model.name
            ));
            MemorySource::Unavailable
        };
    }
    match outcome {
        Ok(Measured {
            samples,
            stopped_by,
            energy: used,
            state,
            outputs,
        }) => {
            if params.record_outputs {
                result.outputs = Some(recorded_outputs(model, &ids, outputs.as_ref()));
            }
            if let Some(state) = &state {
                result.warnings = state.warnings();
            }
            result.gpu_state = state;
            result.stopped_by = Some(stopped_by);
            // Generators per generated token, encoders per input token.
            let tokens = if model.arch.generates() {
                result.num_tokens
            } else {
                context_length
            };
            result.energy = used.and_then(|windows| {
                Energy::of(&windows, params.batch_size, tokens, model.arch.generates())
            });
            // Runs taken until the interval was narrow: its published interval is widened (see `stats`).
            let adaptive = params.target_rel_ci.is_some();
            for (metric, values) in samples.by_metric {
                let summary = if adaptive {
                    summarize_after_adaptive_stop(&values)
                } else {
                    summarize(&values)
                };
                if let Some(summary) = summary {
                    result.stats.insert(metric.to_string(), summary);
                }
            }
        }
        Err(Error::Interrupted) => return Err(Error::Interrupted),
        Err(e) => result = failed(result, &e),
    }
    Ok(finish(result))
}

/// A point that could not be measured: `oom` when memory ran out (libtorch's allocators and ours say so),
/// `error` otherwise, with the message as the reason.
pub fn failed(mut result: PointResult, e: &Error) -> PointResult {
    let message = e.to_string();
    let lower = message.to_lowercase();
    // cuBLAS reports a failed workspace allocation as `CUBLAS_STATUS_ALLOC_FAILED`, cuDNN as
    // `CUDNN_STATUS_ALLOC_FAILED`: memory, not a bug.
    result.status = if lower.contains("out of memory")
        || lower.contains("can't allocate")
        || lower.contains("status_alloc_failed")
    {
        Status::Oom
    } else {
        Status::Error
    };
    result.reason = Some(message);
    result
}

/// Runs `f`, turning a libtorch panic (tch's non-`f_` functions panic on C++ exceptions, e.g. CUDA OOM) into an
/// error, so one failing point never takes the others down.
pub fn catch_torch<T>(f: impl FnOnce() -> Result<T>) -> Result<T> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    match outcome {
        Ok(r) => r,
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| {
                    payload
                        .downcast_ref::<&str>()
                        .map(std::string::ToString::to_string)
                })
                .unwrap_or_else(|| "libtorch failed".into());
            let first = clean_torch_message(&message);
            Err(Error::Step {
                step: "bench".into(),
                message: first,
            })
        }
    }
}

/// A libtorch failure as one readable line: tch's panics wrap the C++ message in `called Result::unwrap() on an
/// Err value: Torch("…")` with escaped newlines and a C++ backtrace; keep the message.
fn clean_torch_message(message: &str) -> String {
    let inner = message
        .split_once("Torch(\"")
        .map_or(message, |(_, rest)| rest);
    let first = inner
        .split("\\n")
        .next()
        .unwrap_or(inner)
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("libtorch failed");
    let first = first
        .split(" (Triggered internally")
        .next()
        .unwrap_or(first)
        .trim_end_matches(['"', ')'])
        .trim();
    if first.is_empty() {
        "libtorch failed".into()
    } else {
        first.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use e3pipe::models::spec::{DTypeChoice, DeviceChoice, ModelSource, ModelSpec, read_hf_config};

    fn fixture(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures")
            .join(name)
    }

    /// One measured run, no warm-up, `num_tokens` generated.
    fn one_run(num_tokens: usize) -> BenchParams {
        BenchParams {
            num_tokens,
            batch_size: 1,
            num_runs: 1,
            warmup_runs: 0,
            min_duration_s: 0.0,
            threads: None,
            target_rel_ci: None,
            max_runs: None,
            max_duration_s: None,
            read_back: false,
            record_outputs: false,
            warmup_s: None,
        }
    }

    #[test]
    fn allocation_failures_of_cuda_libraries_are_oom_points() {
        let record = || {
            e3pipe::bench::result::Unmeasured {
                model: "m",
                arch: Arch::Decoder,
                params: &one_run(2),
                dtype: "fp16",
                device: "cuda:0 (test)".into(),
                threads: 1,
                weights: String::new(),
                run_id: "r",
            }
            .result(512, Status::Error, "")
        };
        let cublas = Error::Torch(
            "CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`".into(),
        );
        assert_eq!(failed(record(), &cublas).status, Status::Oom);
        let other = Error::Torch(
            "CUDA error: CUBLAS_STATUS_EXECUTION_FAILED when calling `cublasGemmEx`".into(),
        );
        assert_eq!(failed(record(), &other).status, Status::Error);
    }

    #[test]
    fn libtorch_panics_read_as_one_line() {
        let raw = r#"called `Result::unwrap()` on an `Err` value: Torch("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 256000000000000 bytes. Error code 12 (Cannot allocate memory)\nframe #0: c10::ThrowEnforceNotMet(char const*, int, char const*, std::string const&, void const*) + 0x68 (0x7f in libc10.so)")"#;
        let clean = clean_torch_message(raw);
        assert!(clean.starts_with("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 256000000000000 bytes"), "{clean}");
        assert!(
            !clean.contains("frame #0") && !clean.contains("unwrap"),
            "{clean}"
        );
    }

    #[test]
    fn native_models_get_no_mask_and_scripts_one() {
        let dir = fixture("tiny-bert");
        let config = read_hf_config(&dir).unwrap();
        let spec = ModelSpec {
            file: dir.join("config.json"),
            name: "b".into(),
            arch: Arch::Encoder,
            source: ModelSource::HfDir { dir: dir.clone() },
            config: Some(config),
            tokenizer: None,
            dtype: DTypeChoice::Fp32,
            device: DeviceChoice::Cpu,
        };
        let native = Model::load(&spec, tch::Device::Cpu, Kind::Float).unwrap();
        // Rows are never padded: a mask would only slow attention down (on CUDA it rules out flash kernels).
        assert!(input_mask(&native, 2, 16).is_none());
        let script = Model::load(
            &ModelSpec {
                source: ModelSource::TorchScript {
                    file: fixture("tiny-bert-encoder.pt"),
                },
                config: None,
                ..spec
            },
            tch::Device::Cpu,
            Kind::Float,
        )
        .unwrap();
        let mask = input_mask(&script, 2, 16).unwrap();
        assert_eq!(mask.size(), [2, 16]);
        let params = one_run(0);
        assert_eq!(warmup_runs(&native, &params), 0);
        assert_eq!(warmup_runs(&script, &params), TORCHSCRIPT_MIN_WARMUP_RUNS);
    }
}
