//! `service.name` and `service.version` on the resource: the compiled-in defaults fill
//! in what the environment leaves unset, and `OTEL_SERVICE_NAME` /
//! `OTEL_RESOURCE_ATTRIBUTES` win, as the specification says. Each case re-runs this
//! binary as a child with its own environment (the variables are process-wide, and
//! changing them under running tests is a race).

use std::process::Command;

const CHILD: &str = "TELEMETRY_RESOURCE_CHILD";

/// Runs `print_resource` in a child with `env` set (and the OTEL variables of the
/// parent cleared), and returns the `key=value` lines it printed.
fn resource_in_child(env: &[(&str, &str)]) -> Vec<String> {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "print_resource",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD, "1")
    .env_remove("OTEL_SERVICE_NAME")
    .env_remove("OTEL_RESOURCE_ATTRIBUTES");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|l| l.split_once("RESOURCE ").map(|(_, kv)| kv.to_owned()))
        .collect()
}

fn has(lines: &[String], kv: &str) -> bool {
    lines.iter().any(|l| l == kv)
}

#[test]
fn compiled_in_name_and_version_are_the_defaults() {
    let lines = resource_in_child(&[]);
    assert!(has(&lines, "service.name=kit-test"), "{lines:?}");
    assert!(has(&lines, "service.version=1.2.3"), "{lines:?}");
}

#[test]
fn the_environment_wins_over_the_compiled_in_values() {
    let lines = resource_in_child(&[(
        "OTEL_RESOURCE_ATTRIBUTES",
        "service.name=from-attrs,service.version=9.9.9,deployment.environment.name=lab",
    )]);
    assert!(has(&lines, "service.name=from-attrs"), "{lines:?}");
    assert!(has(&lines, "service.version=9.9.9"), "{lines:?}");
    assert!(has(&lines, "deployment.environment.name=lab"), "{lines:?}");
}

#[test]
fn otel_service_name_wins_over_resource_attributes() {
    let lines = resource_in_child(&[
        ("OTEL_SERVICE_NAME", "from-name"),
        ("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs"),
    ]);
    assert!(has(&lines, "service.name=from-name"), "{lines:?}");
    // The version was not set by the environment, so the compiled-in one stays.
    assert!(has(&lines, "service.version=1.2.3"), "{lines:?}");
}

#[test]
fn print_resource() {
    if std::env::var(CHILD).is_err() {
        return; // only meaningful when started by the tests above
    }
    let config = telemetry::TelemetryConfig::from_env("kit-test", "1.2.3");
    for (k, v) in telemetry::otlp::resource(&config).iter() {
        println!("RESOURCE {k}={v}");
    }
}
