//! Which device a model config resolves to, and the hardware's name for results and cache keys, decided without
//! loading libtorch: the orchestrating `e3pipe` process never links it (its static initialisers alone cost ~0.3 s
//! per start), so a run with nothing to compute stays nearly free. The worker that measures checks the choice
//! against libtorch itself (`device::cuda_available`) before timing anything.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::models::spec::DeviceChoice;

/// Where a point runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Device {
    #[serde(rename = "cpu")]
    Cpu,
    #[serde(rename = "cuda")]
    Cuda(usize),
}

/// CUDA is usable when libtorch's CUDA libraries are installed (the full wheel, `make setup-cuda`) and an NVIDIA
/// driver is loaded. `E3PIPE_NO_CUDA` or an empty `CUDA_VISIBLE_DEVICES` force the CPU.
pub fn cuda_device_count() -> usize {
    if std::env::var_os("E3PIPE_NO_CUDA").is_some()
        || std::env::var("CUDA_VISIBLE_DEVICES").is_ok_and(|v| v.trim().is_empty())
    {
        return 0;
    }
    let lib = crate::models::libtorch::dir().join("lib");
    // libtorch_cuda.so needs cuBLAS from the `nvidia-cublas` wheel, which the slim CPU install leaves out.
    let cublas = lib.join("../../nvidia/cu13/lib");
    let has_stack = std::fs::read_dir(&cublas).is_ok_and(|d| {
        d.filter_map(std::result::Result::ok)
            .any(|e| e.file_name().to_string_lossy().starts_with("libcublas.so"))
    });
    if !has_stack || !Path::new("/proc/driver/nvidia/version").exists() {
        return 0;
    }
    gpus().len()
}

/// One GPU as `nvidia-smi` reports it.
#[derive(Debug, Clone, PartialEq)]
struct Gpu {
    name: String,
    uuid: String,
    memory_total: String,
    compute_cap: String,
}

/// The GPUs libtorch sees, in its order. The worker runs with `CUDA_DEVICE_ORDER=PCI_BUS_ID` (see
/// `CUDA_ORDER_ENV`), so CUDA numbers devices as `nvidia-smi` does; `cuda:N` is then the N-th entry of
/// `CUDA_VISIBLE_DEVICES` when set (an index or a `GPU-…` UUID), else the N-th GPU. An entry that names no GPU
/// (a MIG instance, a typo) leaves that device unidentified: an error when it is used, never a shared name.
fn gpus() -> &'static [Result<Gpu, String>] {
    static GPUS: std::sync::OnceLock<Vec<Result<Gpu, String>>> = std::sync::OnceLock::new();
    GPUS.get_or_init(|| {
        let listing = std::process::Command::new("nvidia-smi")
            .args([
                "--query-gpu=name,uuid,memory.total,compute_cap",
                "--format=csv,noheader",
            ])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        visible_gpus(
            &parse_gpus(&listing),
            std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref(),
        )
    })
}

/// The environment the measuring worker runs with, so that libtorch's `cuda:N` is `gpus()[N]`.
pub const CUDA_ORDER_ENV: (&str, &str) = ("CUDA_DEVICE_ORDER", "PCI_BUS_ID");

fn parse_gpus(listing: &str) -> Vec<Gpu> {
    listing
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            (f.len() >= 4 && !f[0].is_empty()).then(|| Gpu {
                name: f[0].to_string(),
                uuid: f[1].to_string(),
                memory_total: f[2].to_string(),
                compute_cap: f[3].to_string(),
            })
        })
        .collect()
}

fn visible_gpus(all: &[Gpu], visible: Option<&str>) -> Vec<Result<Gpu, String>> {
    let Some(visible) = visible else {
        return all.iter().cloned().map(Ok).collect();
    };
    visible
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            let found = match v.parse::<usize>() {
                Ok(i) => all.get(i),
                Err(_) => all.iter().find(|g| g.uuid == v || (v.len() >= 8 && g.uuid.starts_with(v))),
            };
            found.cloned().ok_or_else(|| {
                format!(
                    "`CUDA_VISIBLE_DEVICES` entry `{v}` names none of the {} GPU(s) `nvidia-smi` lists; set it to indices or `GPU-…` UUIDs from `nvidia-smi -L`",
                    all.len()
                )
            })
        })
        .collect()
}

