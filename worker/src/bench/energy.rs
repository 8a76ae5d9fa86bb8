//! Energy of a point's measured runs, from the hardware's own counters and never estimated:
//! - CUDA: NVML's total-energy counter of the GPU the point ran on (by UUID, so `CUDA_VISIBLE_DEVICES` cannot
//!   point it at another GPU); where the GPU has none (pre-Volta), its power readings integrated every 5 ms.
//!   `libnvidia-ml.so.1` is loaded at run time, so nothing is built against a driver.
//! - CPU: the RAPL package counters under `/sys/class/powercap` where the kernel exposes them and they are
//!   readable (they count the whole socket, other processes included; the source says so).
//! - Otherwise nothing: the fields stay empty and `energy_source` says why.
//!
//! The window is the measured runs only (after the warm-ups), the same runs the latencies come from.

use std::ffi::{CString, c_void};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Where the kernel exposes RAPL.
pub const POWERCAP: &str = "/sys/class/powercap";

type NvmlDevice = *mut c_void;
type TotalEnergy = unsafe extern "C" fn(NvmlDevice, *mut u64) -> i32;
type PowerUsage = unsafe extern "C" fn(NvmlDevice, *mut u32) -> i32;

/// Where RAPL is read: `E3PIPE_POWERCAP` where sysfs is mounted elsewhere (some containers), else `POWERCAP`.
fn powercap_root() -> PathBuf {
    std::env::var_os("E3PIPE_POWERCAP").map_or_else(|| PathBuf::from(POWERCAP), PathBuf::from)
}

/// A GPU's NVML handle and the readings it supports.
pub struct Nvml {
    device: NvmlDevice,
    total_energy: Option<TotalEnergy>,
    power: PowerUsage,
}

// SAFETY: NVML handles are process-wide and NVML's functions are thread-safe.
unsafe impl Send for Nvml {}
unsafe impl Sync for Nvml {}

/// Looks `symbol` up in `lib`.
///
/// # Safety
/// `T` must be the symbol's C function type.
unsafe fn symbol<T>(lib: *mut c_void, name: &std::ffi::CStr) -> Option<T> {
    // SAFETY: dlsym on a handle from dlopen; the caller names the right type.
    unsafe {
        let f = libc::dlsym(lib, name.as_ptr());
        (!f.is_null()).then(|| std::mem::transmute_copy::<*mut c_void, T>(&f))
    }
}

impl Nvml {
    fn open(uuid: &str) -> Result<Nvml, String> {
        // SAFETY: the library stays loaded for the process's life; every symbol is called with NVML's documented
        // C signature (nvml.h), and the device handle comes from NVML itself.
        unsafe {
            let lib = libc::dlopen(c"libnvidia-ml.so.1".as_ptr(), libc::RTLD_NOW);
            if lib.is_null() {
                return Err("NVML (libnvidia-ml.so.1) is not installed".into());
            }
            let init: unsafe extern "C" fn() -> i32 =
                symbol(lib, c"nvmlInit_v2").ok_or("NVML has no `nvmlInit_v2`")?;
            let code = init();
            if code != 0 {
                return Err(format!("NVML did not initialise (code {code})"));
            }
            let by_uuid: unsafe extern "C" fn(*const libc::c_char, *mut NvmlDevice) -> i32 =
                symbol(lib, c"nvmlDeviceGetHandleByUUID")
                    .ok_or("NVML has no `nvmlDeviceGetHandleByUUID`")?;
            let id = CString::new(uuid).map_err(|_| format!("bad GPU UUID `{uuid}`"))?;
            let mut device: NvmlDevice = std::ptr::null_mut();
            let code = by_uuid(id.as_ptr(), &raw mut device);
            if code != 0 {
                return Err(format!("NVML does not know GPU `{uuid}` (code {code})"));
            }
            let power: PowerUsage = symbol(lib, c"nvmlDeviceGetPowerUsage")
                .ok_or("NVML has no `nvmlDeviceGetPowerUsage`")?;
            let total_energy = symbol::<TotalEnergy>(lib, c"nvmlDeviceGetTotalEnergyConsumption")
                .filter(|f| {
                    let mut mj = 0u64;
                    f(device, &raw mut mj) == 0
                });
            Ok(Nvml {
                device,
                total_energy,
                power,
            })
        }
    }

    fn total_j(&self) -> Option<f64> {
        let f = self.total_energy?;
        let mut mj = 0u64;
        // SAFETY: see `open`.
        (unsafe { f(self.device, &raw mut mj) } == 0).then_some(mj as f64 / 1e3)
    }

    fn power_w(&self) -> Option<f64> {
        let mut mw = 0u32;
        // SAFETY: see `open`.
        (unsafe { (self.power)(self.device, &raw mut mw) } == 0).then_some(f64::from(mw) / 1e3)
    }
}

