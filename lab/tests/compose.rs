//! `docker-compose.yml` run as local processes. There is no Docker engine on our machines, so this
//! test does what compose would, with the file's own words: each tracelab service's `command:` and
//! `environment:` (on top of the Dockerfile's `ENV`), started in `depends_on` order, each waited
//! for by running its own `healthcheck:` command until it succeeds (at most 3 minutes); then seed
//! 000's checkout spec must pass through the gateway, the viewer must answer, and the `load`
//! profile's loadgen command must run. A wrong variable, port, host name or path in the file fails
//! here.
//!
//! What is mapped, and only this: a service's host name and container port (`order-service:8081`,
//! its own `0.0.0.0:4317`, `PORT: "8081"`) to 127.0.0.1 and a free port; `kafka:9092` to the
//! embedded MockCluster; `postgres:5432` to the local PostgreSQL, where each database of the file
//! gets a name of this run (`tlc<PID>_order_service`); container paths to what the image or the
//! volume would hold there (the Dockerfile's `COPY`s, bind mounts, named volumes under a fresh
//! directory); `BIND_ADDR: 0.0.0.0` to 127.0.0.1 (tests only use loopback).

mod deploy;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use deploy::*;
use lab::launcher::process::{ChildSpec, LogSink, Supervised};
use lab::launcher::{EmbeddedKafka, Reaper};
use sqlx::Connection;

/// What the file's host names, ports and paths become on this machine.
#[derive(Clone)]
struct Mapping {
    /// `host:port` → `127.0.0.1:free`, every service's every exposed port.
    addrs: Vec<(String, String)>,
    /// Per service: its own container port → free port.
    own: HashMap<String, HashMap<u16, u16>>,
    /// Container path prefix → host path, most specific first.
    paths: Vec<(String, PathBuf)>,
    databases: HashMap<String, String>,
}

impl Mapping {
    fn value(&self, service: &str, v: &str) -> String {
        let mut v = v.to_string();
        for (from, to) in &self.addrs {
            v = v.replace(from.as_str(), to);
        }
        if let Some(own) = self.own.get(service) {
            for (port, free) in own {
                for host in ["0.0.0.0", "127.0.0.1", "localhost"] {
                    v = v.replace(&format!("{host}:{port}"), &format!("127.0.0.1:{free}"));
                }
                if v == port.to_string() {
                    v = free.to_string();
                }
            }
        }
        if v == "0.0.0.0" {
            v = "127.0.0.1".into();
        }
        for (db, local) in &self.databases {
            v = v.replace(
                &format!("127.0.0.1:5432/{db}"),
                &format!("127.0.0.1:5432/{local}"),
            );
        }
        self.path(&v)
    }

    fn path(&self, v: &str) -> String {
        for (prefix, host) in &self.paths {
            if v == prefix {
                return host.display().to_string();
            }
            if let Some(rest) = v.strip_prefix(&format!("{prefix}/")) {
                return host.join(rest).display().to_string();
            }
        }
        v.to_string()
    }

    /// `argv[0]` as the image's PATH finds it.
    fn program(&self, name: &str) -> PathBuf {
        if name.starts_with('/') {
            PathBuf::from(self.path(name))
        } else {
            PathBuf::from(self.path(&format!("/usr/local/bin/{name}")))
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The services in an order that starts each after what it depends on.
fn start_order<'a>(services: &[&'a ComposeService]) -> Vec<&'a ComposeService> {
    let mut done: Vec<&ComposeService> = Vec::new();
    while done.len() < services.len() {
        let before = done.len();
        for s in services {
            if done.iter().any(|d| d.name == s.name) {
                continue;
            }
            let ready = s.depends_on.iter().all(|(dep, _)| {
                !services.iter().any(|x| &x.name == dep) || done.iter().any(|d| &d.name == dep)
            });
            if ready {
                done.push(s);
            }
        }
        assert!(done.len() > before, "depends_on has a cycle");
    }
    done
}

