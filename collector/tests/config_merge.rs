//! Several `--config` files, merged in order as the OpenTelemetry Collector merges them: the
//! pipelines in one file, the tail-sampling policies in another (our Kubernetes ConfigMaps).

use std::path::PathBuf;

use collector::config::load_sources_with_env;
use collector::load_files;

const GATEWAY: &str = "receivers:
  otlp:
    protocols:
      grpc:
        endpoint: ${env:GATEWAY_GRPC:-127.0.0.1:0}
processors:
  batch:
exporters:
  debug:
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch, tail_sampling]
      exporters: [debug]
";

/// The tail-sampling ConfigMap: policies only.
const TAIL_SAMPLING: &str = "processors:
  tail_sampling:
    decision_wait: ${env:TAIL_DECISION_WAIT:-10s}
    policies:
      - name: slow
        type: latency
        latency: { threshold_ms: 2000 }
      - name: errors
        type: status_code
        status_code: { status_codes: [ERROR] }
";

fn no_env(_: &str) -> Option<String> {
    None
}

fn write_pair(gateway: &str, tail: &str) -> (tempfile::TempDir, Vec<PathBuf>) {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("gateway.yaml");
    let b = dir.path().join("tail-sampling.yaml");
    std::fs::write(&a, gateway).unwrap();
    std::fs::write(&b, tail).unwrap();
    (dir, vec![a, b])
}

#[test]
fn a_pipeline_may_use_a_processor_defined_only_in_the_second_file() {
    let (_dir, paths) = write_pair(GATEWAY, TAIL_SAMPLING);
    let cfg = load_files(&paths).unwrap_or_else(|e| panic!("{e}"));
    let traces = &cfg.pipelines[0];
    let procs: Vec<String> = traces.processors.iter().map(|p| p.to_string()).collect();
    assert_eq!(procs, ["batch", "tail_sampling"]);
    assert_eq!(
        cfg.source,
        format!("{} + {}", paths[0].display(), paths[1].display())
    );
    // The first file alone is not a valid config: the processor is missing.
    let e = collector::load_file(&paths[0]).unwrap_err();
    assert!(e.to_string().contains("tail_sampling"), "{e}");
}

#[test]
fn an_error_in_the_second_file_names_the_second_file_and_line() {
    let tail = TAIL_SAMPLING.replace("threshold_ms: 2000", "threshold_ms: fast");
    let e = load_sources_with_env(
        &[("gateway.yaml", GATEWAY), ("tail-sampling.yaml", &tail)],
        &no_env,
    )
    .unwrap_err();
    assert_eq!(e.issues.len(), 1, "{e}");
    let i = &e.issues[0];
    assert_eq!(
        (i.file.as_str(), i.line, i.path.as_str()),
        (
            "tail-sampling.yaml",
            7,
            "processors.tail_sampling.policies[0].latency.threshold_ms"
        ),
        "{e}"
    );
    assert!(e.to_string().contains("tail-sampling.yaml:7: "), "{e}");

    // A missing field is reported at the line of the mapping that lacks it, in its own file.
    let tail = TAIL_SAMPLING.replace("        latency: { threshold_ms: 2000 }\n", "");
    let e = load_sources_with_env(
        &[("gateway.yaml", GATEWAY), ("tail-sampling.yaml", &tail)],
        &no_env,
    )
    .unwrap_err();
    let i = &e.issues[0];
    assert_eq!(
        (i.file.as_str(), i.line, i.path.as_str()),
        (
            "tail-sampling.yaml",
            5,
            "processors.tail_sampling.policies[0].latency"
        ),
        "{e}"
    );
}

#[test]
fn an_error_in_the_first_file_names_the_first_file_and_line() {
    let gateway = GATEWAY.replace("exporters: [debug]", "exporters: [otlp/tempo]");
    let e = load_sources_with_env(
        &[
            ("gateway.yaml", &gateway),
            ("tail-sampling.yaml", TAIL_SAMPLING),
        ],
        &no_env,
    )
    .unwrap_err();
    assert_eq!(e.issues.len(), 1, "{e}");
    let i = &e.issues[0];
    assert_eq!(
        (i.file.as_str(), i.line, i.path.as_str()),
        ("gateway.yaml", 15, "service.pipelines.traces.exporters[0]"),
        "{e}"
    );
}

#[test]
fn a_replaced_value_is_reported_in_the_file_that_replaced_it() {
    // The second file replaces the whole policy list: an error in it names the second file,
    // and the first file's (longer, valid) list leaves no stale lines behind.
    let one = "processors:
  tail_sampling:
    policies:
      - name: a
        type: latency
        latency:
          threshold_ms: 5
      - {name: b, type: always_sample}
";
    let two = "processors:
  tail_sampling:
    policies:
      - {name: x, type: latency}
";
    let e = load_sources_with_env(
        &[
            ("gateway.yaml", GATEWAY),
            ("one.yaml", one),
            ("two.yaml", two),
        ],
        &no_env,
    )
    .unwrap_err();
    assert_eq!(e.issues.len(), 1, "{e}");
    let i = &e.issues[0];
    // `policies[0].latency` exists only in one.yaml (line 6): that stale line must not be used.
    assert_eq!(
        (i.file.as_str(), i.line, i.path.as_str()),
        (
            "two.yaml",
            4,
            "processors.tail_sampling.policies[0].latency"
        ),
        "{e}"
    );
}

fn collector_cmd(args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_collector"));
    cmd.args(args);
    for v in ["COLLECTOR_CONFIG", "GATEWAY_GRPC", "TAIL_DECISION_WAIT"] {
        cmd.env_remove(v);
    }
    cmd
}

#[test]
fn the_binary_validates_two_config_flags() {
    let (_dir, paths) = write_pair(GATEWAY, TAIL_SAMPLING);
    let (a, b) = (paths[0].to_str().unwrap(), paths[1].to_str().unwrap());
    let out = collector_cmd(&["--config", a, "--config", b, "validate"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(&format!("{a} + {b}: valid")), "{stdout}");

    // The first file alone is invalid (the processor lives in the second).
    let out = collector_cmd(&["validate", "--config", a])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("gateway.yaml:14:"), "{stderr}");
}

#[test]
fn print_config_with_two_files_lists_the_env_references_of_both() {
    let (_dir, paths) = write_pair(GATEWAY, TAIL_SAMPLING);
    let (a, b) = (paths[0].to_str().unwrap(), paths[1].to_str().unwrap());
    let out = collector_cmd(&["--print-config", "-c", a, "-c", b])
        .env("TAIL_DECISION_WAIT", "3s")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["config_files"], serde_json::json!([a, b]));
    assert_eq!(doc["config_file"], format!("{a} + {b}"));
    let setting = |name: &str| {
        doc["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["env"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not listed: {doc}"))
    };
    let g = setting("GATEWAY_GRPC");
    assert_eq!(
        (&g["value"], &g["source"]),
        (&"127.0.0.1:0".into(), &"default".into())
    );
    let t = setting("TAIL_DECISION_WAIT");
    assert_eq!((&t["value"], &t["source"]), (&"3s".into(), &"env".into()));
    assert_eq!(setting("COLLECTOR_CONFIG")["source"], "flag");
    // The effective config is the merged one.
    assert_eq!(
        doc["config"]["processors"]["tail_sampling"]["decision_wait"],
        "3s"
    );
    assert!(doc["config"]["processors"]["batch"].is_null());
    assert!(doc["config"]["processors"].get("batch").is_some());
    assert_eq!(
        doc["config"]["service"]["pipelines"]["traces"]["exporters"][0],
        "debug"
    );
}