/// The device a model config asks for, falling back from `auto` to the CPU.
pub fn resolve(choice: DeviceChoice) -> Result<Device, String> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => Ok(if cuda_device_count() > 0 {
            Device::Cuda(0)
        } else {
            Device::Cpu
        }),
        DeviceChoice::Cuda(i) => {
            let count = cuda_device_count();
            if count == 0 {
                return Err(format!(
                    "device `cuda:{i}` requested but CUDA is not available (install the full torch wheel: `make setup-cuda`)"
                ));
            }
            if i >= count {
                return Err(format!(
                    "device `cuda:{i}` requested but only {count} CUDA device(s) exist"
                ));
            }
            Ok(Device::Cuda(i))
        }
    }
}

/// A human name for the hardware, for results and figures: `cpu (AMD EPYC 7B13)`, `cuda:0 (NVIDIA H200)`.
pub fn describe(device: Device) -> String {
    match device {
        Device::Cuda(i) => match gpus().get(i) {
            Some(Ok(gpu)) => format!("cuda:{i} ({})", gpu.name),
            _ => format!("cuda:{i} (unidentified)"),
        },
        Device::Cpu => format!("cpu ({})", cpu_identity().model_name),
    }
}

/// What of the hardware changes a measurement, for cache keys: a point is never served to a machine that would
/// run different kernels (another CPU generation, ISA, core count or GPU).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HardwareId {
    Cpu(CpuIdentity),
    Cuda {
        name: String,
        memory_total: String,
        compute_capability: String,
    },
}

/// The CPU as libtorch's kernel dispatch sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuIdentity {
    pub arch: String,
    pub vendor: String,
    pub model_name: String,
    /// `family/model/stepping` (x86) or implementer/part/revision (ARM).
    pub family_model_stepping: String,
    pub logical_cpus: usize,
    /// The instruction-set features `ATen` and oneDNN dispatch on (avx2, avx512*, amx*, sve, ...), sorted.
    pub isa: Vec<String>,
    /// `ATEN_CPU_CAPABILITY`, which forces a lower kernel set, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aten_cpu_capability: Option<String>,
}

/// The identity of the device a point runs on; an error (with the fix) when a GPU cannot be identified.
/// The UUID of a CUDA device as `nvidia-smi` lists it (what NVML finds it by); `None` for the CPU.
pub fn gpu_uuid(device: Device) -> Option<String> {
    match device {
        Device::Cuda(i) => gpus().get(i)?.as_ref().ok().map(|g| g.uuid.clone()),
        Device::Cpu => None,
    }
}

pub fn identify(device: Device) -> Result<HardwareId, String> {
    match device {
        Device::Cpu => Ok(HardwareId::Cpu(cpu_identity().clone())),
        Device::Cuda(i) => match gpus().get(i) {
            Some(Ok(gpu)) => Ok(HardwareId::Cuda {
                name: gpu.name.clone(),
                memory_total: gpu.memory_total.clone(),
                compute_capability: gpu.compute_cap.clone(),
            }),
            Some(Err(why)) => Err(format!("cannot identify `cuda:{i}`: {why}")),
            None => Err(format!(
                "cannot identify `cuda:{i}`: `nvidia-smi` lists {} visible GPU(s); check that `nvidia-smi` runs and that `CUDA_VISIBLE_DEVICES` names the GPU",
                gpus().len()
            )),
        },
    }
}

/// Intra-op threads when a bench config names none: one per available logical CPU (libtorch itself would pick
/// physical cores), set explicitly in the worker so the cache key and the measurement agree.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

fn cpu_identity() -> &'static CpuIdentity {
    static ID: std::sync::OnceLock<CpuIdentity> = std::sync::OnceLock::new();
    ID.get_or_init(|| {
        parse_cpuinfo(
            &std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default(),
            std::env::var("ATEN_CPU_CAPABILITY").ok(),
        )
    })
}

/// Feature flags that select different CPU kernels in ATen/oneDNN (x86 and ARM names).
fn dispatch_relevant(flag: &str) -> bool {
    matches!(
        flag,
        "avx" | "avx2" | "fma" | "f16c" | "sse4_2" | "asimd" | "bf16" | "i8mm" | "fphp" | "asimdhp"
    ) || ["avx512", "amx", "avx_vnni", "avx_ne", "sve"]
        .iter()
        .any(|p| flag.starts_with(p))
}

