//! `tracelab probe URL`: the containers' health check (their runtime image has no curl). One GET,
//! no redirects followed; healthy means a 2xx answer within the timeout.

use std::time::Duration;

/// `2s`, `500ms`, `1m`, or a plain number of seconds (`1.5`).
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 2s, 500ms)"))?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        other => return Err(format!("`{s}`: unknown unit `{other}` (use ms, s or m)")),
    };
    if !secs.is_finite() || secs <= 0.0 || secs > 3600.0 {
        return Err(format!("`{s}` is out of range (more than 0, at most 1 h)"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// GETs `url`: `Ok(status)` on a 2xx, otherwise `Err` with a one-line reason.
pub async fn probe(url: &str, timeout: Duration) -> Result<u16, String> {
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
    let response = client.get(url).send().await.map_err(|e| {
        let what = if e.is_timeout() {
            format!("no answer within {}", crate::view::fmt_duration(timeout))
        } else if e.is_connect() {
            "cannot connect".to_owned()
        } else if e.is_builder() {
            "invalid URL".to_owned()
        } else {
            "request failed".to_owned()
        };
        format!("{what}: {}", root_cause(&e))
    })?;
    let status = response.status();
    if status.is_success() {
        Ok(status.as_u16())
    } else {
        Err(format!("HTTP {status}"))
    }
}

/// The innermost error of the chain (`Connection refused (os error 111)`), which says the most.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_timeout("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_timeout("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("soon").is_err());
        assert!(parse_timeout("2d").is_err());
    }
}
