//! Every key the config parser accepts either acts or is refused at load with its file:line
//! (issue 9): the contrib keys tracelab cannot honour, and `service.telemetry`.

use collector::config::{ConfigError, load_str};

fn err(yaml: &str) -> ConfigError {
    load_str(yaml, "keys.yaml").expect_err("config should be rejected")
}

/// `(line, path)` of the only issue, and its message.
fn only(e: &ConfigError) -> ((usize, &str), &str) {
    assert_eq!(e.issues.len(), 1, "{e}");
    let i = &e.issues[0];
    ((i.line, i.path.as_str()), i.message.as_str())
}

const PIPE: &str = "service:
  pipelines:
    traces: {receivers: [otlp], exporters: [debug]}
";

#[test]
fn include_metadata_true_is_refused_false_accepted() {
    for proto in ["grpc", "http"] {
        let yaml = format!(
            "receivers:
  otlp:
    protocols:
      {proto}:
        endpoint: 127.0.0.1:0
        include_metadata: true
exporters:
  debug:
{PIPE}"
        );
        let e = err(&yaml);
        let (at, msg) = only(&e);
        let path = format!("receivers.otlp.protocols.{proto}.include_metadata");
        assert_eq!(at, (6, path.as_str()));
        assert!(msg.contains("not supported"), "{msg}");
        assert!(
            e.to_string()
                .contains(&format!("keys.yaml:6: {path}: `include_metadata: true`")),
            "{e}"
        );
        let ok = yaml.replace("include_metadata: true", "include_metadata: false");
        load_str(&ok, "keys.yaml").unwrap();
    }
}

#[test]
fn insecure_skip_verify_is_refused() {
    for (ty, endpoint) in [("otlp", "tempo:4317"), ("otlphttp", "http://tempo:4318")] {
        let yaml = format!(
            "receivers:
  otlp:
    protocols: {{grpc: {{endpoint: 127.0.0.1:0}}}}
exporters:
  debug:
  {ty}:
    endpoint: {endpoint}
    tls:
      insecure: true
      insecure_skip_verify: true
{PIPE}"
        );
        let e = err(&yaml);
        let (at, msg) = only(&e);
        // otlphttp reports the endpoint whose TLS settings are wrong; otlp the key itself.
        let want = if ty == "otlp" {
            (10, "exporters.otlp.tls.insecure_skip_verify")
        } else {
            (7, "exporters.otlphttp.endpoint")
        };
        assert_eq!(at, want, "{e}");
        assert!(msg.contains("insecure_skip_verify"), "{msg}");
        assert!(msg.contains("TLS is not built"), "{msg}");
    }
}

#[test]
fn string_attribute_cache_max_size_is_refused() {
    let e = err("receivers:
  otlp:
    protocols: {grpc: {endpoint: 127.0.0.1:0}}
processors:
  tail_sampling:
    policies:
      - name: route
        type: string_attribute
        string_attribute:
          key: http.route
          values: [\"^/orders\"]
          enabled_regex_matching: true
          cache_max_size: 100
exporters:
  debug:
service:
  pipelines:
    traces: {receivers: [otlp], processors: [tail_sampling], exporters: [debug]}
");
    let (at, msg) = only(&e);
    assert_eq!(
        at,
        (
            13,
            "processors.tail_sampling.policies[0].string_attribute.cache_max_size"
        )
    );
    assert!(msg.contains("not supported"), "{msg}");
}

#[test]
fn debug_sampling_keys_load() {
    let cfg = load_str(
        "receivers:
  otlp:
    protocols: {grpc: {endpoint: 127.0.0.1:0}}
exporters:
  debug:
    sampling_initial: 5
    sampling_thereafter: 200
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [debug]}
",
        "keys.yaml",
    )
    .unwrap();
    let collector::config::ExporterConfig::Debug(d) = cfg.exporters.values().next().unwrap() else {
        panic!("debug exporter expected");
    };
    assert_eq!(
        (d.sampling_initial, d.sampling_thereafter),
        (Some(5), Some(200))
    );
}

fn with_telemetry(telemetry: &str) -> String {
    format!(
        "receivers:
  otlp:
    protocols: {{grpc: {{endpoint: 127.0.0.1:0}}}}
exporters:
  debug:
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [debug]}}
  telemetry:
{telemetry}"
    )
}

