//! `loadgen run --print-config`, the real binary: the subcommand's flags and variables with their
//! sources, and no load sent (the target does not exist).

use std::process::Command;

#[test]
fn run_prints_its_settings() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["run", "--rate", "5", "--print-config"])
        .env("LOADGEN_TARGET", "http://gateway:8080")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["binary"], "loadgen");
    let settings = json["settings"].as_array().unwrap();
    let by_flag = |flag: &str| {
        settings
            .iter()
            .find(|s| s["flag"] == flag)
            .unwrap_or_else(|| panic!("{flag} missing"))
    };
    let target = by_flag("--target");
    assert_eq!(target["env"], "LOADGEN_TARGET");
    assert_eq!(
        (&target["value"], &target["source"]),
        (&"http://gateway:8080".into(), &"env".into())
    );
    let rate = by_flag("--rate");
    assert_eq!(
        (&rate["value"], &rate["source"]),
        (&"5".into(), &"flag".into())
    );
    assert!(rate["env"].is_null());
    assert_eq!(by_flag("--duration")["source"], "default");
}