/// Runs `svc`'s healthcheck command until it succeeds, for at most what the file allows.
async fn wait_healthy(
    svc: &ComposeService,
    map: &Mapping,
    env: &[(String, String)],
    started: &[Supervised],
) {
    let argv: Vec<String> = svc
        .healthcheck
        .as_ref()
        .unwrap_or_else(|| panic!("{} has no healthcheck", svc.name))
        .iter()
        .map(|a| map.value(&svc.name, a))
        .collect();
    // Longer than any start_period + retries × interval in the file (inventory's: 30 s + 24 × 5 s).
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Some(dead) = started.iter().find(|c| c.has_exited()) {
            panic!(
                "{} exited while {} started:\n{}",
                dead.name,
                svc.name,
                dead.tail().join("\n")
            );
        }
        let out = tokio::process::Command::new(map.program(&argv[0]))
            .args(&argv[1..])
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .await
            .unwrap_or_else(|e| panic!("{}: healthcheck {argv:?}: {e}", svc.name));
        if out.status.success() {
            return;
        }
        last = String::from_utf8_lossy(&out.stderr).into_owned();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tail = started
        .iter()
        .find(|c| c.name == svc.name)
        .map(|c| c.tail().join("\n"))
        .unwrap_or_default();
    panic!(
        "{} never became healthy ({argv:?}: {last}); its last lines:\n{tail}",
        svc.name
    );
}

/// Creates the compose file's PostgreSQL role and, per `DATABASE_URL`, a database of this run on the
/// local server; returns file database → local database.
async fn local_databases(
    compose: &Compose,
    admin: &mut sqlx::postgres::PgConnection,
) -> HashMap<String, String> {
    let pg = compose.service("postgres");
    let user = pg
        .environment
        .iter()
        .find(|(k, _)| k == "POSTGRES_USER")
        .map(|(_, v)| v.clone())
        .expect("POSTGRES_USER");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{user}') \
         THEN CREATE ROLE \"{user}\" LOGIN; END IF; END $$"
    )))
    .execute(&mut *admin)
    .await
    .expect("create the compose file's database role");
    let mut databases = HashMap::new();
    for s in &compose.services {
        for (k, v) in &s.environment {
            if k == "DATABASE_URL" {
                let db = v.rsplit('/').next().unwrap().to_string();
                let local = format!("tlc{}_{db}", std::process::id());
                for sql in [
                    format!("DROP DATABASE IF EXISTS \"{local}\" WITH (FORCE)"),
                    format!("CREATE DATABASE \"{local}\" OWNER \"{user}\""),
                ] {
                    sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut *admin)
                        .await
                        .expect("create a database of the compose file");
                }
                databases.insert(db, local);
            }
        }
    }
    databases
}

/// Some of the compose file's tracelab services, running as processes.
struct Run {
    map: Mapping,
    started: Vec<Supervised>,
    /// Services of a profile: their child spec and working directory, not started.
    profiled: HashMap<String, (ChildSpec, PathBuf)>,
    reaper: Option<Reaper>,
}

