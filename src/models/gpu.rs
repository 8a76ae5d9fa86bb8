//! The GPUs as the NVIDIA driver lists them (`nvidia-smi`), without loading libtorch or CUDA: their identity for
//! cache keys (model, memory, compute capability, driver, power limit, MIG profile) and their state around a
//! measured window (clocks, throttle reasons, temperature, other processes). Everything is parsed from
//! `nvidia-smi`'s own CSV and `-L` listings, so the parsing is tested on listings taken from real nodes.

use serde::{Deserialize, Serialize};

/// The identity query: one CSV line per physical GPU. A driver too old for a field fails the whole query, which
/// is reported, never read as "no GPU".
pub const IDENTITY_QUERY: &str =
    "name,uuid,memory.total,compute_cap,driver_version,enforced.power.limit,mig.mode.current";

/// The state query, sampled at the start and end of a measured window.
pub const STATE_QUERY: &str = "clocks.sm,clocks.mem,clocks_throttle_reasons.active,temperature.gpu,persistence_mode,power.draw";

/// One physical GPU, or one MIG slice of it, as `nvidia-smi` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpu {
    pub name: String,
    /// `GPU-…`, or `MIG-…` for a slice (what `CUDA_VISIBLE_DEVICES` and NVML find it by).
    pub uuid: String,
    /// The physical GPU's UUID (itself for a whole GPU): what state queries and NVML's counters address.
    pub parent_uuid: String,
    pub memory_total: String,
    pub compute_cap: String,
    pub driver: String,
    /// The enforced power limit, as `nvidia-smi` prints it (`700.00 W`); `[N/A]` where not reported.
    pub power_limit: String,
    /// `3g.40gb` for a MIG slice; `None` for a whole GPU.
    pub mig_profile: Option<String>,
}

/// `nvidia-smi`'s `[N/A]`, `N/A`, `[Not Supported]` and empty fields.
fn available(field: &str) -> Option<&str> {
    let f = field.trim();
    (!f.is_empty() && !f.starts_with('[') && f != "N/A").then_some(f)
}

/// Parses `nvidia-smi --query-gpu=IDENTITY_QUERY --format=csv,noheader`. A line whose compute capability is not
/// reported is an error: without it the kernels a point ran are unknown.
pub fn parse_identity(listing: &str) -> Result<Vec<Gpu>, String> {
    listing
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            if f.len() < 6 || f[0].is_empty() {
                return Err(format!("`nvidia-smi` printed `{l}`, not a GPU's identity"));
            }
            let compute_cap = available(f[3]).ok_or_else(|| {
                format!(
                    "`nvidia-smi` does not report the compute capability of `{}` (`{}`)",
                    f[0], f[3]
                )
            })?;
            Ok(Gpu {
                name: f[0].to_string(),
                uuid: f[1].to_string(),
                parent_uuid: f[1].to_string(),
                memory_total: f[2].to_string(),
                compute_cap: compute_cap.to_string(),
                driver: f[4].to_string(),
                power_limit: available(f[5]).unwrap_or("[N/A]").to_string(),
                mig_profile: None,
            })
        })
        .collect()
}

/// A MIG slice from `nvidia-smi -L`: its profile, its UUID and its parent's UUID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigDevice {
    pub profile: String,
    pub uuid: String,
    pub parent_uuid: String,
}

/// Parses `nvidia-smi -L`: `GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-…)` lines, each followed by its slices,
/// `  MIG 3g.20gb     Device  0: (UUID: MIG-…)` (drivers before R470 print `MIG-GPU-<uuid>/<gi>/<ci>`).
pub fn parse_mig_listing(listing: &str) -> Vec<MigDevice> {
    let uuid_of = |line: &str| {
        line.split_once("(UUID: ")
            .and_then(|(_, rest)| rest.split(')').next())
            .map(|u| u.trim().to_string())
    };
    let mut parent: Option<String> = None;
    let mut out = Vec::new();
    for line in listing.lines() {
        let t = line.trim_start();
        if t.starts_with("GPU ") {
            parent = uuid_of(t);
        } else if let Some(rest) = t.strip_prefix("MIG ")
            && let (Some(profile), Some(uuid), Some(parent)) =
                (rest.split_whitespace().next(), uuid_of(t), parent.as_ref())
        {
            out.push(MigDevice {
                profile: profile.to_string(),
                uuid,
                parent_uuid: parent.clone(),
            });
        }
    }
    out
}