fn parse_cpuinfo(text: &str, aten_cpu_capability: Option<String>) -> CpuIdentity {
    let field = |name: &str| {
        text.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default()
    };
    let first = |names: &[&str]| {
        names
            .iter()
            .map(|n| field(n))
            .find(|v| !v.is_empty())
            .unwrap_or_default()
    };
    let flags = first(&["flags", "Features"]);
    let mut isa: Vec<String> = flags
        .split_whitespace()
        .filter(|f| dispatch_relevant(f))
        .map(str::to_string)
        .collect();
    isa.sort();
    isa.dedup();
    let model_name = first(&["model name", "Model name", "cpu model"]);
    CpuIdentity {
        arch: std::env::consts::ARCH.to_string(),
        vendor: first(&["vendor_id", "CPU implementer"]),
        model_name: if model_name.is_empty() {
            std::env::consts::ARCH.to_string()
        } else {
            model_name
        },
        family_model_stepping: [
            first(&["cpu family", "CPU architecture"]),
            first(&["model", "CPU part"]),
            first(&["stepping", "CPU revision"]),
        ]
        .join("/"),
        logical_cpus: text
            .lines()
            .filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor"))
            .count()
            .max(1),
        isa,
        aten_cpu_capability: aten_cpu_capability.filter(|v| !v.trim().is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPYC: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC 7B13\nstepping\t: 1\nflags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw amx_tile sha_ni\n\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n";

    #[test]
    fn cpu_identity_has_generation_isa_and_count() {
        let id = parse_cpuinfo(EPYC, None);
        assert_eq!(id.vendor, "AuthenticAMD");
        assert_eq!(id.model_name, "AMD EPYC 7B13");
        assert_eq!(id.family_model_stepping, "25/1/1");
        assert_eq!(id.logical_cpus, 2);
        assert_eq!(
            id.isa,
            [
                "amx_tile", "avx", "avx2", "avx512bw", "avx512f", "fma", "sse4_2"
            ]
        );
        // Another EPYC generation with the same marketing name prefix is another machine.
        let other = parse_cpuinfo(&EPYC.replace("cpu family\t: 25", "cpu family\t: 23"), None);
        assert_ne!(id, other);
        let fewer = parse_cpuinfo(&EPYC.replace(" avx512f avx512bw", ""), None);
        assert_ne!(id, fewer);
        assert_ne!(id, parse_cpuinfo(EPYC, Some("avx2".into())));
    }

    #[test]
    fn gpus_follow_cuda_visible_devices_by_index_or_uuid() {
        let all = parse_gpus(
            "NVIDIA H200, GPU-aaaa1111-0000, 143771 MiB, 9.0\nNVIDIA A100-SXM4-80GB, GPU-bbbb2222-0000, 81920 MiB, 8.0\n",
        );
        assert_eq!(all.len(), 2);
        let names = |v: Option<&str>| -> Vec<Result<String, ()>> {
            visible_gpus(&all, v)
                .into_iter()
                .map(|g| g.map(|g| g.name).map_err(|_| ()))
                .collect()
        };
        assert_eq!(
            names(None),
            [Ok("NVIDIA H200".into()), Ok("NVIDIA A100-SXM4-80GB".into())]
        );
        assert_eq!(names(Some("1")), [Ok("NVIDIA A100-SXM4-80GB".to_string())]);
        assert_eq!(
            names(Some("GPU-bbbb2222-0000,0")),
            [Ok("NVIDIA A100-SXM4-80GB".into()), Ok("NVIDIA H200".into())]
        );
        // A MIG instance or a typo is not silently some GPU.
        assert_eq!(names(Some("MIG-xyz")), [Err(())]);
        assert_eq!(names(Some("7")), [Err(())]);
    }

    #[test]
    fn a_real_h200s_listing_parses_into_its_identity() {
        // `nvidia-smi --query-gpu=name,uuid,memory.total,compute_cap --format=csv,noheader` on an H200 node
        // (driver 580.159.04, 2026-11-29), byte for byte.
        let line = "NVIDIA H200, GPU-8e0d22e5-7cfc-30e4-38c5-9e546ce1f1e6, 143771 MiB, 9.0\n";
        assert_eq!(
            parse_gpus(line),
            [Gpu {
                name: "NVIDIA H200".into(),
                uuid: "GPU-8e0d22e5-7cfc-30e4-38c5-9e546ce1f1e6".into(),
                memory_total: "143771 MiB".into(),
                compute_cap: "9.0".into(),
            }]
        );
        // `CUDA_VISIBLE_DEVICES` by that UUID finds it.
        let gpus = parse_gpus(line);
        let found = visible_gpus(&gpus, Some("GPU-8e0d22e5-7cfc-30e4-38c5-9e546ce1f1e6"));
        assert!(matches!(found.as_slice(), [Ok(g)] if g.name == "NVIDIA H200"));
    }
}
