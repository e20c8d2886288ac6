//! Config loading: the seeds' configs load unchanged; bad configs name file, line, key path
//! and what is expected.

use collector::config::{ConfigError, load_file, load_str, load_str_with_env};

fn fixture(name: &str) -> String {
    format!(
        "{}/tests/fixtures/seed-configs/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

#[test]
fn every_seed_config_loads_unchanged() {
    for name in [
        "000-tail-sampling.yaml",
        "002-memory-limiter.yaml",
        "002-tail-sampling-fragment.yaml",
        "003-reference.yaml",
        "003-tail-sampling-fragment.yaml",
    ] {
        let cfg = load_file(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!cfg.pipelines.is_empty(), "{name}");
    }
}

#[test]
fn seed_000_has_the_expected_pipelines() {
    let cfg = load_file(fixture("000-tail-sampling.yaml")).unwrap();
    let ids: Vec<_> = cfg.pipelines.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["metrics", "traces"]);
    let traces = cfg.pipelines.iter().find(|p| p.id == "traces").unwrap();
    let procs: Vec<String> = traces.processors.iter().map(|p| p.to_string()).collect();
    assert_eq!(procs, ["batch", "tail_sampling"]);
    assert_eq!(traces.exporters[0].to_string(), "otlp/tempo");
}

#[test]
fn shipped_configs_load() {
    for name in ["default.yaml", "tail-sampling.yaml"] {
        let path = format!("{}/config/{name}", env!("CARGO_MANIFEST_DIR"));
        load_file(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

fn err(yaml: &str) -> ConfigError {
    load_str(yaml, "bad.yaml").expect_err("config should be rejected")
}

const BASE_TAIL: &str = "receivers:
  otlp:
    protocols:
      grpc:
processors:
  tail_sampling:
    policies:
      - name: errors
        type: status_code
        status_code: { status_codes: [ERROR] }
      - name: slow
        type: latency
        latency: { threshold_ms: fast }
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [debug]
";

#[test]
fn bad_value_names_file_line_and_key_path() {
    let e = err(BASE_TAIL);
    assert_eq!(e.issues.len(), 1, "{e}");
    let i = &e.issues[0];
    assert_eq!(i.file, "bad.yaml");
    assert_eq!(
        i.path,
        "processors.tail_sampling.policies[1].latency.threshold_ms"
    );
    assert_eq!(i.line, 13, "{e}");
    let text = e.to_string();
    assert!(text.contains("bad.yaml:13:"), "{text}");
    assert!(text.contains("fast"), "says what was found: {text}");
}

#[test]
fn unknown_key_is_rejected_with_its_path_and_the_expected_keys() {
    let e = err("receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 0.0.0.0:4317
        max_recv_msg_size: 4
exporters:
  debug:
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [debug]}
");
    let i = &e.issues[0];
    assert_eq!(i.path, "receivers.otlp.protocols.grpc.max_recv_msg_size");
    assert_eq!(i.line, 6);
    assert!(i.message.contains("unknown field"), "{}", i.message);
    assert!(
        i.message.contains("max_recv_msg_size_mib"),
        "lists expected keys: {}",
        i.message
    );
}

#[test]
fn unknown_component_type_lists_the_known_ones() {
    let e = err("receivers:
  otlp:
    protocols: {http: }
exporters:
  kafka:
    brokers: [localhost:9092]
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [kafka]}
");
    let i = &e.issues[0];
    assert_eq!(i.path, "exporters.kafka");
    assert_eq!(i.line, 5);
    assert!(
        i.message.contains("unknown exporter type `kafka`"),
        "{}",
        i.message
    );
    assert!(i.message.contains("otlphttp"), "{}", i.message);
}

#[test]
fn pipeline_referencing_an_undefined_component_is_an_error() {
    let e = err("receivers:
  otlp:
    protocols: {grpc: }
processors:
  batch:
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch, memory_limiter]
      exporters: [debug, otlp/tempo]
");
    let paths: Vec<_> = e.issues.iter().map(|i| (i.path.as_str(), i.line)).collect();
    assert_eq!(
        paths,
        [
            ("service.pipelines.traces.processors[1]", 12),
            ("service.pipelines.traces.exporters[1]", 13)
        ],
        "{e}"
    );
    assert!(
        e.issues[0]
            .message
            .contains("`memory_limiter` is not defined")
    );
}

#[test]
fn component_validation_reports_the_field() {
    let e = err("receivers:
  otlp:
    protocols: {grpc: }
processors:
  batch:
    send_batch_size: 100
    send_batch_max_size: 10
  memory_limiter:
    check_interval: 1s
exporters:
  debug:
    verbosity: loud
service:
  pipelines:
    traces: {receivers: [otlp], processors: [batch, memory_limiter], exporters: [debug]}
");
    let got: Vec<_> = e.issues.iter().map(|i| i.path.as_str()).collect();
    assert!(got.contains(&"processors.batch.send_batch_max_size"), "{e}");
    assert!(got.contains(&"processors.memory_limiter.limit_mib"), "{e}");
    assert!(got.contains(&"exporters.debug.verbosity"), "{e}");
    let v = e
        .issues
        .iter()
        .find(|i| i.path == "exporters.debug.verbosity")
        .unwrap();
    assert!(
        v.message.contains("basic"),
        "names the expected values: {}",
        v.message
    );
}

#[test]
fn prometheus_exporter_only_in_metrics_pipelines() {
    let e = err("receivers:
  otlp:
    protocols: {grpc: }
exporters:
  prometheus:
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [prometheus]}
");
    assert_eq!(e.issues[0].path, "service.pipelines.traces.exporters[0]");
    assert!(e.issues[0].message.contains("does not support traces"));
}

#[test]
fn env_substitution_and_missing_variables() {
    let yaml = "receivers:
  otlp:
    protocols:
      http:
        endpoint: ${env:HTTP_EP}
        max_request_body_size: ${env:MAX_BODY:-1024}
exporters:
  file:
    path: ${env:OUT}
service:
  pipelines:
    logs: {receivers: [otlp], exporters: [file]}
";
    let env = |k: &str| match k {
        "HTTP_EP" => Some("127.0.0.1:0".to_string()),
        "OUT" => Some("/tmp/x.jsonl".to_string()),
        _ => None,
    };
    let cfg = load_str_with_env(yaml, "env.yaml", &env).unwrap();
    let collector::config::ReceiverConfig::Otlp(o) = cfg.receivers.values().next().unwrap();
    let http = o.protocols.http.as_ref().unwrap();
    assert_eq!(http.endpoint, "127.0.0.1:0");
    assert_eq!(http.max_request_body_size, 1024);

    assert!(cfg.warnings.is_empty());

    // Unset without a default: "" (here null, the value being only the reference), as contrib,
    // and a warning naming the variable at its line; the resulting bad value is the error.
    let e = load_str_with_env(yaml, "env.yaml", &|_| None).unwrap_err();
    assert_eq!(e.issues[0].path, "receivers.otlp.protocols.http.endpoint");
    assert_eq!(e.issues[0].line, 5);
    let warned: Vec<_> = e
        .warnings
        .iter()
        .map(|w| (w.line, w.path.as_str()))
        .collect();
    assert_eq!(
        warned,
        [
            (5, "receivers.otlp.protocols.http.endpoint"),
            (9, "exporters.file.path")
        ]
    );
    assert!(e.warnings[0].message.contains("`HTTP_EP` is not set"));
    assert!(e.to_string().contains("warning: env.yaml:5: "), "{e}");

    // A config that still loads keeps the warnings (`collector validate` prints them); each
    // variable once, at its first reference.
    let ok = "receivers:
  otlp:
    protocols:
      grpc: {endpoint: \"127.0.0.1:0\"}
exporters:
  debug:
    verbosity: basic${env:SUFFIX}
  file:
    path: /tmp/${env:SUFFIX}x.jsonl
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [debug, file]}
";
    let cfg = load_str_with_env(ok, "ok.yaml", &|_| None).unwrap();
    assert_eq!(cfg.warnings.len(), 1);
    assert_eq!(
        cfg.warnings[0].to_string(),
        "ok.yaml:7: exporters.debug.verbosity: environment variable `SUFFIX` is not set; `${env:SUFFIX}` expanded to \"\" (give a default with `${env:SUFFIX:-value}`)"
    );

    // The default applies only when unset: an empty but set variable gives "".
    let dflt = "receivers:
  otlp:
    protocols:
      grpc: {endpoint: \"127.0.0.1:0\"}
exporters:
  file:
    path: \"/tmp/out${env:SUFFIX:-.jsonl}\"
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [file]}
";
    let path_of = |cfg: &collector::LoadedConfig| match cfg.exporters.values().next().unwrap() {
        collector::config::ExporterConfig::File(f) => f.path.clone(),
        _ => unreachable!(),
    };
    let unset = load_str_with_env(dflt, "d.yaml", &|_| None).unwrap();
    assert_eq!(path_of(&unset), "/tmp/out.jsonl");
    let empty = load_str_with_env(dflt, "d.yaml", &|_| Some(String::new())).unwrap();
    assert_eq!(path_of(&empty), "/tmp/out");
    assert!(empty.warnings.is_empty());
}

#[test]
fn connectors_must_be_used_on_both_sides() {
    let e = err("receivers:
  otlp:
    protocols: {grpc: }
connectors:
  spanmetrics:
exporters:
  debug:
service:
  pipelines:
    traces: {receivers: [otlp], exporters: [spanmetrics]}
");
    assert_eq!(e.issues[0].path, "connectors.spanmetrics");
    assert!(
        e.issues[0]
            .message
            .contains("no pipeline uses it as a receiver")
    );
}

#[test]
fn invalid_yaml_is_reported_with_its_line() {
    let e = err("receivers:\n  otlp: [\n");
    assert!(e.issues[0].message.contains("invalid YAML"), "{e}");
    assert!(e.issues[0].line >= 2);
}

const LB_PIPELINES: &str = "service:
  pipelines:
    traces: {receivers: [otlp], exporters: [loadbalancing]}
    logs: {receivers: [otlp], exporters: [loadbalancing]}
";

fn lb(exporter: &str) -> String {
    format!(
        "receivers:
  otlp:
    protocols:
      grpc:
exporters:
{exporter}{LB_PIPELINES}"
    )
}

#[test]
fn loadbalancing_static_and_dns_configs_load() {
    use collector::config::ExporterConfig;
    use collector::exporters::loadbalancing::RoutingKey;
    let cfg = load_str(
        &lb("  loadbalancing:
    protocol:
      otlp:
        tls: {insecure: true}
        timeout: 2s
        sending_queue: {queue_size: 50}
    resolver:
      static:
        hostnames: [\"127.0.0.1:14317\", gateway-1, \"[::1]:4317\"]
"),
        "lb.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ExporterConfig::LoadBalancing(c) = cfg.exporters.values().next().unwrap() else {
        panic!("not a loadbalancing exporter")
    };
    assert_eq!(c.routing_key(), RoutingKey::TraceId);
    assert_eq!(c.protocol.otlp.sending_queue.queue_size, 50);
    assert_eq!(
        c.resolver.static_.as_ref().unwrap().hostnames,
        ["127.0.0.1:14317", "gateway-1", "[::1]:4317"]
    );

    let cfg = load_str(
        &lb("  loadbalancing:
    routing_key: service
    protocol:
      otlp:
        tls:
          insecure: true
    resolver:
      dns:
        hostname: tracelab-collector-gateway.tracelab.svc.cluster.local
        port: 14317
        interval: 2s
"),
        "lb.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ExporterConfig::LoadBalancing(c) = cfg.exporters.values().next().unwrap() else {
        panic!("not a loadbalancing exporter")
    };
    assert_eq!(c.routing_key(), RoutingKey::Service);
    let dns = c.resolver.dns.as_ref().unwrap();
    assert_eq!(dns.port, 14317);
    assert_eq!(dns.interval, std::time::Duration::from_secs(2));
    assert_eq!(dns.timeout, std::time::Duration::from_secs(1), "default");

    // Defaults: port 4317, interval 5s.
    let cfg = load_str(
        &lb("  loadbalancing:
    protocol: {otlp: {tls: {insecure: true}}}
    resolver: {dns: {hostname: gateways}}
"),
        "lb.yaml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let ExporterConfig::LoadBalancing(c) = cfg.exporters.values().next().unwrap() else {
        panic!("not a loadbalancing exporter")
    };
    let dns = c.resolver.dns.as_ref().unwrap();
    assert_eq!(
        (dns.port, dns.interval),
        (4317, std::time::Duration::from_secs(5))
    );
}

#[test]
fn loadbalancing_needs_exactly_one_resolver() {
    let both = err(&lb("  loadbalancing/agents:
    protocol: {otlp: {tls: {insecure: true}}}
    resolver:
      static: {hostnames: [a]}
      dns: {hostname: b}
")
    .replace("[loadbalancing]", "[loadbalancing/agents]"));
    let i = &both.issues[0];
    assert_eq!(i.path, "exporters.loadbalancing/agents.resolver");
    assert!(i.message.contains("exactly one resolver"), "{}", i.message);
    assert!(both.to_string().contains("bad.yaml:8:"), "{both}");

    let neither = err(&lb("  loadbalancing:
    protocol: {otlp: {tls: {insecure: true}}}
"));
    let i = &neither.issues[0];
    assert_eq!(i.path, "exporters.loadbalancing.resolver");
    assert_eq!(i.line, 6, "the component's line");
    assert!(i.message.contains("exactly one resolver"), "{}", i.message);
    assert!(neither.to_string().contains("bad.yaml:6:"), "{neither}");

    let endpoint = err(&lb("  loadbalancing:
    protocol: {otlp: {endpoint: 'x:4317'}}
    resolver: {static: {hostnames: [a]}}
"));
    assert_eq!(
        endpoint.issues[0].path,
        "exporters.loadbalancing.protocol.otlp.endpoint"
    );
}

#[test]
fn loadbalancing_unknown_key_names_file_and_line() {
    let e = err(&lb("  loadbalancing:
    protocol: {otlp: {tls: {insecure: true}}}
    resolver:
      static:
        hostnames: [a]
        hostname: b
"));
    let i = &e.issues[0];
    assert_eq!(i.path, "exporters.loadbalancing.resolver.static.hostname");
    assert_eq!(i.line, 11);
    assert!(i.message.contains("unknown field"), "{}", i.message);
    assert!(e.to_string().contains("bad.yaml:11:"), "{e}");

    let k8s = err(&lb("  loadbalancing:
    resolver:
      k8s: {service: gw}
"));
    assert_eq!(k8s.issues[0].path, "exporters.loadbalancing.resolver.k8s");
    assert!(
        k8s.issues[0].message.contains("dns"),
        "{}",
        k8s.issues[0].message
    );
}

#[test]
fn loadbalancing_refuses_metrics_pipelines_naming_the_component() {
    let e = err("receivers:
  otlp:
    protocols:
      grpc:
exporters:
  loadbalancing:
    protocol: {otlp: {tls: {insecure: true}}}
    resolver: {static: {hostnames: [a]}}
service:
  pipelines:
    metrics: {receivers: [otlp], exporters: [loadbalancing]}
");
    let i = &e.issues[0];
    assert_eq!(i.path, "service.pipelines.metrics.exporters[0]");
    assert!(
        i.message.contains("`loadbalancing`") && i.message.contains("metrics"),
        "{}",
        i.message
    );
}

fn print_config(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_collector"));
    cmd.args(args).current_dir(env!("CARGO_MANIFEST_DIR"));
    for v in [
        "COLLECTOR_CONFIG",
        "COLLECTOR_OTLP_GRPC_ENDPOINT",
        "COLLECTOR_QUERY_ENDPOINT",
        "RUST_LOG",
        "OTEL_SERVICE_NAME",
    ] {
        cmd.env_remove(v);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("the collector binary runs")
}

fn setting<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    doc["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["env"] == name)
        .unwrap_or_else(|| panic!("{name} not in settings: {doc}"))
}

#[test]
fn print_config_lists_every_variable_with_its_source() {
    let out = print_config(
        &["--print-config", "--config", "config/default.yaml"],
        &[
            ("COLLECTOR_QUERY_ENDPOINT", "127.0.0.1:26686"),
            ("OTEL_SERVICE_NAME", "collector-under-test"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(doc["binary"], "collector");
    assert_eq!(doc["config_file"], "config/default.yaml");
    let cfg = setting(&doc, "COLLECTOR_CONFIG");
    assert_eq!(
        (&cfg["value"], &cfg["source"]),
        (&"config/default.yaml".into(), &"flag".into())
    );
    let q = setting(&doc, "COLLECTOR_QUERY_ENDPOINT");
    assert_eq!(q["value"], "127.0.0.1:26686");
    assert_eq!(q["source"], "env");
    let g = setting(&doc, "COLLECTOR_OTLP_GRPC_ENDPOINT");
    assert_eq!(g["value"], "0.0.0.0:4317");
    assert_eq!(g["source"], "default");
    assert_eq!(setting(&doc, "OTEL_SERVICE_NAME")["source"], "env");
    assert_eq!(
        setting(&doc, "OTEL_SERVICE_NAME")["value"],
        "collector-under-test"
    );
    assert_eq!(setting(&doc, "RUST_LOG")["source"], "unset");
    assert!(setting(&doc, "RUST_LOG")["value"].is_null());
    assert_eq!(
        doc["config"]["exporters"]["tracelab"]["query"]["endpoint"], "127.0.0.1:26686",
        "the effective config, after substitution"
    );
    // Every `${env:...}` of the file is listed, once.
    let text = std::fs::read_to_string(format!(
        "{}/config/default.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let names: Vec<&str> = doc["settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["env"].as_str().unwrap())
        .collect();
    for part in text.split("${env:").skip(1) {
        let name = part.split([':', '}']).next().unwrap();
        assert_eq!(names.iter().filter(|n| **n == name).count(), 1, "{name}");
    }
}

#[test]
fn print_config_takes_the_config_from_the_environment_and_fails_on_a_bad_one() {
    let out = print_config(
        &["--print-config"],
        &[("COLLECTOR_CONFIG", "config/default.yaml")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(setting(&doc, "COLLECTOR_CONFIG")["source"], "env");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "receivers:\n  otlp:\n    protocols: {grpc: {bogus: 1}}\n",
    )
    .unwrap();
    let out = print_config(&["--print-config", "-c", bad.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing printed on stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bad.yaml:3:"), "{stderr}");
}
