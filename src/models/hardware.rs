//! Which device a model config resolves to, and the hardware's name for results and cache keys, decided without
//! loading libtorch: the orchestrating `e3pipe` process never links it (its static initialisers alone cost ~0.3 s
//! per start), so a run with nothing to compute stays nearly free. The worker that measures checks the choice
//! against libtorch itself (`device::cuda_available`) before timing anything.

use serde::{Deserialize, Serialize};

use crate::models::gpu::{self, Gpu};
use crate::models::runtime::Probe;
use crate::models::spec::DeviceChoice;

/// Where a point runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Device {
    #[serde(rename = "cpu")]
    Cpu,
    #[serde(rename = "cuda")]
    Cuda(usize),
}

/// Whether an NVIDIA driver is loaded on this machine.
pub fn driver_present() -> bool {
    std::path::Path::new("/proc/driver/nvidia/version").exists()
}

/// `E3PIPE_NO_CUDA` or an empty `CUDA_VISIBLE_DEVICES` hide every GPU.
fn cuda_hidden() -> Option<&'static str> {
    if std::env::var_os("E3PIPE_NO_CUDA").is_some() {
        Some("`E3PIPE_NO_CUDA` is set")
    } else if std::env::var("CUDA_VISIBLE_DEVICES").is_ok_and(|v| v.trim().is_empty()) {
        Some("`CUDA_VISIBLE_DEVICES` is empty")
    } else {
        None
    }
}

/// The GPUs libtorch sees, in its order. The worker runs with `CUDA_DEVICE_ORDER=PCI_BUS_ID` (see
/// `CUDA_ORDER_ENV`), so CUDA numbers devices as `nvidia-smi` does; `cuda:N` is then the N-th entry of
/// `CUDA_VISIBLE_DEVICES` when set (an index, a `GPU-…` or `MIG-…` UUID), else the N-th GPU. A failed query is an
/// error (an old driver without `compute_cap`), never an empty list.
fn gpus() -> Result<&'static [Result<Gpu, String>], String> {
    static GPUS: std::sync::OnceLock<Result<Vec<Result<Gpu, String>>, String>> =
        std::sync::OnceLock::new();
    GPUS.get_or_init(|| {
        let query = format!("--query-gpu={}", gpu::IDENTITY_QUERY);
        let all = gpu::parse_identity(&gpu::nvidia_smi(&[&query, "--format=csv,noheader"])?)?;
        let cuda_visible = std::env::var("CUDA_VISIBLE_DEVICES").ok();
        // MIG slices are only in `nvidia-smi -L`.
        let migs = if cuda_visible.as_deref().is_some_and(|v| v.contains("MIG-")) {
            gpu::parse_mig_listing(&gpu::nvidia_smi(&["-L"])?)
        } else {
            Vec::new()
        };
        Ok(gpu::visible(&all, &migs, cuda_visible.as_deref()))
    })
    .as_ref()
    .map(Vec::as_slice)
    .map_err(Clone::clone)
}

/// The environment the measuring worker runs with, so that libtorch's `cuda:N` is `gpus()[N]`.
pub const CUDA_ORDER_ENV: (&str, &str) = ("CUDA_DEVICE_ORDER", "PCI_BUS_ID");

/// The device a model config asks for. `probe` asks the worker whether libtorch's CUDA backend loads here (only
/// when a GPU could be used: CPU configs and machines without an NVIDIA driver never start it). `auto` falls back
/// to the CPU, with one warning when a driver is loaded but CUDA cannot be used; `cuda` is an error that says why.
/// A GPU that CUDA can use but `nvidia-smi` cannot identify is an error either way, never a silent CPU run.
pub fn resolve(
    choice: DeviceChoice,
    probe: &dyn Fn() -> Result<Probe, String>,
) -> Result<Device, String> {
    resolve_on(choice, driver_present(), probe)
}

