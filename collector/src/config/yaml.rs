//! YAML → JSON value tree with a line for every key path, and `${env:VAR}` substitution.
//!
//! Component configs are deserialized from `serde_json::Value` (through `serde_path_to_error`,
//! which yields the key path of a failure); this module keeps the YAML line of every path so
//! the loader can say *where* in the file a bad key or value is.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A parse or substitution problem, with the line it happened on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlError {
    pub line: usize,
    pub path: String,
    pub message: String,
}

/// A `${env:NAME}` without a default whose variable is unset: it expanded to "" (as in the
/// OpenTelemetry Collector); the loader turns these into warnings. One per variable per file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsetVar {
    /// Index of the file (in merge order).
    pub file: usize,
    pub line: usize,
    pub path: String,
    pub name: String,
}

/// The parsed document: its JSON value and the line of every key path in it.
///
/// A document merged from several files ([`Document::merge`]) also records which file every
/// key path came from (`files`: index of the file, in merge order; a path not in `files` came
/// from the first file).
#[derive(Debug, Default)]
pub struct Document {
    pub value: Value,
    pub lines: HashMap<String, usize>,
    pub files: HashMap<String, usize>,
    /// Unset variables referenced without a default, in every merged file (see [`UnsetVar`]).
    pub unset_vars: Vec<UnsetVar>,
}

impl Document {
    /// The line of `path`, or of its nearest ancestor that exists in the file (a missing
    /// field is reported at the line of the mapping that lacks it).
    pub fn line_of(&self, path: &str) -> usize {
        self.locate(path).1
    }

    /// `(file index, line)` of `path`, or of its nearest ancestor present in the document.
    pub fn locate(&self, path: &str) -> (usize, usize) {
        let mut p = path.to_string();
        loop {
            if let Some(l) = self.lines.get(&p) {
                return (self.files.get(&p).copied().unwrap_or(0), *l);
            }
            match parent_path(&p) {
                Some(parent) => p = parent,
                None => {
                    return (
                        self.files.get("").copied().unwrap_or(0),
                        self.lines.get("").copied().unwrap_or(1),
                    );
                }
            }
        }
    }

    /// Merges `later` (file number `file`) over `self` as the OpenTelemetry Collector's confmap
    /// does: mappings merge key by key, recursively; any other value of `later` (scalar,
    /// sequence, null) replaces the earlier one, and the earlier file's lines under it are
    /// dropped. An empty `later` document changes nothing.
    pub fn merge(&mut self, later: Document, file: usize) {
        self.unset_vars.extend(
            later
                .unset_vars
                .iter()
                .cloned()
                .map(|u| UnsetVar { file, ..u }),
        );
        if later.value.is_null() {
            return;
        }
        let mut at = Locations {
            lines: &mut self.lines,
            files: &mut self.files,
            later: &later.lines,
            file,
        };
        merge_value(&mut self.value, later.value, "", &mut at);
    }
}

/// Where the merged document's locations are kept, and those of the file being merged in.
struct Locations<'a> {
    lines: &'a mut HashMap<String, usize>,
    files: &'a mut HashMap<String, usize>,
    later: &'a HashMap<String, usize>,
    file: usize,
}

impl Locations<'_> {
    /// `path` and everything under it now come from the later file.
    fn take_from_later(&mut self, path: &str) {
        self.lines.retain(|p, _| !is_under(p, path));
        self.files.retain(|p, _| !is_under(p, path));
        for (p, line) in self.later.iter().filter(|(p, _)| is_under(p, path)) {
            self.lines.insert(p.clone(), *line);
            self.files.insert(p.clone(), self.file);
        }
    }
}

/// Whether `p` is `path` or under it (`path.x`, `path[0]`; everything is under the root ``).
fn is_under(p: &str, path: &str) -> bool {
    path.is_empty()
        || p.strip_prefix(path)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('.') || rest.starts_with('['))
}

fn merge_value(base: &mut Value, later: Value, path: &str, at: &mut Locations<'_>) {
    match (base, later) {
        (Value::Object(b), Value::Object(l)) => {
            for (key, v) in l {
                let child = join_key(path, &key);
                match b.get_mut(&key) {
                    Some(existing) => merge_value(existing, v, &child, at),
                    None => {
                        at.take_from_later(&child);
                        b.insert(key, v);
                    }
                }
            }
        }
        (base, later) => {
            // Replaced: the earlier file's lines under `path` no longer describe anything.
            at.take_from_later(path);
            *base = later;
        }
    }
}

/// `a.b[2].c` → `a.b[2]` → `a.b` → `a` → `` → None.
fn parent_path(p: &str) -> Option<String> {
    if p.is_empty() {
        return None;
    }
    if p.ends_with(']')
        && let Some(i) = p.rfind('[')
    {
        return Some(p[..i].to_string());
    }
    match p.rfind('.') {
        Some(i) => Some(p[..i].to_string()),
        None => Some(String::new()),
    }
}

