//! The component model every component shares, and nothing else: [`FieldError`] (a problem in one
//! component's config), [`ComponentId`] (`type[/name]`), [`SignalKind`], the Go-style
//! [`duration`] serde helpers and the [`endpoint`] checks of listen addresses.
//!
//! A leaf: it imports nothing of the collector (a test reads these files to keep it so). The
//! components (receivers, processors, exporters, connectors, extensions) depend on it and not on
//! `config`, which depends on every component to build them — so there is no import cycle between
//! the config loader and the components.

pub mod duration;
pub mod endpoint;

use std::fmt;

/// A validation failure inside one component's config. `path` is relative to the component
/// (e.g. `policies[1].latency.threshold_ms`); the loader prefixes the component path and adds
/// the file name and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for FieldError {}

/// `type[/name]` — how components are named in the config.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ComponentId {
    pub ty: String,
    pub name: Option<String>,
}

impl ComponentId {
    pub fn parse(s: &str) -> Result<Self, String> {
        let (ty, name) = match s.split_once('/') {
            Some((t, n)) => (t, Some(n)),
            None => (s, None),
        };
        let valid_ty = !ty.is_empty()
            && ty
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-');
        if !valid_ty {
            return Err(format!(
                "invalid component id `{s}`: expected `type` or `type/name` (type: letters, digits, `_`)"
            ));
        }
        if name.is_some_and(str::is_empty) {
            return Err(format!(
                "invalid component id `{s}`: the name after `/` is empty"
            ));
        }
        Ok(Self {
            ty: ty.to_string(),
            name: name.map(str::to_string),
        })
    }
}

impl fmt::Display for ComponentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{}/{}", self.ty, n),
            None => write!(f, "{}", self.ty),
        }
    }
}

/// The three telemetry signals a pipeline can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SignalKind {
    Traces,
    Metrics,
    Logs,
}

impl SignalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Traces => "traces",
            Self::Metrics => "metrics",
            Self::Logs => "logs",
        }
    }
}

#[cfg(test)]
mod tests {
    /// The component model imports nothing else of the collector.
    #[test]
    fn the_component_model_is_a_leaf() {
        for (file, text) in [
            ("mod.rs", include_str!("mod.rs")),
            ("duration.rs", include_str!("duration.rs")),
            ("endpoint.rs", include_str!("endpoint.rs")),
        ] {
            for line in text.lines() {
                let l = line.trim_start();
                let code = l.starts_with("use ") || l.starts_with("pub use ");
                assert!(
                    !(code && (l.contains("crate::") || l.contains("super::super"))),
                    "component/{file} imports from the collector: {line}"
                );
            }
        }
    }

    /// The components import the component model, never the config loader that builds them.
    #[test]
    fn components_do_not_import_the_config_loader() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        // pipeline/ (the Consumer trait), store/ and query/ are used by components too.
        let mut stack: Vec<std::path::PathBuf> = [
            "receivers",
            "processors",
            "exporters",
            "connectors",
            "extensions",
            "store",
            "query",
            "pipeline/signal.rs",
            "pipeline/consumer.rs",
        ]
        .iter()
        .map(|d| src.join(d))
        .collect();
        let mut seen = 0;
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            } else if p.extension().is_some_and(|e| e == "rs") {
                seen += 1;
                let text = std::fs::read_to_string(&p).unwrap();
                assert!(
                    !text.contains("crate::config"),
                    "{} refers to crate::config; use crate::component",
                    p.display()
                );
            }
        }
        assert!(seen > 20, "{seen} component files");
    }
}
