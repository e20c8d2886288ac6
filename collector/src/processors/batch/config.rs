//! `batch` processor settings.

use std::time::Duration;

use serde::Deserialize;

use crate::component::FieldError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Send a batch this long after its first item arrived, full or not.
    #[serde(deserialize_with = "crate::component::duration::deserialize")]
    pub timeout: Duration,
    /// Send as soon as this many items (spans, data points, log records) are buffered.
    pub send_batch_size: usize,
    /// Upper bound of one sent batch; 0 = no bound. Larger batches are split.
    pub send_batch_max_size: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_millis(200),
            send_batch_size: 8192,
            send_batch_max_size: 0,
        }
    }
}

impl BatchConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.timeout.is_zero() {
            return Err(FieldError::new(
                "timeout",
                "must be greater than 0 (e.g. 200ms)",
            ));
        }
        if self.send_batch_size == 0 {
            return Err(FieldError::new("send_batch_size", "must be at least 1"));
        }
        if self.send_batch_max_size != 0 && self.send_batch_max_size < self.send_batch_size {
            return Err(FieldError::new(
                "send_batch_max_size",
                format!(
                    "must be 0 (no limit) or at least send_batch_size ({})",
                    self.send_batch_size
                ),
            ));
        }
        Ok(())
    }
}
