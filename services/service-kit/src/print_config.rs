//! `--print-config`: every binary built on a clap `Config` can print the settings it read — each
//! argument with its variable, flag, value (secrets redacted) and where the value came from, plus
//! the variables read outside clap (the telemetry kit's) — as JSON, and exit without binding or
//! connecting anything. Deployment files are checked against it: a variable they set that no
//! binary lists is one nothing reads.
//!
//! ```json
//! {"binary":"order-service",
//!  "settings":[
//!    {"env":"PAYMENT_SERVICE_URL","flag":"--payment-service-url","value":"http://127.0.0.1:8082","source":"default"},
//!    {"env":"KAFKA_BROKERS","flag":"--kafka-brokers","value":null,"source":"unset"},
//!    {"env":"OTEL_EXPORTER_OTLP_ENDPOINT","flag":null,"value":"http://collector:4318","source":"env"}
//!  ]}
//! ```
//!
//! A service's `main` calls [`parse`] where it called `Config::parse()`: the same parsing, the
//! same errors (exit 2) for invalid values, `--help` and `--version` as before.

use std::ffi::OsString;

use clap::parser::ValueSource;
use clap::{ArgMatches, Command, Parser};
use serde::Serialize;

/// The flag's id and long name.
pub const PRINT_CONFIG: &str = "print-config";

/// Where a setting's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Its environment variable.
    Env,
    /// Its command-line flag.
    Flag,
    /// The binary's default.
    Default,
    /// Nowhere: not set and no default.
    Unset,
}

/// One line of `--print-config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Setting {
    pub env: Option<String>,
    pub flag: Option<String>,
    /// As read (several values joined with `,`), secrets redacted; `None` when unset.
    pub value: Option<String>,
    pub source: Source,
}

/// What [`try_parse_from`] found on the command line.
#[derive(Debug)]
pub enum Parsed<C> {
    /// A normal start.
    Run(C),
    /// `--print-config`: the configuration (parsed without error) and the JSON to print.
    PrintConfig { config: C, json: String },
}

/// `C::parse()` plus `--print-config`, which lists `C`'s arguments and the telemetry kit's
/// variables ([`telemetry::config::ENV_VARS`]). For every binary that calls `telemetry::init`.
pub fn parse<C: Parser>() -> C {
    parse_with(telemetry::config::ENV_VARS)
}

/// [`parse`] for a binary whose other variables (read outside clap) are `extra_env`
/// (`(name, what)`), e.g. card-provider's `[("RUST_LOG", …)]`.
pub fn parse_with<C: Parser>(extra_env: &[(&str, &str)]) -> C {
    parse_inner(extra_env, |_: &C| Ok(()))
}

/// [`parse`] for a binary whose start checks more than clap does (the gateway's `API_TOKENS`
/// entries): under `--print-config`, `check` runs too and its error ends the process as it would
/// end a start (`Error: …`, exit 1), so a value a start refuses is never printed as fine. A
/// normal start does not call `check`; the binary's start-up does what it always did.
pub fn parse_checked<C: Parser>(check: impl FnOnce(&C) -> anyhow::Result<()>) -> C {
    parse_inner(telemetry::config::ENV_VARS, check)
}

fn parse_inner<C: Parser>(
    extra_env: &[(&str, &str)],
    check: impl FnOnce(&C) -> anyhow::Result<()>,
) -> C {
    match try_parse_from::<C, _, _>(std::env::args_os(), extra_env) {
        Ok(Parsed::Run(config)) => config,
        Ok(Parsed::PrintConfig { config, json }) => {
            if let Err(e) = check(&config) {
                eprintln!("Error: {e:?}");
                std::process::exit(1);
            }
            println!("{json}");
            std::process::exit(0);
        }
        Err(e) => e.exit(),
    }
}

