//! `file` exporter: appends each batch as one line of OTLP/JSON (an export request) to `path`.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use serde::Deserialize;

use crate::component::FieldError;
use crate::pipeline::signal::Signal;
use crate::pipeline::{ConsumeError, Consumer};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileExporterConfig {
    pub path: String,
    /// Only `json` (JSON lines of OTLP/JSON).
    pub format: String,
}

impl Default for FileExporterConfig {
    fn default() -> Self {
        Self {
            path: String::new(),
            format: "json".into(),
        }
    }
}

impl FileExporterConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        if self.path.is_empty() {
            return Err(FieldError::new(
                "path",
                "required: the file to append JSON lines to",
            ));
        }
        if self.format != "json" {
            return Err(FieldError::new(
                "format",
                format!("unsupported format `{}`; expected `json`", self.format),
            ));
        }
        Ok(())
    }
}

pub struct FileExporter {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl FileExporter {
    pub fn new(cfg: &FileExporterConfig) -> Self {
        Self {
            path: PathBuf::from(&cfg.path),
            file: Mutex::new(None),
        }
    }

    fn write_line(&self, line: &[u8]) -> std::io::Result<()> {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            if let Some(dir) = self.path.parent()
                && !dir.as_os_str().is_empty()
            {
                std::fs::create_dir_all(dir)?;
            }
            *guard = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let f = guard.as_mut().expect("opened above");
        // One write per line so concurrent readers never see half a line.
        let mut buf = Vec::with_capacity(line.len() + 1);
        buf.extend_from_slice(line);
        buf.push(b'\n');
        f.write_all(&buf)?;
        f.flush()
    }
}

#[async_trait::async_trait]
impl<T: Signal> Consumer<T> for FileExporter {
    async fn consume(&self, batch: Vec<T>) -> Result<(), ConsumeError> {
        let req = T::into_request(batch);
        let line = serde_json::to_vec(&req)
            .map_err(|e| ConsumeError::Permanent(format!("file exporter: cannot encode: {e}")))?;
        self.write_line(&line).map_err(|e| {
            ConsumeError::Permanent(format!(
                "file exporter: cannot write {}: {e}",
                self.path.display()
            ))
        })
    }
}
