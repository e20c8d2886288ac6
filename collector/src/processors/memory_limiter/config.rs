//! `memory_limiter` processor settings.

use std::time::Duration;

use serde::Deserialize;

use crate::component::FieldError;

/// What the limit applies to (tracelab's key; contrib measures the Go runtime's heap).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    /// Bytes the allocator has allocated (jemalloc `stats.allocated`): the pipeline's data,
    /// not SQLite's bounded page caches nor freed memory the allocator still holds.
    #[default]
    Heap,
    /// The cgroup v2 `memory.current` (everything charged to the container, page cache included).
    Cgroup,
    /// The process resident set size (`/proc/self/statm`).
    Rss,
}

impl Measure {
    pub fn name(self) -> &'static str {
        match self {
            Self::Heap => "heap",
            Self::Cgroup => "cgroup",
            Self::Rss => "rss",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MemoryLimiterConfig {
    /// What is measured against the limits.
    pub measure: Measure,
    /// How often the memory is measured.
    #[serde(deserialize_with = "crate::component::duration::deserialize")]
    pub check_interval: Duration,
    /// Hard limit in MiB (0 = use `limit_percentage`).
    pub limit_mib: u64,
    /// Headroom below the hard limit; the soft limit is `limit - spike`. Default 20 % of the limit.
    pub spike_limit_mib: u64,
    /// Hard limit as a percentage of the total memory (when `limit_mib` is 0): the cgroup v2
    /// `memory.max` when one is set, else the machine's `MemTotal`.
    pub limit_percentage: u64,
    pub spike_limit_percentage: u64,
}

impl Default for MemoryLimiterConfig {
    fn default() -> Self {
        Self {
            measure: Measure::Heap,
            check_interval: Duration::from_secs(1),
            limit_mib: 0,
            spike_limit_mib: 0,
            limit_percentage: 0,
            spike_limit_percentage: 0,
        }
    }
}

impl MemoryLimiterConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.check_interval.is_zero() {
            return Err(FieldError::new(
                "check_interval",
                "must be greater than 0 (e.g. 1s)",
            ));
        }
        if self.limit_mib == 0 && self.limit_percentage == 0 {
            return Err(FieldError::new(
                "limit_mib",
                "either limit_mib or limit_percentage must be set (greater than 0)",
            ));
        }
        if self.limit_mib > 0 && self.spike_limit_mib >= self.limit_mib {
            return Err(FieldError::new(
                "spike_limit_mib",
                format!("must be less than limit_mib ({})", self.limit_mib),
            ));
        }
        if self.limit_percentage > 100 {
            return Err(FieldError::new(
                "limit_percentage",
                "must be between 1 and 100",
            ));
        }
        if self.limit_percentage > 0 && self.spike_limit_percentage >= self.limit_percentage {
            return Err(FieldError::new(
                "spike_limit_percentage",
                format!(
                    "must be less than limit_percentage ({})",
                    self.limit_percentage
                ),
            ));
        }
        Ok(())
    }

    /// (hard, soft) limits in bytes; `total` is what percentages are of (see `measure::total_memory`).
    pub fn limits(&self, total: u64) -> (u64, u64) {
        const MIB: u64 = 1024 * 1024;
        let (hard, spike) = if self.limit_mib > 0 {
            let hard = self.limit_mib * MIB;
            let spike = if self.spike_limit_mib > 0 {
                self.spike_limit_mib * MIB
            } else {
                hard / 5
            };
            (hard, spike)
        } else {
            let hard = total / 100 * self.limit_percentage;
            let spike = if self.spike_limit_percentage > 0 {
                total / 100 * self.spike_limit_percentage
            } else {
                hard / 5
            };
            (hard, spike)
        };
        (hard, hard.saturating_sub(spike))
    }
}