impl Run {
    /// Maps `compose` (see the module header) and starts `names` in `depends_on` order, each
    /// waited for by its healthcheck; `extra_addrs` maps more `host:port`s (stand-ins).
    async fn start(
        compose: &Compose,
        names: &[&str],
        dir: &std::path::Path,
        kafka: Option<&str>,
        databases: HashMap<String, String>,
        extra_addrs: Vec<(String, String)>,
    ) -> Run {
        let bin = lab::harness::bin_dir();
        let image = runtime_stage();
        let services: Vec<&ComposeService> = compose
            .tracelab_services()
            .filter(|s| names.contains(&s.name.as_str()))
            .collect();
        let mut map = Mapping {
            addrs: vec![("postgres:5432".into(), "127.0.0.1:5432".into())],
            own: HashMap::new(),
            paths: Vec::new(),
            databases,
        };
        if let Some(k) = kafka {
            map.addrs.push(("kafka:9092".into(), k.to_string()));
        }
        map.addrs.extend(extra_addrs);
        for s in compose.tracelab_services() {
            let mut own = HashMap::new();
            for &p in &s.expose {
                let f = free_port();
                own.insert(p, f);
                map.addrs
                    .push((format!("{}:{p}", s.name), format!("127.0.0.1:{f}")));
            }
            map.own.insert(s.name.clone(), own);
        }
        // The image's files: the builder's release output is this build's bin dir.
        let target = bin.parent().expect("target dir").to_path_buf();
        for (from, src, dst) in &image.copies {
            let host = match from.as_deref() {
                Some("builder") => {
                    let rel = src
                        .strip_prefix("/src/")
                        .expect("builder paths are under /src");
                    match rel.strip_prefix("target/release/") {
                        Some(b) => bin.join(b),
                        None => target.join(rel.strip_prefix("target/").unwrap_or(rel)),
                    }
                }
                _ => repo().join(src),
            };
            map.paths.push((dst.clone(), host));
        }
        let workdir = image.workdir.clone().expect("WORKDIR");
        map.paths.push((workdir.clone(), dir.join("workdir")));
        std::fs::create_dir_all(dir.join("workdir")).unwrap();

        let mut reaper = Reaper::spawn(&bin.join("tracelab")).ok();
        let (exit_tx, _exit_rx) = tokio::sync::mpsc::unbounded_channel();
        let sink = LogSink::Files(dir.join("logs"));
        let mut run = Run {
            map: map.clone(),
            started: Vec::new(),
            profiled: HashMap::new(),
            reaper: None,
        };
        for svc in start_order(&services) {
            // Each service's own mounts shadow the image's paths.
            let mut m = Mapping {
                paths: Vec::new(),
                ..map.clone()
            };
            for (src, dst) in &svc.volumes {
                let host = if let Some(rel) = src.strip_prefix("./") {
                    repo().join(rel)
                } else {
                    let d = dir.join("volumes").join(src);
                    std::fs::create_dir_all(&d).unwrap();
                    d
                };
                m.paths.push((dst.clone(), host));
            }
            m.paths.extend(map.paths.iter().cloned());
            let mut env: Vec<(String, String)> = Vec::new();
            for (k, v) in image.env.iter().chain(&svc.environment) {
                env.retain(|(e, _)| e != k);
                env.push((k.clone(), m.value(&svc.name, v)));
            }
            let argv: Vec<String> = svc.command.iter().map(|a| m.value(&svc.name, a)).collect();
            let cwd = PathBuf::from(m.path(svc.working_dir.as_deref().unwrap_or(&workdir)));
            let spec = ChildSpec {
                name: svc.name.clone(),
                program: m.program(&argv[0]),
                args: argv[1..].to_vec(),
                env: env.clone(),
                cwd: Some(cwd.clone()),
            };
            if !svc.profiles.is_empty() {
                run.profiled.insert(svc.name.clone(), (spec, cwd));
                continue;
            }
            let child = Supervised::spawn(&spec, run.started.len(), &sink, exit_tx.clone())
                .unwrap_or_else(|e| panic!("starting {}: {e}", svc.name));
            if let Some(r) = &mut reaper {
                let _ = r.watch(child.pid).await;
            }
            run.started.push(child);
            wait_healthy(svc, &m, &env, &run.started).await;
        }
        run.reaper = reaper;
        run
    }

    /// `http://127.0.0.1:PORT` where `service`'s container port `port` landed.
    fn url(&self, service: &str, port: u16) -> String {
        format!("http://127.0.0.1:{}", self.map.own[service][&port])
    }

    fn tails(&self) -> String {
        self.started
            .iter()
            .map(|c| format!("--- {}\n{}", c.name, c.tail().join("\n")))
            .collect::<Vec<_>>()
            .join("\n")
    }