/// The RAPL package domains (`intel-rapl:N`, also AMD's): their counters in µJ and where each wraps.
pub struct Rapl {
    domains: Vec<(PathBuf, f64)>,
}

impl Rapl {
    /// The package domains under `root` whose counters can be read.
    pub fn at(root: &Path) -> Result<Rapl, String> {
        let entries = std::fs::read_dir(root)
            .map_err(|_| format!("no RAPL counters (`{}` is absent)", root.display()))?;
        let mut domains = Vec::new();
        let mut unreadable = None;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // Packages only (`intel-rapl:0`); their subdomains (`intel-rapl:0:0`) are parts of them.
            if !name.starts_with("intel-rapl:") || name.matches(':').count() != 1 {
                continue;
            }
            let dir = entry.path();
            let counter = dir.join("energy_uj");
            let range = std::fs::read_to_string(dir.join("max_energy_range_uj"))
                .ok()
                .and_then(|t| t.trim().parse::<f64>().ok());
            match (std::fs::read_to_string(&counter), range) {
                (Ok(text), Some(range)) if text.trim().parse::<f64>().is_ok() => {
                    domains.push((counter, range));
                }
                (Err(e), _) => unreadable = Some(format!("`{}`: {e}", counter.display())),
                _ => unreadable = Some(format!("`{}` is not a counter", counter.display())),
            }
        }
        domains.sort_by(|a, b| a.0.cmp(&b.0));
        if domains.is_empty() {
            return Err(unreadable.map_or_else(
                || format!("no RAPL package domains under `{}`", root.display()),
                |why| format!("RAPL counters are not readable here ({why})"),
            ));
        }
        Ok(Rapl { domains })
    }

    fn read_uj(&self) -> Option<Vec<f64>> {
        self.domains
            .iter()
            .map(|(path, _)| std::fs::read_to_string(path).ok()?.trim().parse().ok())
            .collect()
    }
}

/// What measures a point's energy.
pub enum Meter {
    Nvml(Arc<Nvml>),
    Rapl(Rapl),
    None(String),
}

/// An open measuring window.
pub struct Window {
    started: Instant,
    start_j: Option<f64>,
    start_uj: Option<Vec<f64>>,
    sampler: Option<(Arc<AtomicBool>, std::thread::JoinHandle<f64>)>,
}

impl Meter {
    /// The meter for a point on `device`, the GPU (or MIG slice) `gpu` when on CUDA. A MIG slice has none: NVML's
    /// counter covers the whole GPU, whatever the other slices run.
    pub fn for_gpu(device: tch::Device, gpu: Option<&e3pipe::models::gpu::Gpu>) -> Meter {
        match gpu {
            Some(g) if g.mig_profile.is_some() => Meter::None(format!(
                "a MIG slice ({}): NVML's energy counter covers the whole GPU",
                g.mig_profile.as_deref().unwrap_or_default()
            )),
            _ => Self::of(device, gpu.map(|g| g.uuid.as_str())),
        }
    }

    /// The meter for a point on `device` (`gpu_uuid`: the GPU's UUID when on CUDA).
    fn of(device: tch::Device, gpu_uuid: Option<&str>) -> Meter {
        match (device, gpu_uuid) {
            (tch::Device::Cuda(_), Some(uuid)) => match Nvml::open(uuid) {
                Ok(nvml) => Meter::Nvml(Arc::new(nvml)),
                Err(why) => Meter::None(why),
            },
            (tch::Device::Cuda(i), None) => Meter::None(format!("cuda:{i} has no known UUID")),
            _ => match Rapl::at(&powercap_root()) {
                Ok(rapl) => Meter::Rapl(rapl),
                Err(why) => Meter::None(why),
            },
        }
    }

    /// Whether anything measures energy here.
    pub fn measures(&self) -> bool {
        !matches!(self, Meter::None(_))
    }

    /// `energy_source`: what measured, or `none (why)`.
    pub fn source(&self) -> String {
        match self {
            Meter::Nvml(n) if n.total_energy.is_some() => "nvml total energy counter".into(),
            Meter::Nvml(_) => "nvml power samples every 5 ms, integrated".into(),
            Meter::Rapl(r) => format!(
                "rapl package counters ({} package(s), whole socket, DRAM not included)",
                r.domains.len()
            ),
            Meter::None(why) => format!("none ({why})"),
        }
    }