fn resolve_on(
    choice: DeviceChoice,
    driver: bool,
    probe: &dyn Fn() -> Result<Probe, String>,
) -> Result<Device, String> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu),
        DeviceChoice::Auto => {
            if cuda_hidden().is_some() || !driver {
                return Ok(Device::Cpu);
            }
            match usable_gpus(driver, probe) {
                Ok(n) if n > 0 => Ok(Device::Cuda(0)),
                Ok(_) => {
                    warn_once(
                        "an NVIDIA driver is loaded but no GPU is visible; `device: auto` measures on the CPU",
                    );
                    Ok(Device::Cpu)
                }
                Err(Unusable::Unidentified(why)) => Err(format!(
                    "`device: auto`: CUDA is usable but the GPU cannot be identified: {why}"
                )),
                Err(Unusable::Why(why)) => {
                    warn_once(&format!(
                        "an NVIDIA driver is loaded but `device: auto` measures on the CPU: {why}"
                    ));
                    Ok(Device::Cpu)
                }
            }
        }
        DeviceChoice::Cuda(i) => {
            if let Some(hidden) = cuda_hidden() {
                return Err(format!("device `cuda:{i}` requested but {hidden}"));
            }
            let count = usable_gpus(driver, probe).map_err(|e| {
                let (Unusable::Why(why) | Unusable::Unidentified(why)) = e;
                format!("device `cuda:{i}` requested but {why}")
            })?;
            if i >= count {
                return Err(format!(
                    "device `cuda:{i}` requested but only {count} CUDA device(s) are visible"
                ));
            }
            Ok(Device::Cuda(i))
        }
    }
}

/// Why no GPU is usable: CUDA is not (`Why`), or it is but `nvidia-smi` cannot say which GPU it is.
enum Unusable {
    Why(String),
    Unidentified(String),
}

/// How many GPUs libtorch can use here, or why none.
fn usable_gpus(driver: bool, probe: &dyn Fn() -> Result<Probe, String>) -> Result<usize, Unusable> {
    let probe = probe().map_err(Unusable::Why)?;
    if !probe.cuda_loaded {
        return Err(Unusable::Why(format!(
            "libtorch's CUDA backend did not load: {} (a CPU-only install? `make setup-cuda` installs the CUDA libraries)",
            probe.cuda_error.as_deref().unwrap_or("no reason given")
        )));
    }
    if !driver {
        return Err(Unusable::Why(
            "no NVIDIA driver is loaded (`/proc/driver/nvidia/version` is missing)".into(),
        ));
    }
    if probe.device_count == 0 {
        return Err(Unusable::Why(
            "libtorch's CUDA backend loaded but sees no device".into(),
        ));
    }
    let listed = gpus().map_err(Unusable::Unidentified)?;
    Ok(listed.len().min(probe.device_count))
}

fn warn_once(message: &str) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| crate::output::warn(message));
}

/// A human name for the hardware, for results and figures: `cpu (AMD EPYC 7B13)`, `cuda:0 (NVIDIA H200)`,
/// `cuda:0 (NVIDIA A100-SXM4-40GB MIG 3g.20gb)`.
pub fn describe(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i} ({})", gpu_name(i)),
        Device::Cpu => format!("cpu ({})", cpu_identity().model_name),
    }
}

/// The device as a cache key names it: a GPU without its index, so `cuda:0` and `cuda:1` of one model share points.
pub fn key_device(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda ({})", gpu_name(i)),
        Device::Cpu => describe(device),
    }
}

fn gpu_name(i: usize) -> String {
    match gpus().ok().and_then(|g| g.get(i)) {
        Some(Ok(gpu)) => match &gpu.mig_profile {
            Some(profile) => format!("{} MIG {profile}", gpu.name),
            None => gpu.name.clone(),
        },
        _ => "unidentified".into(),
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
        /// The MIG profile (`3g.40gb`) of a slice; absent for a whole GPU.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mig_profile: Option<String>,
        /// The driver changes kernels' code generation (PTX JIT) and their scheduling.
        driver: String,
        /// The enforced power limit sets the clocks a busy GPU sustains.
        power_limit: String,
        /// Batch-1 eager decode is launch-bound: the host CPU sets the pace of the GPU's work.
        host_cpu: HostCpu,
    },
}