#[test]
fn service_telemetry_keys_are_checked() {
    let cfg = load_str(
        &with_telemetry(
            "    metrics: {level: Detailed, address: 127.0.0.1:0}\n    logs: {level: warn, encoding: console}\n",
        ),
        "keys.yaml",
    )
    .unwrap();
    assert!(cfg.telemetry.metrics.enabled());
    assert_eq!(cfg.telemetry.logs.level.as_deref(), Some("warn"));
    assert_eq!(cfg.telemetry.logs.encoding.as_deref(), Some("console"));
    let none = load_str(&with_telemetry("    metrics: {level: none}\n"), "keys.yaml").unwrap();
    assert!(!none.telemetry.metrics.enabled());

    for (telemetry, want) in [
        (
            "    metrics: {level: verbose}\n",
            (10, "service.telemetry.metrics.level"),
        ),
        (
            "    metrics:\n      level: none\n      address: 127.0.0.1:0\n",
            (12, "service.telemetry.metrics.address"),
        ),
        (
            "    logs: {level: fatal}\n",
            (10, "service.telemetry.logs.level"),
        ),
        (
            "    logs:\n      encoding: text\n",
            (11, "service.telemetry.logs.encoding"),
        ),
        (
            "    logs:\n      sampling: {initial: 1}\n",
            (11, "service.telemetry.logs.sampling"),
        ),
    ] {
        let e = err(&with_telemetry(telemetry));
        let (at, _) = only(&e);
        assert_eq!(at, want, "{telemetry}: {e}");
    }
}

#[tokio::test]
async fn metrics_level_none_turns_the_collectors_own_metrics_off() {
    let yaml = |level: &str| {
        format!(
            "receivers:
  otlp:
    protocols: {{http: {{endpoint: 127.0.0.1:0}}}}
exporters:
  nop:
extensions:
  health_check: {{endpoint: 127.0.0.1:0}}
service:
  extensions: [health_check]
  pipelines:
    traces: {{receivers: [otlp], exporters: [nop]}}
  telemetry:
    metrics: {{level: {level}}}
"
        )
    };
    for (level, status) in [("none", 404), ("basic", 200)] {
        let cfg = load_str(&yaml(level), "keys.yaml").unwrap();
        let c = collector::Collector::start(cfg).await.unwrap();
        let base = format!("http://{}", c.addr("health_check").unwrap());
        let health = reqwest::get(format!("{base}/")).await.unwrap();
        assert_eq!(health.status(), 200, "health stays up at level {level}");
        let m = reqwest::get(format!("{base}/metrics")).await.unwrap();
        assert_eq!(m.status(), status, "level {level}");
        c.shutdown().await;
    }
}

#[test]
fn prometheus_send_timestamps_true_is_refused() {
    let yaml = "receivers:
  otlp:
    protocols: {grpc: {endpoint: 127.0.0.1:0}}
exporters:
  prometheus:
    endpoint: 127.0.0.1:0
    send_timestamps: true
service:
  pipelines:
    metrics: {receivers: [otlp], exporters: [prometheus]}
";
    let e = err(yaml);
    let (at, msg) = only(&e);
    assert_eq!(at, (7, "exporters.prometheus.send_timestamps"));
    assert!(msg.contains("not supported"), "{msg}");
    load_str(&yaml.replace("true", "false"), "keys.yaml").unwrap();
}