/// Joins a key onto a path the way `serde_path_to_error` prints it.
pub fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

enum Frame {
    Map {
        map: Map<String, Value>,
        path: String,
        pending_key: Option<String>,
    },
    Seq {
        items: Vec<Value>,
        path: String,
    },
}

struct Builder<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    stack: Vec<Frame>,
    root: Option<Value>,
    lines: HashMap<String, usize>,
    anchors: HashMap<usize, Value>,
    anchor_stack: Vec<usize>,
    error: Option<YamlError>,
    unset_vars: Vec<UnsetVar>,
}

impl Builder<'_> {
    /// The path the next value will be stored under.
    fn next_path(&self) -> String {
        match self.stack.last() {
            None => String::new(),
            Some(Frame::Map {
                path, pending_key, ..
            }) => join_key(path, pending_key.as_deref().unwrap_or("")),
            Some(Frame::Seq { items, path }) => format!("{path}[{}]", items.len()),
        }
    }

    fn fail(&mut self, line: usize, path: String, message: String) {
        if self.error.is_none() {
            self.error = Some(YamlError {
                line,
                path,
                message,
            });
        }
    }

    fn push_value(&mut self, v: Value, line: usize) {
        match self.stack.last_mut() {
            None => self.root = Some(v),
            Some(Frame::Seq { items, .. }) => items.push(v),
            Some(Frame::Map {
                map,
                path,
                pending_key,
            }) => match pending_key.take() {
                None => {
                    // A key: only strings (or scalars printed as strings) are keys here.
                    let key = match v {
                        Value::String(s) => s,
                        Value::Null => String::new(),
                        Value::Bool(b) => b.to_string(),
                        Value::Number(n) => n.to_string(),
                        _ => {
                            let p = path.clone();
                            self.fail(line, p, "mapping keys must be scalars".into());
                            return;
                        }
                    };
                    let key_path = join_key(path, &key);
                    if map.contains_key(&key) {
                        self.fail(line, key_path, format!("duplicate key `{key}`"));
                        return;
                    }
                    self.lines.insert(key_path, line);
                    *pending_key = Some(key);
                }
                Some(k) => {
                    map.insert(k, v);
                }
            },
        }
    }

    fn is_key_position(&self) -> bool {
        matches!(
            self.stack.last(),
            Some(Frame::Map {
                pending_key: None,
                ..
            })
        )
    }

    fn scalar(&mut self, raw: String, style: TScalarStyle, line: usize) -> Value {
        let is_key = self.is_key_position();
        if is_key {
            return Value::String(raw);
        }
        let path = self.next_path();
        let quoted = !matches!(style, TScalarStyle::Plain);
        if raw.contains('$') {
            let mut unset = Vec::new();
            let result = substitute_env(&raw, self.env, &mut unset);
            for name in unset {
                if !self.unset_vars.iter().any(|u| u.name == name) {
                    self.unset_vars.push(UnsetVar {
                        file: 0,
                        line,
                        path: path.clone(),
                        name,
                    });
                }
            }
            match result {
                Ok((s, whole)) => {
                    // A plain scalar that was exactly one reference takes the type of its
                    // value (`port: ${env:PORT}` is a number), as the OpenTelemetry Collector does.
                    if whole && !quoted {
                        return resolve_plain(&s);
                    }
                    return Value::String(s);
                }
                Err(msg) => {
                    self.fail(line, path, msg);
                    return Value::Null;
                }
            }
        }
        if quoted {
            Value::String(raw)
        } else {
            resolve_plain(&raw)
        }
    }
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let line = mark.line();
        match ev {
            Event::Scalar(raw, style, anchor, _tag) => {
                let v = self.scalar(raw, style, line);
                if anchor > 0 {
                    self.anchors.insert(anchor, v.clone());
                }
                if !self.is_key_position() {
                    let p = self.next_path();
                    self.lines.entry(p).or_insert(line);
                }
                self.push_value(v, line);
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(v) => self.push_value(v, line),
                None => {
                    let p = self.next_path();
                    self.fail(line, p, "unknown alias".into());
                }
            },
            Event::MappingStart(anchor, _) | Event::SequenceStart(anchor, _) => {
                if self.is_key_position() {
                    let p = self.next_path();
                    self.fail(line, p, "complex mapping keys are not supported".into());
                    return;
                }
                let path = self.next_path();
                self.lines.entry(path.clone()).or_insert(line);
                self.anchor_stack.push(anchor);
                if matches!(ev, Event::MappingStart(..)) {
                    self.stack.push(Frame::Map {
                        map: Map::new(),
                        path,
                        pending_key: None,
                    });
                } else {
                    self.stack.push(Frame::Seq {
                        items: Vec::new(),
                        path,
                    });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                let v = match self.stack.pop() {
                    Some(Frame::Map { map, .. }) => Value::Object(map),
                    Some(Frame::Seq { items, .. }) => Value::Array(items),
                    None => return,
                };
                if let Some(anchor) = self.anchor_stack.pop()
                    && anchor > 0
                {
                    self.anchors.insert(anchor, v.clone());
                }
                self.push_value(v, line);
            }
            Event::DocumentStart if self.root.is_some() => {
                self.fail(
                    line,
                    String::new(),
                    "only one YAML document is allowed".into(),
                );
            }
            _ => {}
        }
    }
}