/// The host CPU of a GPU point: its generation, not its core count (the launch path is one thread).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostCpu {
    pub model_name: String,
    pub family_model_stepping: String,
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

/// The GPU (or MIG slice) `cuda:N` is, as `nvidia-smi` lists it; `None` for the CPU or an unlisted device.
pub fn gpu_of(device: Device) -> Option<Gpu> {
    match device {
        Device::Cuda(i) => gpus().ok()?.get(i)?.as_ref().ok().cloned(),
        Device::Cpu => None,
    }
}

/// The UUID of a CUDA device as `nvidia-smi` lists it (what NVML finds it by); `None` for the CPU.
pub fn gpu_uuid(device: Device) -> Option<String> {
    gpu_of(device).map(|g| g.uuid)
}

/// The identity of the device a point runs on; an error (with the fix) when a GPU cannot be identified.
pub fn identify(device: Device) -> Result<HardwareId, String> {
    match device {
        Device::Cpu => Ok(HardwareId::Cpu(cpu_identity().clone())),
        Device::Cuda(i) => {
            // Which GPUs this process was given is half of the answer when one cannot be identified.
            let given = std::env::var("CUDA_VISIBLE_DEVICES")
                .map(|v| format!(" (CUDA_VISIBLE_DEVICES={v})"))
                .unwrap_or_default();
            let listed =
                gpus().map_err(|why| format!("cannot identify `cuda:{i}`{given}: {why}"))?;
            match listed.get(i) {
                Some(Ok(gpu)) => Ok(gpu_identity(gpu, cpu_identity())),
                Some(Err(why)) => Err(format!("cannot identify `cuda:{i}`{given}: {why}")),
                None => Err(format!(
                    "cannot identify `cuda:{i}`: `nvidia-smi` lists {} visible GPU(s); check that `CUDA_VISIBLE_DEVICES` names the GPU",
                    listed.len()
                )),
            }
        }
    }
}

/// A GPU's key identity: what it is, not which of several identical ones (no index, no UUID).
fn gpu_identity(gpu: &Gpu, host: &CpuIdentity) -> HardwareId {
    HardwareId::Cuda {
        name: gpu.name.clone(),
        memory_total: gpu.memory_total.clone(),
        compute_capability: gpu.compute_cap.clone(),
        mig_profile: gpu.mig_profile.clone(),
        driver: gpu.driver.clone(),
        power_limit: gpu.power_limit.clone(),
        host_cpu: HostCpu {
            model_name: host.model_name.clone(),
            family_model_stepping: host.family_model_stepping.clone(),
        },
    }
}