/// Runs the collector binary on `config` (RUST_LOG as given, or removed) and collects its stdout
/// lines until one contains `until` or `wait` passes after the first line; then kills it.
fn run_binary(
    config: &str,
    rust_log: Option<&str>,
    until: &str,
    wait: std::time::Duration,
) -> Vec<String> {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, config).unwrap();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_collector"));
    cmd.arg("--config")
        .arg(&path)
        .env_remove("RUST_LOG")
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("LOGS_SUFFIX")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    if let Some(l) = rust_log {
        cmd.env("RUST_LOG", l);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut stop_at: Option<std::time::Instant> = None;
    loop {
        let now = std::time::Instant::now();
        let end = stop_at.unwrap_or(deadline).min(deadline);
        if now >= end {
            break;
        }
        match rx.recv_timeout(end - now) {
            Ok(line) => {
                let done = line.contains(until);
                lines.push(line);
                if done {
                    break;
                }
                stop_at.get_or_insert(std::time::Instant::now() + wait);
            }
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    lines
}

fn logs_config(logs: &str) -> String {
    format!(
        "receivers:
  otlp:
    protocols: {{grpc: {{endpoint: 127.0.0.1:0}}}}
exporters:
  nop:
  debug:
    verbosity: basic${{env:LOGS_SUFFIX}}
service:
  pipelines:
    traces: {{receivers: [otlp], exporters: [nop, debug]}}
  telemetry:
    logs: {logs}
"
    )
}

#[test]
fn service_telemetry_logs_level_and_encoding_drive_the_binarys_logs() {
    let secs = std::time::Duration::from_secs;
    // console + info: plain lines; the unset variable is warned about once, at its line.
    let lines = run_binary(
        &logs_config("{level: info, encoding: console}"),
        None,
        "collector started",
        secs(20),
    );
    assert!(
        lines.iter().any(|l| l.contains("collector started")),
        "{lines:?}"
    );
    assert!(
        lines.iter().all(|l| !l.starts_with('{')),
        "console, not JSON: {lines:?}"
    );
    let warned: Vec<_> = lines
        .iter()
        .filter(|l| l.contains("`LOGS_SUFFIX` is not set"))
        .collect();
    assert_eq!(warned.len(), 1, "{lines:?}");
    assert!(warned[0].contains("WARN"), "{warned:?}");

    // json + warn: the warning (JSON) but no info lines.
    let lines = run_binary(
        &logs_config("{level: warn, encoding: json}"),
        None,
        "collector started",
        secs(3),
    );
    assert!(
        !lines.is_empty() && lines.iter().all(|l| l.starts_with('{')),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.contains("LOGS_SUFFIX")), "{lines:?}");
    assert!(
        !lines.iter().any(|l| l.contains("collector started")),
        "{lines:?}"
    );

    // RUST_LOG, when set, wins over `level`.
    let lines = run_binary(
        &logs_config("{level: error}"),
        Some("info"),
        "collector started",
        secs(20),
    );
    assert!(
        lines.iter().any(|l| l.contains("collector started")),
        "{lines:?}"
    );
}

#[test]
fn validate_and_print_config_list_unset_variables() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(&path, logs_config("{level: info}")).unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_collector"))
            .args(args)
            .arg("--config")
            .arg(&path)
            .env_remove("LOGS_SUFFIX")
            .output()
            .unwrap()
    };
    let out = run(&["validate"]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: ")
            && stderr.contains(
                "c.yaml:7: exporters.debug.verbosity: environment variable `LOGS_SUFFIX` is not set"
            ),
        "{stderr}"
    );
    let out = run(&["--print-config"]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let w = doc["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1);
    assert!(w[0].as_str().unwrap().contains("LOGS_SUFFIX"), "{w:?}");
    let s = doc["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["env"] == "LOGS_SUFFIX")
        .unwrap();
    assert_eq!(
        (s["source"].as_str(), s["value"].as_str()),
        (Some("unset"), Some(""))
    );
}
