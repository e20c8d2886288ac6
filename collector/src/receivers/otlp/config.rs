//! `otlp` receiver settings (`protocols.grpc`, `protocols.http`).

use serde::{Deserialize, Deserializer};

use crate::component::FieldError;
use crate::component::endpoint::check_listen;

/// `grpc:` with no settings means "enabled with defaults", not "absent".
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de> + Default>(
    d: D,
) -> Result<Option<T>, D::Error> {
    Option::<T>::deserialize(d).map(|o| Some(o.unwrap_or_default()))
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OtlpReceiverConfig {
    pub protocols: Protocols,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Protocols {
    #[serde(deserialize_with = "present")]
    pub grpc: Option<GrpcConfig>,
    #[serde(deserialize_with = "present")]
    pub http: Option<HttpConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    pub endpoint: String,
    /// Only `tcp`.
    pub transport: String,
    pub max_recv_msg_size_mib: usize,
    pub max_concurrent_streams: Option<u32>,
    /// Only `false`: tracelab has no per-request client metadata to forward (see
    /// [`refuse_include_metadata`]).
    pub include_metadata: bool,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        Self {
            endpoint: "0.0.0.0:4317".into(),
            transport: "tcp".into(),
            max_recv_msg_size_mib: 4,
            max_concurrent_streams: None,
            include_metadata: false,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorsConfig {
    /// Origins allowed to send from a browser; `*` allows any, `https://*.example.com` wildcards.
    pub allowed_origins: Vec<String>,
    /// Request headers allowed besides the OTLP ones.
    pub allowed_headers: Vec<String>,
    /// Seconds a preflight answer may be cached.
    pub max_age: Option<u64>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub endpoint: String,
    /// Bytes; larger requests (compressed or decompressed) get 413.
    pub max_request_body_size: usize,
    /// Only `false`, as for gRPC.
    pub include_metadata: bool,
    pub cors: Option<CorsConfig>,
    pub traces_url_path: String,
    pub metrics_url_path: String,
    pub logs_url_path: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            endpoint: "0.0.0.0:4318".into(),
            max_request_body_size: 20 * 1024 * 1024,
            include_metadata: false,
            cors: None,
            traces_url_path: "/v1/traces".into(),
            metrics_url_path: "/v1/metrics".into(),
            logs_url_path: "/v1/logs".into(),
        }
    }
}

/// Contrib's `include_metadata: true` copies request headers into the client metadata that
/// `batch`'s `metadata_keys` and auth/header-setter extensions read; tracelab has none of those, so
/// the setting could only be silently ignored: `true` is refused, `false` (the default) accepted.
fn refuse_include_metadata(path: &str, on: bool) -> Result<(), FieldError> {
    if on {
        return Err(FieldError::new(
            path,
            "`include_metadata: true` is not supported: tracelab forwards no request metadata \
             (no batch `metadata_keys`, no header-setter or auth extensions read it); remove the key",
        ));
    }
    Ok(())
}

impl OtlpReceiverConfig {
    pub fn validate(&self) -> Result<(), FieldError> {
        let p = &self.protocols;
        if p.grpc.is_none() && p.http.is_none() {
            return Err(FieldError::new(
                "protocols",
                "enable at least one protocol: `grpc` and/or `http`",
            ));
        }
        if let Some(g) = &p.grpc {
            check_listen("protocols.grpc.endpoint", &g.endpoint)?;
            refuse_include_metadata("protocols.grpc.include_metadata", g.include_metadata)?;
            if g.transport != "tcp" {
                return Err(FieldError::new(
                    "protocols.grpc.transport",
                    format!("unsupported transport `{}`; expected `tcp`", g.transport),
                ));
            }
            if g.max_recv_msg_size_mib == 0 {
                return Err(FieldError::new(
                    "protocols.grpc.max_recv_msg_size_mib",
                    "must be at least 1",
                ));
            }
        }
        if let Some(h) = &p.http {
            check_listen("protocols.http.endpoint", &h.endpoint)?;
            refuse_include_metadata("protocols.http.include_metadata", h.include_metadata)?;
            if h.max_request_body_size == 0 {
                return Err(FieldError::new(
                    "protocols.http.max_request_body_size",
                    "must be at least 1 (bytes)",
                ));
            }
            for (f, v) in [
                ("traces_url_path", &h.traces_url_path),
                ("metrics_url_path", &h.metrics_url_path),
                ("logs_url_path", &h.logs_url_path),
            ] {
                if !v.starts_with('/') {
                    return Err(FieldError::new(
                        format!("protocols.http.{f}"),
                        "must start with `/`",
                    ));
                }
            }
            if let Some(c) = &h.cors {
                for (i, o) in c.allowed_origins.iter().enumerate() {
                    if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
                        return Err(FieldError::new(
                            format!("protocols.http.cors.allowed_origins[{i}]"),
                            format!(
                                "`{o}` is not an origin; expected `*` or e.g. https://app.example.com"
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}
