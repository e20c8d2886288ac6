//! Listen and dial endpoints (`host:port`) as component configs give them.

use super::FieldError;

/// Checks a `host:port` endpoint (host may be a name, e.g. `tempo:4317`).
pub fn resolve_endpoint(endpoint: &str) -> Result<(), String> {
    let (host, port) = endpoint.rsplit_once(':').ok_or_else(|| {
        format!("invalid endpoint `{endpoint}`; expected host:port, e.g. 0.0.0.0:4317")
    })?;
    if host.is_empty() {
        return Err(format!(
            "invalid endpoint `{endpoint}`: empty host; expected host:port, e.g. 0.0.0.0:4317"
        ));
    }
    port.parse::<u16>().map_err(|_| {
        format!("invalid endpoint `{endpoint}`: port `{port}` is not a number 0-65535")
    })?;
    Ok(())
}

/// A listen endpoint as a socket address (`localhost` is 127.0.0.1).
pub fn listen_addr(endpoint: &str) -> Result<std::net::SocketAddr, String> {
    resolve_endpoint(endpoint)?;
    let (host, port) = endpoint.rsplit_once(':').unwrap_or_default();
    let host = match host {
        "localhost" => "127.0.0.1",
        h => h.trim_start_matches('[').trim_end_matches(']'),
    };
    format!("{host}:{port}")
        .parse::<std::net::SocketAddr>()
        .or_else(|_| {
            let ip: std::net::IpAddr = host.parse().map_err(|_| {
                format!("cannot listen on `{endpoint}`: expected an IP address or localhost")
            })?;
            Ok(std::net::SocketAddr::new(ip, port.parse().unwrap_or(0)))
        })
}

/// Validation helper for listen endpoints in component configs.
pub fn check_listen(field: &str, endpoint: &str) -> Result<(), FieldError> {
    listen_addr(endpoint)
        .map(|_| ())
        .map_err(|m| FieldError::new(field, m))
}