/// The testable core of [`parse_with`]: parses `args` (the first is the binary's name) and the
/// environment as `C::try_parse_from` would, with `--print-config` added.
pub fn try_parse_from<C, I, T>(
    args: I,
    extra_env: &[(&str, &str)],
) -> Result<Parsed<C>, clap::Error>
where
    C: Parser,
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut command = with_print_config(C::command());
    let matches = command.try_get_matches_from_mut(args)?;
    // The same conversion (and errors) as a normal start, before anything is printed.
    let config = C::from_arg_matches(&matches).map_err(|e| e.format(&mut command))?;
    if !matches.get_flag(PRINT_CONFIG) {
        return Ok(Parsed::Run(config));
    }
    let settings = settings(&command, &matches, extra_env);
    let json = render(command.get_name(), &settings);
    Ok(Parsed::PrintConfig { config, json })
}

/// `command` with a global `--print-config` flag.
pub fn with_print_config(command: Command) -> Command {
    command.arg(
        clap::Arg::new(PRINT_CONFIG)
            .long(PRINT_CONFIG)
            .action(clap::ArgAction::SetTrue)
            .global(true)
            .help(
                "Print the settings read (variable, flag, value, source) as JSON and exit, \
                 without binding or connecting anything",
            ),
    )
}

/// The arguments of `command` (and of the subcommand chosen, if any) as `matches` holds them,
/// then the variables `extra_env` names (from the process environment), each variable once.
pub fn settings(
    command: &Command,
    matches: &ArgMatches,
    extra_env: &[(&str, &str)],
) -> Vec<Setting> {
    let mut out: Vec<Setting> = Vec::new();
    let (mut command, mut matches) = (command, matches);
    loop {
        for arg in command.get_arguments() {
            let id = arg.get_id().as_str();
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            let flag = arg.get_long().map(|l| format!("--{l}"));
            // A global argument appears in every subcommand too: once is enough.
            let seen = arg.is_global_set() && out.iter().any(|s| s.env == env && s.flag == flag);
            if matches!(id, "help" | "version" | PRINT_CONFIG) || seen {
                continue;
            }
            let raw = matches.try_get_raw(id).ok().flatten().map(|values| {
                values
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(",")
            });
            let source = match matches.value_source(id) {
                Some(ValueSource::EnvVariable) => Source::Env,
                Some(ValueSource::CommandLine) => Source::Flag,
                Some(ValueSource::DefaultValue) => Source::Default,
                _ => Source::Unset,
            };
            let hidden = arg.is_hide_env_values_set();
            out.push(Setting {
                value: raw.map(|v| redact(env.as_deref(), hidden, &v)),
                flag,
                env,
                source,
            });
        }
        match matches.subcommand() {
            Some((name, sub)) => match command.find_subcommand(name) {
                Some(c) => (command, matches) = (c, sub),
                None => break,
            },
            None => break,
        }
    }
    for (name, _) in extra_env {
        if out.iter().any(|s| s.env.as_deref() == Some(*name)) {
            continue;
        }
        let value = std::env::var_os(name).map(|v| redact(Some(name), false, &v.to_string_lossy()));
        out.push(Setting {
            env: Some((*name).to_owned()),
            flag: None,
            source: if value.is_some() {
                Source::Env
            } else {
                Source::Unset
            },
            value,
        });
    }
    out
}

/// `{"binary":…,"settings":[…]}`, one setting per line.
pub fn render(binary: &str, settings: &[Setting]) -> String {
    let lines: Vec<String> = settings
        .iter()
        .map(|s| {
            format!(
                "   {}",
                serde_json::to_string(s).expect("a Setting serializes")
            )
        })
        .collect();
    format!(
        "{{\"binary\":{},\n \"settings\":[\n{}\n ]}}",
        serde_json::Value::from(binary),
        lines.join(",\n")
    )
}

/// Variables whose whole value is a secret: the gateway's tokens and anything named like a
/// credential.
fn is_secret(env: &str) -> bool {
    const MARKERS: [&str; 6] = [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "API_KEY",
        "CREDENTIAL",
    ];
    let upper = env.to_ascii_uppercase();
    MARKERS.iter().any(|m| upper.contains(m))
}

