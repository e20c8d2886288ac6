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