/// The GPUs CUDA numbers `cuda:0, cuda:1, …`: the entries of `CUDA_VISIBLE_DEVICES` when set (an index, a `GPU-…`
/// UUID or its prefix, a `MIG-…` slice), else every GPU. An entry that names nothing is an error for that device,
/// never some other GPU.
pub fn visible(
    all: &[Gpu],
    migs: &[MigDevice],
    cuda_visible: Option<&str>,
) -> Vec<Result<Gpu, String>> {
    let Some(cuda_visible) = cuda_visible else {
        return all.iter().cloned().map(Ok).collect();
    };
    cuda_visible
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(|v| {
            if v.starts_with("MIG-") {
                let slice = migs.iter().find(|m| m.uuid == v || (v.len() >= 12 && m.uuid.starts_with(v)));
                return slice
                    .and_then(|m| {
                        all.iter().find(|g| g.uuid == m.parent_uuid).map(|g| Gpu {
                            uuid: m.uuid.clone(),
                            parent_uuid: g.uuid.clone(),
                            mig_profile: Some(m.profile.clone()),
                            ..g.clone()
                        })
                    })
                    .ok_or_else(|| {
                        format!(
                            "`CUDA_VISIBLE_DEVICES` entry `{v}` names none of the {} MIG device(s) `nvidia-smi -L` lists",
                            migs.len()
                        )
                    });
            }
            let found = match v.parse::<usize>() {
                Ok(i) => all.get(i),
                Err(_) => all.iter().find(|g| g.uuid == v || (v.len() >= 8 && g.uuid.starts_with(v))),
            };
            found.cloned().ok_or_else(|| {
                format!(
                    "`CUDA_VISIBLE_DEVICES` entry `{v}` names none of the {} GPU(s) `nvidia-smi` lists; set it to indices, `GPU-…` or `MIG-…` UUIDs from `nvidia-smi -L`",
                    all.len()
                )
            })
        })
        .collect()
}

/// A GPU's state at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct GpuSample {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sm_clock_mhz: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_clock_mhz: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature_c: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power_draw_w: Option<f64>,
    /// Why the clocks are held below their maximum (`sw_power_cap`, `hw_thermal_slowdown`, …); `gpu_idle` alone
    /// means nothing ran.
    #[serde(default)]
    pub throttle_reasons: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistence_mode: Option<bool>,
}

/// A GPU's state around a measured window, recorded in the point (not in its key: it describes one run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuWindow {
    pub start: GpuSample,
    pub end: GpuSample,
    /// Other compute processes on the GPU when the window ended.
    #[serde(default)]
    pub other_processes: Vec<u32>,
}

impl GpuWindow {
    /// What a reader should know before trusting the point: throttling, a shared GPU.
    pub fn warnings(&self) -> Vec<String> {
        window_warnings(&self.start, &self.end, &self.other_processes)
    }
}

/// NVML's clock-event (throttle) reason bits, as `clocks_throttle_reasons.active` prints them.
const THROTTLE_BITS: &[(u64, &str)] = &[
    (0x1, "gpu_idle"),
    (0x2, "applications_clocks_setting"),
    (0x4, "sw_power_cap"),
    (0x8, "hw_slowdown"),
    (0x10, "sync_boost"),
    (0x20, "sw_thermal_slowdown"),
    (0x40, "hw_thermal_slowdown"),
    (0x80, "hw_power_brake_slowdown"),
    (0x100, "display_clock_setting"),
];

fn throttle_reasons(mask: &str) -> Vec<String> {
    let Ok(bits) = u64::from_str_radix(mask.trim().trim_start_matches("0x"), 16) else {
        return Vec::new();
    };
    let mut out: Vec<String> = THROTTLE_BITS
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| (*name).to_string())
        .collect();
    let known: u64 = THROTTLE_BITS.iter().map(|(b, _)| b).sum();
    if bits & !known != 0 {
        out.push(format!("other ({:#x})", bits & !known));
    }
    out
}