    async fn stop(self) {
        for c in self.started.iter().rev() {
            c.stop(Duration::from_secs(10)).await;
        }
        if let Some(r) = self.reaper {
            r.release().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_services_run_as_processes_and_produce_a_complete_checkout_trace() {
    let bin = lab::harness::bin_dir();
    lab::harness::require_binaries(&bin, &["card-provider", "viewer", "loadgen"]);
    assert!(
        storage::testing::postgres_available("compose_services_run_as_processes"),
        "compose's services use PostgreSQL: this test needs the local server on 127.0.0.1:5432"
    );
    // A short load run: the `load` profile's command, with .env's rate and duration overridden
    // from the environment as `LOAD_RATE=5 docker compose --profile load up` would.
    let compose = Compose::load(&[("LOAD_RATE", "5"), ("LOAD_DURATION", "3s")]);
    let dir = lab::harness::fresh_dir("compose");
    // Stand-ins for the third-party containers.
    let kafka = EmbeddedKafka::start(3).expect("embedded Kafka");
    let mut admin = sqlx::postgres::PgConnection::connect(storage::testing::POSTGRES_ADMIN_URL)
        .await
        .expect("PostgreSQL admin connection");
    let databases = local_databases(&compose, &mut admin).await;
    let names: Vec<&str> = compose
        .tracelab_services()
        .map(|s| s.name.as_str())
        .collect();
    let run = Run::start(
        &compose,
        &names,
        &dir,
        Some(kafka.bootstrap_servers()),
        databases.clone(),
        Vec::new(),
    )
    .await;

    let spec =
        lab::Spec::from_file(&repo().join("lab/specs/checkout.yaml")).expect("checkout spec");
    let outcome = lab::SpecRunner::new(
        run.url("api-gateway", 8080),
        run.url("tracelab-collector", 16686),
    )
    .run(&spec)
    .await;
    if let Err(e) = &outcome.result {
        panic!(
            "the checkout spec failed on the compose stack:\n{e}\n{}",
            run.tails()
        );
    }
    let page = reqwest::get(run.url("viewer", 3000)).await.expect("viewer");
    assert!(page.status().is_success(), "viewer: {}", page.status());

    // The load profile: loadgen with the file's command, against the file's gateway address.
    let (spec, cwd) = run.profiled["loadgen"].clone();
    let out = tokio::process::Command::new(&spec.program)
        .args(&spec.args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&cwd)
        .output()
        .await
        .expect("loadgen runs");
    assert!(
        out.status.success(),
        "loadgen (the load profile) failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let summary_path = spec
        .args
        .iter()
        .skip_while(|a| *a != "--summary")
        .nth(1)
        .expect("the load profile writes a summary");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(summary_path).expect("loadgen summary"))
            .expect("summary JSON");
    // 5 req/s for 3 s: 15 planned, every one answered as its scenario expects.
    assert!(
        summary["sent"].as_u64() >= Some(10),
        "loadgen sent too little: {summary}"
    );
    assert_eq!(
        summary["errors"].as_u64(),
        Some(0),
        "loadgen saw errors: {summary}"
    );

    run.stop().await;
    for local in databases.values() {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS \"{local}\" WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await;
    }
    drop(kafka);
}

/// The `backends` profile's collector side: `tracelab-collector` as the file starts it with
/// `COLLECTOR_CONFIG_FILE=backends.yaml`, a stand-in for Jaeger's OTLP port (a second collector
/// that stores what it receives), one trace sent over OTLP/HTTP. It must reach the stand-in (the
/// `otlp/jaeger` exporter's address is the compose service's), and the collector's OpenMetrics
/// output must carry every metric and the `service_name` label the Grafana dashboard queries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_profile_exports_to_jaeger_and_serves_what_the_dashboard_queries() {
    let bin = lab::harness::bin_dir();
    lab::harness::require_binaries(&bin, &[]);
    let compose = Compose::load(&[("COLLECTOR_CONFIG_FILE", "backends.yaml")]);
    let dir = lab::harness::fresh_dir("compose-backends");
    let jaeger = compose.service("jaeger");
    assert!(jaeger.expose.contains(&4317), "jaeger exposes OTLP/gRPC");
    let (otlp, query, health) = (free_port(), free_port(), free_port());
    let config = dir.join("jaeger-stand-in.yaml");
    std::fs::write(
        &config,
        format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:{otlp}\n\
             exporters:\n  tracelab:\n    storage:\n      directory: {}\n    query:\n      endpoint: 127.0.0.1:{query}\n\
             extensions:\n  health_check:\n    endpoint: 127.0.0.1:{health}\n\
             service:\n  extensions: [health_check]\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [tracelab]\n",
            dir.join("jaeger-store").display()
        ),
    )
    .unwrap();
    let (exit_tx, _exit_rx) = tokio::sync::mpsc::unbounded_channel();
    let stand_in = Supervised::spawn(
        &ChildSpec {
            name: "jaeger-stand-in".into(),
            program: bin.join("collector"),
            args: vec!["--config".into(), config.display().to_string()],
            env: vec![],
            cwd: Some(dir.clone()),
        },
        0,
        &LogSink::Files(dir.join("logs")),
        exit_tx,
    )
    .expect("stand-in collector");
    let run = Run::start(
        &compose,
        &["tracelab-collector"],
        &dir,
        None,
        HashMap::new(),
        vec![("jaeger:4317".into(), format!("127.0.0.1:{otlp}"))],
    )
    .await;

    let trace_id = format!("{:032x}", u128::from(std::process::id()) << 64 | 0xbac0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let body = serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "api-gateway"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": trace_id, "spanId": "00000000000000b1", "name": "POST /orders", "kind": 2,
            "startTimeUnixNano": (now - 5_000_000).to_string(), "endTimeUnixNano": now.to_string()
        }]}]
    }]});
    let http = reqwest::Client::new();
    let resp = http
        .post(format!("{}/v1/traces", run.url("tracelab-collector", 4318)))
        .json(&body)
        .send()
        .await
        .expect("OTLP/HTTP export");
    assert!(resp.status().is_success(), "{}", resp.status());

    // Both stores have the trace: tracelab's and the one standing in for Jaeger.
    for base in [
        run.url("tracelab-collector", 16686),
        format!("http://127.0.0.1:{query}"),
    ] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let r = http
                .get(format!("{base}/api/traces/{trace_id}"))
                .send()
                .await;
            if r.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            assert!(
                Instant::now() < deadline && !stand_in.has_exited(),
                "trace {trace_id} never reached {base}\n{}\n--- jaeger-stand-in\n{}",
                run.tails(),
                stand_in.tail().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // The dashboard's metrics, as Prometheus 3 asks for them (OpenMetrics first).
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/dashboards/tracelab-red.json"))
            .unwrap(),
    )
    .unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .map(|t| t["expr"].as_str().unwrap().to_string())
        .collect();
    let metric_re = regex::Regex::new(r"traces_span_metrics_[a-z_]+").unwrap();
    let wanted: std::collections::BTreeSet<String> = exprs
        .iter()
        .flat_map(|e| metric_re.find_iter(e).map(|m| m.as_str().to_string()))
        .collect();
    assert!(wanted.len() >= 2, "{wanted:?}");
    // spanmetrics flushes every 15 s (backends.yaml).
    let deadline = Instant::now() + Duration::from_secs(45);
    let text = loop {
        let text = http
            .get(format!("{}/metrics", run.url("tracelab-collector", 8889)))
            .header(
                "accept",
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
            )
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .unwrap_or_default();
        if wanted.iter().all(|m| text.contains(&format!("{m}{{"))) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "the dashboard queries {wanted:?}; :8889 serves:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for label in [
        "service_name=\"api-gateway\"",
        "span_kind=\"SPAN_KIND_SERVER\"",
        "span_name=\"POST /orders\"",
    ] {
        assert!(text.contains(label), "no {label} in:\n{text}");
    }
    run.stop().await;
    stand_in.stop(Duration::from_secs(5)).await;
}
