//! `api-gateway --print-config`, the real binary: tokens redacted, and a value the start would
//! refuse (`API_TOKENS` that is not token=user) refused here too.

use std::process::Command;

fn gateway(env: &[(&str, &str)]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_api-gateway"))
        .arg("--print-config")
        .env_remove("SCENARIO_FLAGS")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[test]
fn tokens_are_redacted() {
    let out = gateway(&[("API_TOKENS", "s3cret-token=alice")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains("s3cret"), "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let tokens = json["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["env"] == "API_TOKENS")
        .unwrap();
    assert_eq!(tokens["value"], "***");
    assert_eq!(tokens["source"], "env");
}

#[test]
fn what_a_start_refuses_is_refused() {
    let out = gateway(&[("API_TOKENS", "broken")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("API_TOKENS entry"));
}