/// The host CPU's identity, for `e3pipe identify` and GPU points.
pub fn host_cpu() -> &'static CpuIdentity {
    cpu_identity()
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
        let all = gpu::parse_identity(
            "NVIDIA H200, GPU-aaaa1111-0000, 143771 MiB, 9.0, 580.159.04, 700.00 W, [N/A]\nNVIDIA A100-SXM4-80GB, GPU-bbbb2222-0000, 81920 MiB, 8.0, 580.159.04, 400.00 W, Disabled\n",
        )
        .unwrap();
        assert_eq!(all.len(), 2);
        let names = |v: Option<&str>| -> Vec<Result<String, ()>> {
            gpu::visible(&all, &[], v)
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
        // A MIG slice nobody listed, or a typo, is not silently some GPU.
        assert_eq!(names(Some("MIG-xyz")), [Err(())]);
        assert_eq!(names(Some("7")), [Err(())]);
    }

    /// `nvidia-smi --query-gpu=name,uuid,memory.total,compute_cap --format=csv,noheader` on an H200 node (driver
    /// 580.159.04, 2026-11-29), with the driver and power-limit fields of the identity query appended.
    const H200: &str = "NVIDIA H200, GPU-8e0d22e5-7cfc-30e4-38c5-9e546ce1f1e6, 143771 MiB, 9.0, 580.159.04, 700.00 W, Disabled\n";

    #[test]
    fn identical_gpus_share_a_key_and_the_driver_or_power_limit_changes_it() {
        let host = parse_cpuinfo(EPYC, None);
        let one = gpu::parse_identity(H200).unwrap().remove(0);
        let other = Gpu {
            uuid: "GPU-00000000-1111-2222-3333-444444444444".into(),
            parent_uuid: "GPU-00000000-1111-2222-3333-444444444444".into(),
            ..one.clone()
        };
        // cuda:0 and cuda:1 of one model: the same identity.
        assert_eq!(gpu_identity(&one, &host), gpu_identity(&other, &host));
        let hash = |g: &Gpu, h: &CpuIdentity| serde_json::to_string(&gpu_identity(g, h)).unwrap();
        let base = hash(&one, &host);
        let driver = Gpu {
            driver: "570.86.15".into(),
            ..one.clone()
        };
        let power = Gpu {
            power_limit: "500.00 W".into(),
            ..one.clone()
        };
        let mig = Gpu {
            mig_profile: Some("3g.71gb".into()),
            ..one.clone()
        };
        for changed in [hash(&driver, &host), hash(&power, &host), hash(&mig, &host)] {
            assert_ne!(base, changed);
        }
        // Another host CPU generation drives the same GPU at another pace.
        let older = parse_cpuinfo(&EPYC.replace("cpu family\t: 25", "cpu family\t: 23"), None);
        assert_ne!(base, hash(&one, &older));
        // The host's core count and ISA do not change GPU kernels.
        let fewer = parse_cpuinfo(&EPYC.replace(" avx512f avx512bw", ""), None);
        assert_eq!(base, hash(&one, &fewer));
        let found = gpu::visible(
            &[one],
            &[],
            Some("GPU-8e0d22e5-7cfc-30e4-38c5-9e546ce1f1e6"),
        );
        assert!(matches!(found.as_slice(), [Ok(g)] if g.name == "NVIDIA H200"));
    }

    fn probe(loaded: bool, error: Option<&str>) -> Probe {
        Probe {
            libtorch_dir: "/opt/torch".into(),
            libtorch_version: "2.11.0+cu128".into(),
            cuda_loaded: loaded,
            cuda_error: error.map(str::to_string),
            device_count: usize::from(loaded),
            cuda_runtime: None,
            cudnn: None,
        }
    }

    #[test]
    fn cuda_requested_where_the_backend_does_not_load_names_the_loaders_message() {
        if cuda_hidden().is_some() {
            return;
        }
        let failed = probe(
            false,
            Some("libcublas.so.12: cannot open shared object file: No such file or directory"),
        );
        let e = resolve(DeviceChoice::Cuda(0), &|| Ok(failed.clone())).unwrap_err();
        assert!(
            e.contains("libcublas.so.12: cannot open shared object file"),
            "{e}"
        );
        assert!(
            e.starts_with("device `cuda:0` requested but libtorch's CUDA backend did not load"),
            "{e}"
        );
        // The CPU never asks.
        assert_eq!(
            resolve(DeviceChoice::Cpu, &|| Err("asked".into())),
            Ok(Device::Cpu)
        );
        // `auto` without a driver does not start the worker to ask.
        assert_eq!(
            resolve_on(DeviceChoice::Auto, false, &|| Err("asked".into())),
            Ok(Device::Cpu)
        );
        let loaded = probe(true, None);
        let e = resolve_on(DeviceChoice::Cuda(0), false, &|| Ok(loaded.clone())).unwrap_err();
        assert!(e.contains("no NVIDIA driver"), "{e}");
        // A driver but a CPU-only install: `auto` measures on the CPU (with a warning).
        assert_eq!(
            resolve_on(DeviceChoice::Auto, true, &|| Ok(failed.clone())),
            Ok(Device::Cpu)
        );
        // CUDA usable, the GPU unidentifiable (here: no `nvidia-smi`): an error, not a silent CPU run.
        if gpus().is_err() {
            let e = resolve_on(DeviceChoice::Auto, true, &|| Ok(loaded.clone())).unwrap_err();
            assert!(
                e.contains("cannot be identified") && e.contains("nvidia-smi"),
                "{e}"
            );
        }
    }
}
