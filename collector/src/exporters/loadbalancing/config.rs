//! Settings of the `loadbalancing` exporter, in the shape of the contrib
//! `loadbalancingexporter`: `routing_key`, `protocol.otlp` (the `otlp` exporter's settings
//! without `endpoint`) and exactly one `resolver` (`static` or `dns`).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::component::FieldError;
use crate::exporters::otlp::OtlpExporterConfig;

/// Port used when a hostname gives none (the OTLP/gRPC port).
pub const DEFAULT_PORT: u16 = 4317;

/// What a batch is split and routed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoutingKey {
    /// Every span (log record) of a trace goes to the same backend.
    TraceId,
    /// Every resource of a `service.name` goes to the same backend.
    Service,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoadBalancingExporterConfig {
    /// `traceID` (default) or `service`.
    pub routing_key: Option<String>,
    pub protocol: ProtocolConfig,
    pub resolver: ResolverConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtocolConfig {
    /// The settings of every backend's `otlp` exporter; `endpoint` comes from the resolver.
    pub otlp: OtlpExporterConfig,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ResolverConfig {
    #[serde(rename = "static")]
    pub static_: Option<StaticResolverConfig>,
    pub dns: Option<DnsResolverConfig>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StaticResolverConfig {
    /// `host[:port]`, port 4317 when omitted.
    pub hostnames: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsResolverConfig {
    /// Resolved to all its A/AAAA records (e.g. a Kubernetes headless Service).
    pub hostname: String,
    #[serde(deserialize_with = "port")]
    pub port: u16,
    /// Re-resolve interval.
    #[serde(deserialize_with = "crate::component::duration::deserialize")]
    pub interval: Duration,
    /// Timeout of one lookup.
    #[serde(deserialize_with = "crate::component::duration::deserialize")]
    pub timeout: Duration,
}

impl Default for DnsResolverConfig {
    fn default() -> Self {
        Self {
            hostname: String::new(),
            port: DEFAULT_PORT,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
        }
    }
}

/// A port as a number or (as contrib writes it) a string.
fn port<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Num(u16),
        Text(String),
    }
    let bad = || serde::de::Error::custom("invalid port: expected a number 1-65535");
    match Raw::deserialize(d).map_err(|_| bad())? {
        Raw::Num(n) => Ok(n),
        Raw::Text(s) => s.trim().parse().map_err(|_| bad()),
    }
}

/// `host[:port]` → `host:port` (port 4317 when omitted; a bare IPv6 address is bracketed).
pub fn with_default_port(hostname: &str) -> Result<String, String> {
    let h = hostname.trim();
    if h.is_empty() {
        return Err("empty hostname; expected host[:port]".into());
    }
    let (host, port) = if let Some(rest) = h.strip_prefix('[') {
        match rest.split_once(']') {
            Some((ip, "")) => (format!("[{ip}]"), None),
            Some((ip, p)) if p.starts_with(':') => (format!("[{ip}]"), Some(&p[1..])),
            _ => return Err(format!("invalid hostname `{h}`; expected host[:port]")),
        }
    } else if h.matches(':').count() > 1 {
        // An IPv6 address without a port.
        (format!("[{h}]"), None)
    } else {
        match h.split_once(':') {
            Some((host, p)) => (host.to_string(), Some(p)),
            None => (h.to_string(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(format!("invalid hostname `{h}`: empty host"));
    }
    let port =
        match port {
            None => DEFAULT_PORT,
            Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
                format!("invalid hostname `{h}`: port `{p}` is not a number 1-65535")
            })?,
        };
    Ok(format!("{host}:{port}"))
}

impl LoadBalancingExporterConfig {
    pub fn routing_key(&self) -> RoutingKey {
        match self.routing_key.as_deref() {
            Some("service") => RoutingKey::Service,
            _ => RoutingKey::TraceId,
        }
    }

    pub fn validate(&self) -> Result<(), FieldError> {
        match self.routing_key.as_deref() {
            None | Some("traceID" | "service") => {}
            Some(k @ ("resource" | "metric" | "streamID")) => {
                return Err(FieldError::new(
                    "routing_key",
                    format!(
                        "routing_key `{k}` (metrics routing) is not supported by tracelab; expected `traceID` or `service`"
                    ),
                ));
            }
            Some(other) => {
                return Err(FieldError::new(
                    "routing_key",
                    format!("unknown routing_key `{other}`; expected `traceID` or `service`"),
                ));
            }
        }
        let otlp = &self.protocol.otlp;
        if !otlp.endpoint.is_empty() {
            return Err(FieldError::new(
                "protocol.otlp.endpoint",
                "not allowed here: the backends' endpoints come from the resolver",
            ));
        }
        // The otlp exporter's own checks, with a stand-in endpoint.
        let mut probe = otlp.clone();
        probe.endpoint = format!("backend:{DEFAULT_PORT}");
        probe
            .validate()
            .map_err(|e| FieldError::new(format!("protocol.otlp.{}", e.path), e.message))?;
        match (&self.resolver.static_, &self.resolver.dns) {
            (Some(_), Some(_)) => Err(FieldError::new(
                "resolver",
                "both `static` and `dns` are given; the loadbalancing exporter takes exactly one resolver",
            )),
            (None, None) => Err(FieldError::new(
                "resolver",
                "required: exactly one resolver, `static: {hostnames: [host:port, ...]}` or `dns: {hostname: ...}`",
            )),
            (Some(s), None) => {
                if s.hostnames.is_empty() {
                    return Err(FieldError::new(
                        "resolver.static.hostnames",
                        "required: at least one host[:port]",
                    ));
                }
                for (i, h) in s.hostnames.iter().enumerate() {
                    with_default_port(h).map_err(|m| {
                        FieldError::new(format!("resolver.static.hostnames[{i}]"), m)
                    })?;
                }
                Ok(())
            }
            (None, Some(d)) => {
                if d.hostname.trim().is_empty() {
                    return Err(FieldError::new(
                        "resolver.dns.hostname",
                        "required: the name to resolve, e.g. a headless Service's DNS name",
                    ));
                }
                if d.hostname.contains(':') {
                    return Err(FieldError::new(
                        "resolver.dns.hostname",
                        "a host name without a port; give the port in `resolver.dns.port`",
                    ));
                }
                if d.port == 0 {
                    return Err(FieldError::new("resolver.dns.port", "must be 1-65535"));
                }
                if d.interval.is_zero() {
                    return Err(FieldError::new(
                        "resolver.dns.interval",
                        "must be greater than 0",
                    ));
                }
                if d.timeout.is_zero() {
                    return Err(FieldError::new(
                        "resolver.dns.timeout",
                        "must be greater than 0",
                    ));
                }
                Ok(())
            }
        }
    }

    /// The settings of the `otlp` exporter sending to `endpoint`.
    pub fn backend_config(&self, endpoint: &str) -> OtlpExporterConfig {
        let mut c = self.protocol.otlp.clone();
        c.endpoint = endpoint.to_string();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_port_is_added() {
        assert_eq!(with_default_port("gw").unwrap(), "gw:4317");
        assert_eq!(with_default_port("gw:1234").unwrap(), "gw:1234");
        assert_eq!(
            with_default_port("127.0.0.1:14317").unwrap(),
            "127.0.0.1:14317"
        );
        assert_eq!(with_default_port("::1").unwrap(), "[::1]:4317");
        assert_eq!(with_default_port("[::1]").unwrap(), "[::1]:4317");
        assert_eq!(with_default_port("[::1]:9").unwrap(), "[::1]:9");
        assert!(with_default_port("gw:x").is_err());
        assert!(with_default_port(":4317").is_err());
        assert!(with_default_port("").is_err());
    }
}
