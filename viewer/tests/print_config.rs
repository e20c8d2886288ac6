//! `viewer --print-config`, the real binary: every variable it reads with value and source, exit 0
//! without binding; an invalid value fails as a start would.

use std::process::Command;

use serde_json::Value;

fn viewer(env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_viewer"));
    cmd.arg("--print-config");
    for name in [
        "QUERY_API_URL",
        "BIND_ADDR",
        "PORT",
        "LEPTOS_SITE_ROOT",
        "GATEWAY_URL",
        "INVENTORY_URL",
        "ADMIN_TOKEN",
        "RUST_LOG",
    ] {
        cmd.env_remove(name);
    }
    cmd.envs(env.iter().copied()).output().unwrap()
}

#[test]
fn prints_what_it_read() {
    let out = viewer(&[
        ("QUERY_API_URL", "http://collector:16686"),
        ("PORT", "0"),
        ("GATEWAY_URL", "http://api-gateway:8080"),
        ("ADMIN_TOKEN", "s3cret-admin"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["binary"], "viewer");
    let settings = json["settings"].as_array().unwrap();
    let get = |env: &str| {
        settings
            .iter()
            .find(|s| s["env"] == env)
            .unwrap_or_else(|| panic!("{env} missing"))
    };
    assert_eq!(get("QUERY_API_URL")["value"], "http://collector:16686");
    assert_eq!(get("QUERY_API_URL")["source"], "env");
    assert_eq!(get("PORT")["value"], "0");
    assert_eq!(get("BIND_ADDR")["value"], "0.0.0.0");
    assert_eq!(get("BIND_ADDR")["source"], "default");
    assert!(
        get("LEPTOS_SITE_ROOT")["value"]
            .as_str()
            .unwrap()
            .ends_with("site")
    );
    assert_eq!(get("RUST_LOG")["source"], "default");
    assert_eq!(get("GATEWAY_URL")["value"], "http://api-gateway:8080");
    assert_eq!(
        (
            &get("INVENTORY_URL")["source"],
            &get("INVENTORY_URL")["value"]
        ),
        (&Value::from("unset"), &Value::Null),
        "no default: the panel's fixes are off"
    );
    assert_eq!(get("ADMIN_TOKEN")["source"], "env");
    assert_eq!(get("ADMIN_TOKEN")["value"], "***", "the token is redacted");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("s3cret-admin"));
    for s in settings {
        assert!(s["flag"].is_null());
        assert_eq!(s.as_object().unwrap().len(), 4);
    }
}

#[test]
fn invalid_values_fail_as_at_a_start() {
    let out = viewer(&[("QUERY_API_URL", "collector:16686")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("QUERY_API_URL"));
    let out = viewer(&[("GATEWAY_URL", "api-gateway:8080")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("GATEWAY_URL"));
}
