//! `order-service --print-config` run as the real binary: the settings it read, as JSON, and exit 0
//! without binding or connecting (the test's DATABASE_URL points at a server that does not exist).

use std::process::Command;

use serde_json::Value;

fn print_config(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_order-service"));
    cmd.arg("--print-config").args(args);
    // A clean slate: only what the test sets.
    for (name, _) in std::env::vars() {
        if name.starts_with("OTEL_") || name.starts_with("KAFKA_") || name == "PORT" {
            cmd.env_remove(name);
        }
    }
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn setting<'a>(json: &'a Value, env: &str) -> &'a Value {
    json["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["env"] == env)
        .unwrap_or_else(|| panic!("{env} missing from {json}"))
}

#[test]
fn prints_what_it_read_and_exits() {
    let out = print_config(
        &[
            ("PAYMENT_SERVICE_URL", "http://x:1"),
            (
                "DATABASE_URL",
                "postgres://order:hunter2@127.0.0.1:1/orders",
            ),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
        ],
        &["--outbox-batch-size", "7"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let json: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(json["binary"], "order-service");

    let payment = setting(&json, "PAYMENT_SERVICE_URL");
    assert_eq!(payment["value"], "http://x:1");
    assert_eq!(payment["source"], "env");
    assert_eq!(payment["flag"], "--payment-service-url");
    let batch = setting(&json, "OUTBOX_BATCH_SIZE");
    assert_eq!(
        (&batch["value"], &batch["source"]),
        (&"7".into(), &"flag".into())
    );
    let inventory = setting(&json, "INVENTORY_SERVICE_URL");
    assert_eq!(inventory["source"], "default");
    assert_eq!(inventory["value"], "http://127.0.0.1:8083");
    let kafka = setting(&json, "KAFKA_BROKERS");
    assert_eq!(
        (&kafka["value"], &kafka["source"]),
        (&Value::Null, &"unset".into())
    );
    assert_eq!(setting(&json, "PORT")["value"], "8081");
    assert_eq!(
        setting(&json, "DATABASE_URL")["value"],
        "postgres://order:***@127.0.0.1:1/orders"
    );
    assert!(!stdout.contains("hunter2"));

    let otlp = setting(&json, "OTEL_EXPORTER_OTLP_ENDPOINT");
    assert_eq!(otlp["value"], "http://collector:4318");
    assert_eq!(
        (&otlp["source"], &otlp["flag"]),
        (&"env".into(), &Value::Null)
    );
    for sdk in ["OTEL_BSP_SCHEDULE_DELAY", "OTEL_TRACES_SAMPLER", "RUST_LOG"] {
        assert_eq!(setting(&json, sdk)["source"], "unset");
    }
}

#[test]
fn invalid_values_fail_as_at_a_normal_start() {
    let out = print_config(&[("DOWNSTREAM_TIMEOUT_MS", "soon")], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("DOWNSTREAM_TIMEOUT_MS")
            || String::from_utf8_lossy(&out.stderr).contains("soon")
    );
}
