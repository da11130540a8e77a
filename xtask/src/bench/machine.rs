//! The machine a benchmark ran on, read from `/proc` and `/etc/os-release`: figures mean little
//! without it.

use std::fmt;

/// What the report says about the machine.
#[derive(Clone, Debug)]
pub struct Machine {
    /// `model name` of the first CPU in `/proc/cpuinfo`.
    pub cpu: String,
    /// Logical CPUs online (`processor` entries of `/proc/cpuinfo`).
    pub cpus: usize,
    /// CPUs this process may run on (affinity and cgroup limits).
    pub available: usize,
    /// Total memory, in KiB.
    pub memory_kib: u64,
    /// `uname -r`.
    pub kernel: String,
    /// `PRETTY_NAME` of `/etc/os-release`.
    pub os: String,
}

impl Machine {
    /// Reads the machine's description; what cannot be read is "unknown" (or 0).
    pub fn describe() -> Machine {
        let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
        let cpuinfo = read("/proc/cpuinfo");
        let field = |text: &str, key: &str| -> Option<String> {
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(':').or_else(|| l.split_once('='))?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        let unknown = || "unknown".to_string();
        Machine {
            cpu: field(&cpuinfo, "model name").unwrap_or_else(unknown),
            cpus: cpuinfo
                .lines()
                .filter(|l| l.split(':').next().map(str::trim) == Some("processor"))
                .count(),
            available: std::thread::available_parallelism().map_or(0, |n| n.get()),
            memory_kib: field(&read("/proc/meminfo"), "MemTotal")
                .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
                .unwrap_or(0),
            kernel: Some(read("/proc/sys/kernel/osrelease").trim().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(unknown),
            os: field(&read("/etc/os-release"), "PRETTY_NAME").unwrap_or_else(unknown),
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, {} logical CPUs", self.cpu, self.cpus)?;
        if self.available != self.cpus {
            write!(f, " ({} available)", self.available)?;
        }
        write!(
            f,
            ", {:.1} GiB, Linux {}, {}",
            self.memory_kib as f64 / (1 << 20) as f64,
            self.kernel,
            self.os
        )
    }
}
