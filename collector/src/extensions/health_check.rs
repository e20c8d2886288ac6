//! `health_check` extension: `GET {path}` (default `/`) answers 200 with a JSON status while
//! the collector runs its pipelines and 503 while it starts or shuts down. The same server
//! also serves the collector's own `/metrics`.

use serde::Deserialize;

use crate::component::FieldError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    pub endpoint: String,
    pub path: String,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        Self {
            endpoint: "0.0.0.0:13133".into(),
            path: "/".into(),
        }
    }
}

impl HealthCheckConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        crate::component::endpoint::check_listen("endpoint", &self.endpoint)?;
        if !self.path.starts_with('/') {
            return Err(FieldError::new("path", "must start with `/`"));
        }
        Ok(())
    }
}