/// Parses one line of `nvidia-smi --query-gpu=STATE_QUERY --format=csv,noheader,nounits`.
pub fn parse_state(line: &str) -> Option<GpuSample> {
    let f: Vec<&str> = line.lines().next()?.split(',').map(str::trim).collect();
    if f.len() < 6 {
        return None;
    }
    let num = |s: &str| available(s).and_then(|v| v.parse::<f64>().ok());
    Some(GpuSample {
        sm_clock_mhz: num(f[0]).map(|v| v as u32),
        memory_clock_mhz: num(f[1]).map(|v| v as u32),
        throttle_reasons: available(f[2]).map(throttle_reasons).unwrap_or_default(),
        temperature_c: num(f[3]).map(|v| v as u32),
        persistence_mode: available(f[4]).map(|v| v.eq_ignore_ascii_case("enabled")),
        power_draw_w: num(f[5]),
    })
}

/// Compute processes on the GPU `uuid` other than `own_pid`, from
/// `nvidia-smi --query-compute-apps=pid,gpu_uuid --format=csv,noheader`. Inside a container the driver reports
/// host PIDs, so our own process may appear under another number: when our PID is not listed, one entry is taken
/// to be ours.
pub fn other_processes(listing: &str, uuid: &str, own_pid: u32) -> Vec<u32> {
    let pids: Vec<u32> = listing
        .lines()
        .filter_map(|l| {
            let (pid, gpu) = l.split_once(',')?;
            (gpu.trim() == uuid).then(|| pid.trim().parse().ok())?
        })
        .collect();
    if pids.contains(&own_pid) {
        pids.into_iter().filter(|&p| p != own_pid).collect()
    } else {
        pids.into_iter().skip(1).collect()
    }
}