/// The value as `--print-config` shows it: `***` for a secret variable (or an argument with
/// `hide_env_values`), `k=***` per header of an `…_HEADERS` variable (OTLP headers carry API
/// keys), and any URL's password as `***` (`postgres://u:***@h/db`).
pub fn redact(env: Option<&str>, hide_env_values: bool, value: &str) -> String {
    if hide_env_values || env.is_some_and(is_secret) {
        return "***".to_owned();
    }
    if env.is_some_and(|e| e.ends_with("_HEADERS")) {
        return value
            .split(',')
            .map(|h| match h.split_once('=') {
                Some((k, _)) => format!("{k}=***"),
                None => "***".to_owned(),
            })
            .collect::<Vec<_>>()
            .join(",");
    }
    redact_url_passwords(value)
}

/// Every `scheme://user:password@host` in `value` with its password replaced by `***`.
pub fn redact_url_passwords(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', '?', '#', ',' or whitespace; its userinfo at the
        // last '@' in it.
        let end = tail
            .find(|c: char| matches!(c, '/' | '?' | '#' | ',') || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.split_once(':') {
                    Some((user, _password)) => {
                        out.push_str(user);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DatabaseArgs, ServerArgs};
    use clap::CommandFactory;

    #[derive(Debug, Parser)]
    #[command(
        name = "demo-service",
        mut_arg("port", crate::config::default("8089")),
        mut_arg("database_url", crate::config::default("sqlite:data/demo.db?mode=rwc"))
    )]
    struct Demo {
        #[command(flatten)]
        server: ServerArgs,
        #[command(flatten)]
        database: DatabaseArgs,
        /// An optional setting without default.
        #[arg(long, env = "DEMO_KAFKA_BROKERS")]
        kafka_brokers: Option<String>,
        /// A secret.
        #[arg(long, env = "DEMO_API_TOKENS", default_value = "t=u")]
        api_tokens: String,
        /// A URL given on the command line.
        #[arg(long, env = "DEMO_PEER_URL", default_value = "http://127.0.0.1:9")]
        peer_url: String,
    }

    fn setting<'a>(json: &'a serde_json::Value, env: &str) -> &'a serde_json::Value {
        json["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["env"] == env)
            .unwrap_or_else(|| panic!("{env} missing from {json}"))
    }

    /// The environment the child run of [`sources_values_and_redaction`] gets (clap reads the
    /// process environment, and `set_var` is unsafe, which this workspace forbids).
    const CHILD_ENV: [(&str, &str); 4] = [
        ("SERVICE_KIT_PRINT_CONFIG_CHILD", "1"),
        ("DATABASE_URL", "postgres://app:hunter2@db:5432/orders"),
        ("DEMO_API_TOKENS", "s3cret=alice"),
        ("DEMO_EXTRA", "x"),
    ];
    const EXTRA: [(&str, &str); 2] = [
        ("DEMO_EXTRA", "read elsewhere"),
        ("DEMO_UNSET_EXTRA", "read elsewhere"),
    ];

    /// Runs only as the child of [`sources_values_and_redaction`]: prints `--print-config`'s JSON
    /// between markers.
    #[test]
    fn child_prints_config() {
        if std::env::var_os("SERVICE_KIT_PRINT_CONFIG_CHILD").is_none() {
            return;
        }
        let args = [
            "demo-service",
            "--print-config",
            "--peer-url",
            "http://peer:1",
        ];
        match try_parse_from::<Demo, _, _>(args, &EXTRA).unwrap() {
            Parsed::PrintConfig { json, .. } => println!("<<<{json}>>>"),
            Parsed::Run(d) => panic!("ran instead of printing: {d:?}"),
        }
        // Without the flag: a normal parse of the same environment.
        match try_parse_from::<Demo, _, _>(["demo-service"], &EXTRA).unwrap() {
            Parsed::Run(d) => assert_eq!(
                d.database.database_url,
                "postgres://app:hunter2@db:5432/orders"
            ),
            Parsed::PrintConfig { .. } => panic!("printed without --print-config"),
        }
    }

    #[test]
    fn sources_values_and_redaction() {
        let mut child = std::process::Command::new(std::env::current_exe().unwrap());
        child
            .args([
                "--exact",
                "print_config::tests::child_prints_config",
                "--nocapture",
            ])
            .args(["--test-threads", "1"])
            .env_remove("DEMO_UNSET_EXTRA")
            .env_remove("DEMO_KAFKA_BROKERS")
            .env_remove("PORT")
            .env_remove("DEMO_PEER_URL");
        for (k, v) in CHILD_ENV {
            child.env(k, v);
        }
        let out = child.output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let start = stdout.find("<<<").expect("child printed the JSON") + 3;
        let end = stdout.find(">>>").unwrap();
        let json: serde_json::Value = serde_json::from_str(&stdout[start..end]).unwrap();

        assert_eq!(json["binary"], "demo-service");
        let db = setting(&json, "DATABASE_URL");
        assert_eq!(db["source"], "env");
        assert_eq!(db["flag"], "--database-url");
        assert_eq!(db["value"], "postgres://app:***@db:5432/orders");
        let tokens = setting(&json, "DEMO_API_TOKENS");
        assert_eq!(
            (&tokens["source"], &tokens["value"]),
            (&"env".into(), &"***".into())
        );
        let peer = setting(&json, "DEMO_PEER_URL");
        assert_eq!(
            (&peer["source"], &peer["value"]),
            (&"flag".into(), &"http://peer:1".into())
        );
        let port = setting(&json, "PORT");
        assert_eq!(
            (&port["source"], &port["value"]),
            (&"default".into(), &"8089".into())
        );
        let kafka = setting(&json, "DEMO_KAFKA_BROKERS");
        assert_eq!(kafka["source"], "unset");
        assert!(kafka["value"].is_null());
        let extra = setting(&json, "DEMO_EXTRA");
        assert_eq!(
            (&extra["source"], &extra["value"]),
            (&"env".into(), &"x".into())
        );
        assert!(extra["flag"].is_null());
        let unset = setting(&json, "DEMO_UNSET_EXTRA");
        assert_eq!(
            (&unset["source"], &unset["value"]),
            (&"unset".into(), &serde_json::Value::Null)
        );
        // Exactly the four keys each; no help/version/print-config lines.
        for s in json["settings"].as_array().unwrap() {
            assert_eq!(s.as_object().unwrap().len(), 4, "{s}");
            assert!(
                !s["flag"]
                    .as_str()
                    .is_some_and(|f| ["--print-config", "--help"].contains(&f))
            );
        }
    }

    #[test]
    fn invalid_values_fail_as_at_a_normal_start() {
        let err =
            try_parse_from::<Demo, _, _>(["demo-service", "--print-config", "--port", "x"], &[])
                .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        let help = with_print_config(Demo::command())
            .render_long_help()
            .to_string();
        assert!(help.contains("--print-config"));
    }

    #[test]
    fn redaction() {
        assert_eq!(
            redact_url_passwords("postgres://u:p@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(
            redact_url_passwords("postgres://u@h/db"),
            "postgres://u@h/db"
        );
        assert_eq!(redact_url_passwords("http://h:8080/x"), "http://h:8080/x");
        assert_eq!(
            redact_url_passwords("a://u:p@h,b://v:q@i"),
            "a://u:***@h,b://v:***@i"
        );
        assert_eq!(
            redact(Some("OTEL_EXPORTER_OTLP_HEADERS"), false, "api-key=abc,x=y"),
            "api-key=***,x=***"
        );
        assert_eq!(redact(Some("API_TOKENS"), false, "t=alice"), "***");
        assert_eq!(redact(Some("PORT"), true, "8080"), "***");
        assert_eq!(redact(Some("PORT"), false, "8080"), "8080");
    }
}