/// Parses one YAML document. `env` resolves `${env:VAR}` references.
pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Document, YamlError> {
    let mut b = Builder {
        env,
        stack: Vec::new(),
        root: None,
        lines: HashMap::new(),
        anchors: HashMap::new(),
        anchor_stack: Vec::new(),
        error: None,
        unset_vars: Vec::new(),
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut b, false) {
        return Err(YamlError {
            line: e.marker().line(),
            path: String::new(),
            message: format!("invalid YAML: {}", e.info()),
        });
    }
    if let Some(e) = b.error {
        return Err(e);
    }
    b.lines.entry(String::new()).or_insert(1);
    Ok(Document {
        value: b.root.unwrap_or(Value::Null),
        lines: b.lines,
        files: HashMap::new(),
        unset_vars: b.unset_vars,
    })
}

/// YAML 1.2 core schema resolution of a plain scalar.
fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "true" | "True" | "TRUE" => return Value::Bool(true),
        "false" | "False" | "FALSE" => return Value::Bool(false),
        _ => {}
    }
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit()) {
        if let Ok(i) = s.parse::<i64>() {
            return Value::Number(i.into());
        }
        if let Ok(u) = s.parse::<u64>() {
            return Value::Number(u.into());
        }
    }
    if let Some(hex) = s.strip_prefix("0x")
        && let Ok(u) = u64::from_str_radix(hex, 16)
    {
        return Value::Number(u.into());
    }
    let looks_float = s.bytes().any(|c| c.is_ascii_digit())
        && s.bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'e' | b'E' | b'-' | b'+'));
    if looks_float
        && let Ok(f) = s.parse::<f64>()
        && let Some(n) = Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(s.to_string())
}

