//! Host load for the snapshot: CPU use, memory and load average of the machine the node runs
//! on, sampled with sysinfo at most once a second however often snapshots are taken, so a
//! console (local or remote) shows the node's machine, not its own.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sysinfo::System;

/// The shortest time between two host samples; CPU use needs two readings this far apart.
pub const HOST_SAMPLE_INTERVAL: Duration = Duration::from_secs(1);

/// The machine's load, as the node last sampled it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct HostStats {
    /// CPU use over all cores since the previous sample, 0–100.
    pub cpu_percent: f32,
    /// Logical CPUs.
    pub cpus: u16,
    /// Memory in use, bytes.
    pub memory_used_bytes: u64,
    /// Memory in total, bytes.
    pub memory_total_bytes: u64,
    /// One-minute load average.
    pub load_average: f32,
}

/// Samples the host at a bounded rate.
pub struct HostSampler {
    system: Option<System>,
    sampled_at: Option<Instant>,
    stats: HostStats,
}

impl std::fmt::Debug for HostSampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSampler")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Default for HostSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl HostSampler {
    /// A sampler; the first call to [`HostSampler::sample`] reads the host.
    pub fn new() -> Self {
        Self {
            system: System::new().ok(),
            sampled_at: None,
            stats: HostStats::default(),
        }
    }

    /// The latest figures, reading the host again when the last reading is a second old.
    /// None when the host cannot be read (sysinfo unsupported here).
    pub fn sample(&mut self) -> Option<HostStats> {
        let system = self.system.as_mut()?;
        let now = Instant::now();
        if self
            .sampled_at
            .is_none_or(|at| now.duration_since(at) >= HOST_SAMPLE_INTERVAL)
        {
            system.refresh_cpu_usage();
            system.refresh_memory();
            self.stats = HostStats {
                cpu_percent: system.global_cpu_usage(),
                cpus: u16::try_from(system.cpus().len()).unwrap_or(u16::MAX),
                memory_used_bytes: system.used_memory(),
                memory_total_bytes: system.total_memory(),
                load_average: System::load_average().map_or(0.0, |l| l.one as f32),
            };
            self.sampled_at = Some(now);
        }
        Some(self.stats)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine() {
        let mut sampler = HostSampler::new();
        let stats = sampler.sample().expect("sysinfo reads Linux hosts");
        assert!(stats.cpus >= 1);
        assert!(stats.memory_total_bytes > 0);
        assert!(stats.memory_used_bytes <= stats.memory_total_bytes);
        assert!((0.0..=100.0).contains(&stats.cpu_percent));
    }
}