    pub fn start(&self) -> Window {
        let mut window = Window {
            started: Instant::now(),
            start_j: None,
            start_uj: None,
            sampler: None,
        };
        match self {
            Meter::Nvml(n) if n.total_energy.is_some() => window.start_j = n.total_j(),
            Meter::Nvml(n) => {
                let stop = Arc::new(AtomicBool::new(false));
                let (flag, nvml) = (Arc::clone(&stop), Arc::clone(n));
                let handle = std::thread::spawn(move || {
                    let mut joules = 0.0;
                    let mut last = (Instant::now(), nvml.power_w().unwrap_or(0.0));
                    while !flag.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(5));
                        let now = (Instant::now(), nvml.power_w().unwrap_or(last.1));
                        joules += (now.0 - last.0).as_secs_f64() * (now.1 + last.1) / 2.0;
                        last = now;
                    }
                    joules
                });
                window.sampler = Some((stop, handle));
            }
            Meter::Rapl(r) => window.start_uj = r.read_uj(),
            Meter::None(_) => {}
        }
        window
    }

    /// Closes `window`: (joules, seconds), when this meter measures.
    pub fn stop(&self, mut window: Window) -> Option<(f64, f64)> {
        let joules = match self {
            Meter::Nvml(n) if n.total_energy.is_some() => n.total_j()? - window.start_j?,
            Meter::Nvml(_) => {
                let (stop, handle) = window.sampler.take()?;
                stop.store(true, Ordering::Relaxed);
                handle.join().ok()?
            }
            Meter::Rapl(r) => {
                let end = r.read_uj()?;
                let start = window.start_uj.take()?;
                r.domains
                    .iter()
                    .zip(start.iter().zip(&end))
                    .map(|((_, range), (a, b))| if b >= a { b - a } else { b + range - a })
                    .sum::<f64>()
                    / 1e6
            }
            Meter::None(_) => return None,
        };
        Some((joules, window.started.elapsed().as_secs_f64()))
    }
}

/// A sampler that is never stopped would outlive the point; stopping in `Drop` is not needed because `stop` is
/// always called, but a panic between `start` and `stop` must not leave the thread spinning.
impl Drop for Window {
    fn drop(&mut self) {
        if let Some((stop, _)) = &self.sampler {
            stop.store(true, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domain(root: &Path, name: &str, uj: u64, range: u64) {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("energy_uj"), format!("{uj}\n")).unwrap();
        std::fs::write(dir.join("max_energy_range_uj"), format!("{range}\n")).unwrap();
    }

    #[test]
    fn rapl_sums_packages_only_and_survives_a_wrap() {
        let root = tempfile::tempdir().unwrap();
        domain(root.path(), "intel-rapl:0", 1_000_000, 10_000_000);
        domain(root.path(), "intel-rapl:1", 9_500_000, 10_000_000);
        // A subdomain is part of its package: never added again.
        domain(root.path(), "intel-rapl:0:0", 5, 10_000_000);
        let meter = Meter::Rapl(Rapl::at(root.path()).unwrap());
        assert_eq!(
            meter.source(),
            "rapl package counters (2 package(s), whole socket, DRAM not included)"
        );
        let window = meter.start();
        domain(root.path(), "intel-rapl:0", 3_000_000, 10_000_000); // +2 J
        domain(root.path(), "intel-rapl:1", 500_000, 10_000_000); // wrapped: +1 J
        domain(root.path(), "intel-rapl:0:0", 9_999_999, 10_000_000);
        let (joules, seconds) = meter.stop(window).unwrap();
        assert!((joules - 3.0).abs() < 1e-9, "{joules}");
        assert!(seconds >= 0.0);
    }

    #[test]
    fn without_counters_energy_is_none_with_the_reason() {
        let missing = Path::new("/nonexistent/powercap");
        let Err(why) = Rapl::at(missing) else {
            panic!("no counters there")
        };
        assert!(why.contains("absent"), "{why}");
        let empty = tempfile::tempdir().unwrap();
        assert!(Rapl::at(empty.path()).is_err());
        let meter = Meter::None(why);
        assert!(meter.source().starts_with("none (no RAPL counters"));
        let window = meter.start();
        assert!(meter.stop(window).is_none());
        // On this CPU-only machine without NVML, a CUDA meter says why it measures nothing.
        if !Path::new(POWERCAP).exists() {
            let m = Meter::of(tch::Device::Cpu, None);
            assert!(m.source().starts_with("none ("), "{}", m.source());
        }
        let gpu = Meter::of(
            tch::Device::Cuda(0),
            Some("GPU-00000000-0000-0000-0000-000000000000"),
        );
        assert!(
            gpu.source().starts_with("none (") || gpu.source().starts_with("nvml"),
            "{}",
            gpu.source()
        );
        // A MIG slice claims no energy: NVML's counter is the whole GPU's.
        let slice = e3pipe::models::gpu::Gpu {
            name: "NVIDIA A100-SXM4-40GB".into(),
            uuid: "MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f".into(),
            parent_uuid: "GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77".into(),
            memory_total: "40960 MiB".into(),
            compute_cap: "8.0".into(),
            driver: "550.54.15".into(),
            power_limit: "400.00 W".into(),
            mig_profile: Some("3g.20gb".into()),
        };
        let m = Meter::for_gpu(tch::Device::Cuda(0), Some(&slice));
        assert!(!m.measures());
        assert_eq!(
            m.source(),
            "none (a MIG slice (3g.20gb): NVML's energy counter covers the whole GPU)"
        );
    }
}