/// Expands `${env:VAR}`, `${env:VAR:-default}`, `${VAR}` and `$$` (a literal `$`), as the
/// OpenTelemetry Collector's env provider does: the default applies only when `VAR` is unset (a
/// set but empty `VAR` gives ""); an unset `VAR` without a default gives "" and its name is
/// pushed onto `unset` (the caller warns). Returns the result and whether the input was exactly
/// one reference.
pub fn substitute_env(
    input: &str,
    env: &dyn Fn(&str) -> Option<String>,
    unset: &mut Vec<String>,
) -> Result<(String, bool), String> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    let mut refs = 0;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$$") {
            out.push('$');
            rest = after;
            continue;
        }
        let Some(body_start) = tail.strip_prefix("${") else {
            out.push('$');
            rest = &tail[1..];
            continue;
        };
        let Some(end) = body_start.find('}') else {
            return Err(format!("unterminated `${{` in `{input}`"));
        };
        let body = &body_start[..end];
        rest = &body_start[end + 1..];
        refs += 1;
        let reference = body.strip_prefix("env:").unwrap_or(body);
        let (name, default) = match reference.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (reference, None),
        };
        if let Some(scheme) = body.split_once(':').map(|(s, _)| s)
            && body.contains(':')
            && !body.starts_with("env:")
            && default.is_none()
        {
            return Err(format!(
                "unsupported config provider `{scheme}` in `${{{body}}}`; expected `${{env:VAR}}` or `${{env:VAR:-default}}`"
            ));
        }
        if name.is_empty() || !name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') {
            return Err(format!(
                "invalid environment variable name `{name}` in `${{{body}}}`"
            ));
        }
        match (env(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => {
                if !unset.iter().any(|u| u == name) {
                    unset.push(name.to_string());
                }
            }
        }
    }
    out.push_str(rest);
    let whole = refs == 1 && input.trim().starts_with("${") && input.trim().ends_with('}');
    Ok((out, whole))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn lines_and_paths() {
        let doc = parse(
            "a:\n  b: 1\n  list:\n    - x: 2\n    - y: [1, 2]\nc: hello\n",
            &no_env,
        )
        .unwrap();
        assert_eq!(doc.value["a"]["b"], 1);
        assert_eq!(doc.line_of("a.b"), 2);
        assert_eq!(doc.line_of("a.list[1].y"), 5);
        assert_eq!(doc.line_of("a.list[1].missing"), 5);
        assert_eq!(doc.line_of("c"), 6);
    }

    #[test]
    fn env_substitution() {
        let env = |k: &str| (k == "PORT").then(|| "4317".to_string());
        let doc = parse(
            "p: ${env:PORT}\nq: \"${env:PORT}\"\nr: ${env:NOPE:-x}\ns: a$${b}\n",
            &env,
        )
        .unwrap();
        assert_eq!(doc.value["p"], 4317);
        assert_eq!(doc.value["q"], "4317");
        assert_eq!(doc.value["r"], "x");
        assert_eq!(doc.value["s"], "a${b}");
    }

    #[test]
    fn unset_expands_to_empty_with_a_warning_and_defaults_only_when_unset() {
        let env = |k: &str| (k == "EMPTY").then(String::new);
        let doc = parse(
            "a:\n  b: ${env:MISSING}\n  c: x-${env:MISSING}-y\n  d: ${env:EMPTY:-dflt}\n  e: ${env:OTHER:-dflt}\n  f: \"${env:EMPTY}\"\n  g: ${env:LATER}\n",
            &env,
        )
        .unwrap();
        // A plain scalar that is exactly an unset reference resolves like an empty value: null.
        assert_eq!(doc.value["a"]["b"], Value::Null);
        assert_eq!(doc.value["a"]["c"], "x--y");
        assert_eq!(
            doc.value["a"]["d"],
            Value::Null,
            "set but empty: no default"
        );
        assert_eq!(doc.value["a"]["e"], "dflt");
        assert_eq!(doc.value["a"]["f"], "");
        // Once per variable, at its first reference.
        let names: Vec<_> = doc
            .unset_vars
            .iter()
            .map(|u| (u.name.as_str(), u.line, u.path.as_str()))
            .collect();
        assert_eq!(names, [("MISSING", 2, "a.b"), ("LATER", 7, "a.g")]);
    }

    #[test]
    fn merge_maps_key_by_key_and_later_scalars_and_sequences_win() {
        let mut doc = parse(
            "a:\n  keep: 1\n  over: 2\n  list:\n    - x: 1\n    - x: 2\n    - x: 3\n  map: {m: 1}\nonly_first: true\n",
            &no_env,
        )
        .unwrap();
        let later = parse(
            "# second file\na:\n  over: 20\n  list: [9]\n  map:\n    n: 2\n  new: {deep: 1}\n",
            &no_env,
        )
        .unwrap();
        doc.merge(later, 1);
        assert_eq!(
            doc.value,
            serde_json::json!({
                "a": {"keep": 1, "over": 20, "list": [9], "map": {"m": 1, "n": 2}, "new": {"deep": 1}},
                "only_first": true
            })
        );
        // Merged mappings keep the first file's line; everything else says where it came from.
        assert_eq!(doc.locate("a"), (0, 1));
        assert_eq!(doc.locate("a.keep"), (0, 2));
        assert_eq!(doc.locate("a.over"), (1, 3));
        assert_eq!(doc.locate("a.map.m"), (0, 8));
        assert_eq!(doc.locate("a.map.n"), (1, 6));
        assert_eq!(doc.locate("a.new.deep.missing"), (1, 7));
        assert_eq!(doc.locate("only_first"), (0, 9));
        // The replaced sequence: the first file's items are gone, not reported at stale lines.
        assert_eq!(doc.locate("a.list"), (1, 4));
        assert_eq!(doc.locate("a.list[0]"), (1, 4));
        assert_eq!(doc.locate("a.list[2].x"), (1, 4));
        assert!(!doc.lines.contains_key("a.list[1].x"));
    }

    #[test]
    fn merge_null_replaces_and_an_empty_file_changes_nothing() {
        let mut doc = parse("e:\n  debug: {verbosity: detailed}\n", &no_env).unwrap();
        doc.merge(parse("# nothing\n", &no_env).unwrap(), 1);
        assert_eq!(doc.value["e"]["debug"]["verbosity"], "detailed");
        doc.merge(parse("e:\n  debug:\n", &no_env).unwrap(), 2);
        assert_eq!(doc.value, serde_json::json!({"e": {"debug": null}}));
        assert_eq!(doc.locate("e.debug.verbosity"), (2, 2));
        // A first file that is empty takes everything from the next.
        let mut doc = parse("", &no_env).unwrap();
        doc.merge(parse("\nx: 1\n", &no_env).unwrap(), 1);
        assert_eq!(doc.value, serde_json::json!({"x": 1}));
        assert_eq!(doc.locate("x"), (1, 2));
    }
}