/// Warnings a measured window earns: throttling (anything but idle) at either end, other processes on the GPU.
pub fn window_warnings(start: &GpuSample, end: &GpuSample, others: &[u32]) -> Vec<String> {
    let mut out = Vec::new();
    for (when, s) in [("start", start), ("end", end)] {
        let throttled: Vec<&str> = s
            .throttle_reasons
            .iter()
            .map(String::as_str)
            .filter(|r| *r != "gpu_idle")
            .collect();
        if !throttled.is_empty() {
            out.push(format!(
                "clocks held down at the {when} of the window: {}",
                throttled.join(", ")
            ));
        }
    }
    if !others.is_empty() {
        out.push(format!(
            "shared GPU: {} other process(es) on it (pid {})",
            others.len(),
            others
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out
}

/// Runs `nvidia-smi` with `args`; its stdout, or why not.
pub fn nvidia_smi(args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("nvidia-smi")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run `nvidia-smi` ({e})"))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "`nvidia-smi {}` failed: {}",
            args.join(" "),
            text.lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no output")
                .trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The GPU `uuid`'s state now (its parent's for a MIG slice).
pub fn sample(parent_uuid: &str) -> Option<GpuSample> {
    let query = format!("--query-gpu={STATE_QUERY}");
    let text = nvidia_smi(&["-i", parent_uuid, &query, "--format=csv,noheader,nounits"]).ok()?;
    parse_state(&text)
}

/// Other compute processes on the GPU `parent_uuid`.
pub fn others_on(parent_uuid: &str) -> Vec<u32> {
    nvidia_smi(&["--query-compute-apps=pid,gpu_uuid", "--format=csv,noheader"])
        .map(|l| other_processes(&l, parent_uuid, std::process::id()))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    // `nvidia-smi --query-gpu=IDENTITY_QUERY --format=csv,noheader` on an 8-GPU node, two GPUs with MIG enabled.
    const NODE: &str = "NVIDIA A100-SXM4-40GB, GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77, 40960 MiB, 8.0, 550.54.15, 400.00 W, Enabled\n\
NVIDIA A100-SXM4-40GB, GPU-a1b2c3d4-0000-1111-2222-333344445555, 40960 MiB, 8.0, 550.54.15, 400.00 W, Disabled\n";
    // `nvidia-smi -L` on the same node.
    const LISTING: &str = "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77)\n  MIG 3g.20gb     Device  0: (UUID: MIG-c6d4f1ef-42e4-5de3-91c7-45d71c87eb3f)\n  MIG 1g.5gb      Device  1: (UUID: MIG-cba663e8-9bed-5b25-b243-5985ef7c9beb)\nGPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-a1b2c3d4-0000-1111-2222-333344445555)\n";

    #[test]
    fn mig_slices_resolve_to_their_parent_and_profile() {
        let all = parse_identity(NODE).unwrap();
        let migs = parse_mig_listing(LISTING);
        assert_eq!(migs.len(), 2);
        assert_eq!(migs[1].profile, "1g.5gb");
        assert_eq!(
            migs[1].parent_uuid,
            "GPU-5d5ba0d6-d33d-2b2c-524d-9e3d8d2b8a77"
        );
        let seen = visible(
            &all,
            &migs,
            Some("MIG-cba663e8-9bed-5b25-b243-5985ef7c9beb"),
        );
        let [Ok(slice)] = seen.as_slice() else {
            panic!("{seen:?}")
        };
        assert_eq!(slice.mig_profile.as_deref(), Some("1g.5gb"));
        assert_eq!(slice.uuid, "MIG-cba663e8-9bed-5b25-b243-5985ef7c9beb");
        assert_eq!(slice.parent_uuid, all[0].uuid);
        assert_eq!(slice.name, "NVIDIA A100-SXM4-40GB");
        // Old drivers' slice names, and a slice that is not there.
        let old = parse_mig_listing(
            "GPU 0: NVIDIA A100-PCIE-40GB (UUID: GPU-e91edf3b-b297-37c1-a2a7-7601c3238fa2)\n  MIG 1g.5gb Device 0: (UUID: MIG-GPU-e91edf3b-b297-37c1-a2a7-7601c3238fa2/7/0)\n",
        );
        assert_eq!(
            old[0].uuid,
            "MIG-GPU-e91edf3b-b297-37c1-a2a7-7601c3238fa2/7/0"
        );
        assert_eq!(old[0].profile, "1g.5gb");
        assert!(
            visible(
                &all,
                &migs,
                Some("MIG-00000000-0000-0000-0000-000000000000")
            )[0]
            .is_err()
        );
    }

    #[test]
    fn identity_needs_a_compute_capability() {
        let e = parse_identity("NVIDIA H200, GPU-1, 143771 MiB, [N/A], 580.1, 700.00 W, [N/A]\n")
            .unwrap_err();
        assert!(e.contains("compute capability"), "{e}");
        let gpus =
            parse_identity("NVIDIA H200, GPU-1, 143771 MiB, 9.0, 580.159.04, 700.00 W, [N/A]\n")
                .unwrap();
        assert_eq!(gpus[0].driver, "580.159.04");
        assert_eq!(gpus[0].power_limit, "700.00 W");
        assert!(parse_identity("Field \"compute_cap\" is not a valid field to query.\n").is_err());
    }

    #[test]
    fn state_names_throttle_reasons_and_other_processes() {
        let s = parse_state("1980, 2619, 0x0000000000000004, 61, Enabled, 412.33\n").unwrap();
        assert_eq!(s.sm_clock_mhz, Some(1980));
        assert_eq!(s.memory_clock_mhz, Some(2619));
        assert_eq!(s.throttle_reasons, ["sw_power_cap"]);
        assert_eq!(s.temperature_c, Some(61));
        assert_eq!(s.persistence_mode, Some(true));
        let idle = parse_state("345, 2619, 0x0000000000000001, 30, Disabled, [N/A]").unwrap();
        assert_eq!(idle.throttle_reasons, ["gpu_idle"]);
        assert_eq!(idle.power_draw_w, None);
        assert_eq!(
            throttle_reasons("0x0000000000000060"),
            ["sw_thermal_slowdown", "hw_thermal_slowdown"]
        );
        let w = window_warnings(&idle, &s, &[4242]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].contains("end of the window: sw_power_cap"), "{w:?}");
        assert!(w[1].starts_with("shared GPU"), "{w:?}");
        assert!(window_warnings(&idle, &idle, &[]).is_empty());
        let apps = "100, GPU-a\n200, GPU-a\n300, GPU-b\n";
        assert_eq!(other_processes(apps, "GPU-a", 100), [200]);
        // Our PID unseen (a container): one entry is ours.
        assert_eq!(
            other_processes("7, GPU-a\n", "GPU-a", 100),
            Vec::<u32>::new()
        );
        assert_eq!(other_processes(apps, "GPU-a", 999), [200]);
    }
}
