//! The tree-aware window of a trace (`/api/v1/traces/{id}/tree`, `…/tree/spans`, `…/overview`;
//! types in `collector_api::tree`). A trace's tree is built once from the store's compact span
//! headers ([`TraceStore::span_headers`]: no bodies) — display order, depth, subtree aggregates,
//! critical path, bottleneck — and kept in a small LRU cache ([`TreeCache`]); a request then costs
//! one count over the trace's index entries (to notice new spans), a walk over the display order
//! that skips collapsed subtrees, and the bodies of the few hundred spans it returns.
//!
//! Everything here is iterative (a 100,000-deep chain builds) and O(n log n) to build.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use collector_api::critical_path::{Bottleneck, bottleneck_in, critical_path_in};
use collector_api::jaeger::{Process, Span};
use collector_api::tree::{
    LeafCall, MAX_LEAF_CALLS, MAX_TREE_ROWS, MAX_TREE_SPANS, MAX_TREE_TOGGLES, Revealed, SpanName,
    SubtreeSummary, TraceOverview, TreeRequest, TreeRow, TreeSpans, TreeWindow,
};
use collector_api::v1::ServiceSpanCount;

use super::{AppState, Pairs, QueryError, V1Failure, params};
use crate::store::{SpanHeader, StoreError, TraceId, TraceStore, span_key};

/// FNV-1a for the tree's maps: building a 100,000-span tree hashes 300,000 keys, and SipHash's
/// DoS resistance buys nothing for span ids and names of one trace already stored.
#[derive(Default, Clone, Copy)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h = (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
        self.0 = h;
    }
    fn write_u64(&mut self, v: u64) {
        // Span ids are random already: one multiply spreads them.
        self.0 = (self.0 ^ v).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

/// No node (a root's tree parent).
const NONE: u32 = u32::MAX;
/// Rows a window returns when the request names no limit.
const DEFAULT_ROWS: u64 = 200;

/// One span in the tree.
#[derive(Debug, Clone)]
struct Node {
    row: i64,
    span_id: u64,
    service: u32,
    name: u32,
    kind: i32,
    start: u64,
    end: u64,
    error: bool,
    /// Its parent is named but not in the trace.
    missing_parent: bool,
    /// The node it hangs under in display order ([`NONE`] for roots and cycle members).
    parent: u32,
    depth: u32,
    children: u32,
    /// Its position in display order, and the position just past its subtree.
    pos: u32,
    end_pos: u32,
    /// Over its descendants: errors, earliest start, latest end.
    desc_errors: u32,
    desc_start: u64,
    desc_end: u64,
}

/// The tree of one trace, immutable once built (but for the store generation it was last found
/// current at).
#[derive(Debug)]
pub struct TraceTree {
    trace_id: TraceId,
    /// The store's span generation read before the spans were: unchanged means still current.
    generation: std::sync::atomic::AtomicU64,
    nodes: Vec<Node>,
    /// Node indices in display order.
    order: Vec<u32>,
    by_id: FastMap<u64, u32>,
    services: Vec<String>,
    names: Vec<String>,
    critical: HashMap<u32, Vec<[u64; 2]>>,
    bottleneck: Option<Bottleneck>,
    root: Option<u32>,
    start: u64,
    end: u64,
    max_depth: u32,
}

/// Interns strings into indices.
#[derive(Default)]
struct Interner {
    list: Vec<String>,
    index: FastMap<String, u32>,
}

impl Interner {
    fn add(&mut self, s: String) -> u32 {
        if let Some(&i) = self.index.get(&s) {
            return i;
        }
        let i = self.list.len() as u32;
        self.index.insert(s.clone(), i);
        self.list.push(s);
        i
    }
}

/// Which spans are collapsed for one request.
struct Collapse {
    collapsed: HashSet<u32>,
    expanded: HashSet<u32>,
    expand_depth: Option<u32>,
}

impl TraceTree {
    /// Builds the tree of `headers` (any order). Display order: roots by (start, longer first,
    /// row), each followed depth-first by its children in the same order.
    pub fn build(trace_id: TraceId, headers: Vec<SpanHeader>) -> Self {
        let n = headers.len();
        let mut services = Interner::default();
        let mut names = Interner::default();
        let mut parents: Vec<Option<u64>> = Vec::with_capacity(n);
        let mut nodes: Vec<Node> = Vec::with_capacity(n);
        for h in headers {
            parents.push(h.parent_id);
            nodes.push(Node {
                row: h.row,
                span_id: h.span_id,
                service: services.add(h.service),
                name: names.add(h.name),
                kind: h.kind,
                start: h.start_us,
                end: h.start_us.saturating_add(h.duration_us),
                error: h.error,
                missing_parent: false,
                parent: NONE,
                depth: 0,
                children: 0,
                pos: 0,
                end_pos: 0,
                desc_errors: 0,
                desc_start: u64::MAX,
                desc_end: 0,
            });
        }
        let by_id: FastMap<u64, u32> = nodes
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id, i as u32))
            .collect();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut roots: Vec<usize> = Vec::new();
        for (i, p) in parents.iter().enumerate() {
            match p.map(|p| by_id.get(&p).copied()) {
                Some(Some(pi)) if pi as usize != i => children[pi as usize].push(i),
                Some(_) => {
                    nodes[i].missing_parent = true;
                    roots.push(i);
                }
                None => roots.push(i),
            }
        }
        let key = |i: &usize| {
            let s = &nodes[*i];
            (s.start, std::cmp::Reverse(s.end - s.start), s.row)
        };
        roots.sort_by_key(key);
        for c in &mut children {
            c.sort_by_key(key);
        }
        // Depth first, iteratively: (node, tree parent, depth, entering?).
        let mut order: Vec<u32> = Vec::with_capacity(n);
        let mut seen = vec![false; n];
        let mut stack: Vec<(usize, u32, u32, bool)> =
            roots.iter().rev().map(|&r| (r, NONE, 0, true)).collect();
        while let Some((s, parent, d, entering)) = stack.pop() {
            if entering {
                if seen[s] {
                    continue;
                }
                seen[s] = true;
                let node = &mut nodes[s];
                node.pos = order.len() as u32;
                node.parent = parent;
                node.depth = d;
                order.push(s as u32);
                stack.push((s, parent, d, false));
                for &c in children[s].iter().rev() {
                    stack.push((c, s as u32, d + 1, true));
                }
            } else {
                nodes[s].end_pos = order.len() as u32;
            }
        }
        // Spans in a parent cycle, never reached from a root: flat, at the end.
        for (i, node) in nodes.iter_mut().enumerate() {
            if !seen[i] {
                node.pos = order.len() as u32;
                order.push(i as u32);
                node.end_pos = node.pos + 1;
            }
        }
        // Children and descendant aggregates, bottom-up: a node's subtree follows it in order.
        for p in (0..order.len()).rev() {
            let i = order[p] as usize;
            let parent = nodes[i].parent;
            if parent == NONE {
                continue;
            }
            let (errors, lo, hi, own_err, own_lo, own_hi) = {
                let c = &nodes[i];
                (
                    c.desc_errors,
                    c.desc_start,
                    c.desc_end,
                    u32::from(c.error),
                    c.start,
                    c.end,
                )
            };
            let pn = &mut nodes[parent as usize];
            pn.children += 1;
            pn.desc_errors += errors + own_err;
            pn.desc_start = pn.desc_start.min(lo).min(own_lo);
            pn.desc_end = pn.desc_end.max(hi).max(own_hi);
        }
        // The critical path from the earliest (then longest) parentless span, as the viewer and
        // `tracelab assert` compute it over Jaeger spans.
        let root = nodes
            .iter()
            .enumerate()
            .filter(|(i, s)| parents[*i].is_none() || s.missing_parent)
            .min_by_key(|(_, s)| (s.start, std::cmp::Reverse(s.end - s.start)))
            .map(|(i, _)| i as u32);
        let mut critical: HashMap<u32, Vec<[u64; 2]>> = HashMap::new();
        let mut bottleneck = None;
        if let Some(r) = root {
            let path = critical_path_in(|i| (nodes[i].start, nodes[i].end), &children, r as usize);
            for seg in &path {
                critical
                    .entry(seg.span as u32)
                    .or_default()
                    .push([seg.start, seg.end]);
            }
            bottleneck = bottleneck_in(
                |i| {
                    (
                        services.list[nodes[i].service as usize].as_str(),
                        names.list[nodes[i].name as usize].as_str(),
                    )
                },
                |i| format!("{:016x}", nodes[i].span_id),
                &path,
                nodes[r as usize].end - nodes[r as usize].start,
            );
        }
        let start = nodes.iter().map(|s| s.start).min().unwrap_or(0);
        let end = nodes.iter().map(|s| s.end).max().unwrap_or(start);
        let max_depth = nodes.iter().map(|s| s.depth).max().unwrap_or(0);
        Self {
            trace_id,
            generation: Default::default(),
            nodes,
            order,
            by_id,
            services: services.list,
            names: names.list,
            critical,
            bottleneck,
            root,
            start,
            end,
            max_depth,
        }
    }

    pub fn span_count(&self) -> u64 {
        self.nodes.len() as u64
    }

    /// The node of a hex span id; `Ok(None)` when the trace has no such span.
    fn node_of(&self, hex: &str) -> Result<Option<u32>, QueryError> {
        let bytes = params::parse_span_id(hex)?;
        Ok(self.by_id.get(&span_key(&bytes)).copied())
    }

    fn collapse(&self, req: &TreeRequest) -> Result<Collapse, QueryError> {
        let ids = |list: &[String]| -> Result<HashSet<u32>, QueryError> {
            let mut out = HashSet::with_capacity(list.len());
            for s in list {
                out.extend(self.node_of(s)?);
            }
            Ok(out)
        };
        Ok(Collapse {
            collapsed: ids(&req.collapsed)?,
            expanded: ids(&req.expanded)?,
            expand_depth: req.expand_depth,
        })
    }

    fn is_collapsed(&self, i: u32, c: &Collapse) -> bool {
        let n = &self.nodes[i as usize];
        n.children > 0
            && (c.collapsed.contains(&i)
                || c.expand_depth
                    .is_some_and(|d| n.depth >= d && !c.expanded.contains(&i)))
    }

    /// The visible rows `[offset, offset + limit)` as (node, collapsed?), the number of visible
    /// rows, and the row of `reveal` with the ancestors opened for it. One walk over the display
    /// order that jumps over collapsed subtrees.
    #[allow(clippy::type_complexity)]
    fn visible(
        &self,
        c: &mut Collapse,
        offset: u64,
        limit: u64,
        reveal: Option<u32>,
    ) -> (Vec<(u32, bool)>, u64, Option<(u64, Vec<u32>)>) {
        // A revealed span's collapsed ancestors open (root first in the answer).
        let mut opened = Vec::new();
        if let Some(t) = reveal {
            let mut a = self.nodes[t as usize].parent;
            let mut guard = 0usize;
            while a != NONE && guard <= self.nodes.len() {
                if self.is_collapsed(a, c) {
                    opened.push(a);
                }
                a = self.nodes[a as usize].parent;
                guard += 1;
            }
            opened.reverse();
            for &a in &opened {
                c.collapsed.remove(&a);
                c.expanded.insert(a);
            }
        }
        let mut rows = Vec::new();
        let mut row = 0u64;
        let mut found = None;
        let mut p = 0usize;
        while p < self.order.len() {
            let i = self.order[p];
            let coll = self.is_collapsed(i, c);
            if row >= offset && row < offset.saturating_add(limit) {
                rows.push((i, coll));
            }
            if Some(i) == reveal {
                found = Some(row);
            }
            row += 1;
            p = if coll {
                self.nodes[i as usize].end_pos as usize
            } else {
                p + 1
            };
        }
        (rows, row, found.map(|r| (r, opened)))
    }

    fn hex(&self, i: u32) -> String {
        format!("{:016x}", self.nodes[i as usize].span_id)
    }

    fn name(&self, i: u32) -> SpanName {
        let n = &self.nodes[i as usize];
        SpanName {
            service: self.services[n.service as usize].clone(),
            operation: self.names[n.name as usize].clone(),
        }
    }

    fn summary(&self, i: u32) -> SubtreeSummary {
        let n = &self.nodes[i as usize];
        SubtreeSummary {
            span_count: u64::from(n.end_pos - n.pos - 1),
            error_count: u64::from(n.desc_errors),
            start_time: n.desc_start,
            end_time: n.desc_end,
        }
    }

    fn row(&self, i: u32, span: Span, collapsed: bool) -> TreeRow {
        let n = &self.nodes[i as usize];
        TreeRow {
            span,
            depth: n.depth,
            child_count: u64::from(n.children),
            collapsed,
            hidden: collapsed.then(|| self.summary(i)),
            critical: self.critical.get(&i).cloned().unwrap_or_default(),
            missing_parent: n.missing_parent,
        }
    }

    /// Fetches the bodies of `nodes` and turns them into rows (nodes whose span has gone since the
    /// tree was built are left out).
    async fn rows(
        &self,
        store: &TraceStore,
        nodes: &[(u32, bool)],
    ) -> Result<(Vec<TreeRow>, BTreeMap<String, Process>), StoreError> {
        let by_row: HashMap<i64, (u32, bool)> = nodes
            .iter()
            .map(|&(i, c)| (self.nodes[i as usize].row, (i, c)))
            .collect();
        let wanted: Vec<i64> = nodes
            .iter()
            .map(|&(i, _)| self.nodes[i as usize].row)
            .collect();
        let (spans, processes) = store.spans_by_row(&wanted).await?;
        let rows = spans
            .into_iter()
            .filter_map(|(r, span)| by_row.get(&r).map(|&(i, c)| self.row(i, span, c)))
            .collect();
        Ok((rows, processes))
    }

    /// Per service in order of first appearance in display order: spans and errors.
    fn services_summary(&self) -> Vec<ServiceSpanCount> {
        let mut at: Vec<Option<usize>> = vec![None; self.services.len()];
        let mut out: Vec<ServiceSpanCount> = Vec::new();
        for &i in &self.order {
            let n = &self.nodes[i as usize];
            let k = *at[n.service as usize].get_or_insert_with(|| {
                out.push(ServiceSpanCount {
                    service: self.services[n.service as usize].clone(),
                    span_count: 0,
                    error_count: 0,
                });
                out.len() - 1
            });
            out[k].span_count += 1;
            out[k].error_count += u64::from(n.error);
        }
        out
    }

    /// Leaf CLIENT, INTERNAL and unspecified-kind spans, shortest first.
    fn leaf_calls(&self) -> (Vec<LeafCall>, u64) {
        let mut leaves: Vec<u32> = (0..self.nodes.len() as u32)
            .filter(|&i| {
                let n = &self.nodes[i as usize];
                n.children == 0 && matches!(n.kind, 0 | 1 | 3)
            })
            .collect();
        let total = leaves.len() as u64;
        let key = |i: &u32| {
            let n = &self.nodes[*i as usize];
            (n.end - n.start, n.start, *i)
        };
        if leaves.len() > MAX_LEAF_CALLS {
            leaves.select_nth_unstable_by_key(MAX_LEAF_CALLS, key);
            leaves.truncate(MAX_LEAF_CALLS);
        }
        leaves.sort_by_key(key);
        let calls = leaves
            .into_iter()
            .map(|i| {
                let n = &self.nodes[i as usize];
                let name = self.name(i);
                LeafCall {
                    span_id: self.hex(i),
                    service: name.service,
                    operation: name.operation,
                    start_time: n.start,
                    duration: n.end - n.start,
                }
            })
            .collect();
        (calls, total)
    }
}

/// How many trees a query API keeps, and how many spans they may hold together (the newest tree
/// is kept whatever its size).
pub const CACHED_TREES: usize = 8;
pub const CACHED_SPANS: u64 = 400_000;

/// Trees by trace with the tick each was last used at.
#[derive(Debug, Default)]
struct Lru {
    tick: u64,
    trees: HashMap<TraceId, (u64, Arc<TraceTree>)>,
}

/// Built trees by trace, least recently used evicted first; a tree is rebuilt when the trace's
/// stored span count differs from the tree's (spans are only ever added to a trace, or the whole
/// trace removed).
#[derive(Debug)]
pub struct TreeCache {
    entries: Mutex<Lru>,
    /// One build at a time: concurrent first requests for a huge trace build it once.
    building: tokio::sync::Mutex<()>,
    max_trees: usize,
    max_spans: u64,
    builds: std::sync::atomic::AtomicU64,
}

impl Default for TreeCache {
    fn default() -> Self {
        Self::new(CACHED_TREES, CACHED_SPANS)
    }
}

impl TreeCache {
    pub fn new(max_trees: usize, max_spans: u64) -> Self {
        Self {
            entries: Mutex::new(Lru::default()),
            building: tokio::sync::Mutex::new(()),
            max_trees: max_trees.max(1),
            max_spans,
            builds: Default::default(),
        }
    }

    /// Trees built so far (tests check what was served from the cache).
    #[cfg(test)]
    fn builds(&self) -> u64 {
        self.builds.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The cached tree of `id`, whatever its state (marked used).
    fn peek(&self, id: &TraceId) -> Option<Arc<TraceTree>> {
        let mut g = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        g.tick += 1;
        let tick = g.tick;
        g.trees.get_mut(id).map(|(used, t)| {
            *used = tick;
            t.clone()
        })
    }

    fn cached(&self, id: &TraceId, span_count: u64) -> Option<Arc<TraceTree>> {
        let mut g = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        g.tick += 1;
        let tick = g.tick;
        match g.trees.get_mut(id) {
            Some((used, t)) if t.span_count() == span_count => {
                *used = tick;
                Some(t.clone())
            }
            Some(_) => {
                g.trees.remove(id);
                None
            }
            None => None,
        }
    }

    fn insert(&self, tree: Arc<TraceTree>) {
        let mut g = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        g.tick += 1;
        let tick = g.tick;
        g.trees.insert(tree.trace_id, (tick, tree));
        loop {
            let spans: u64 = g.trees.values().map(|(_, t)| t.span_count()).sum();
            if g.trees.len() <= self.max_trees && spans <= self.max_spans || g.trees.len() <= 1 {
                break;
            }
            let Some(oldest) = g.trees.iter().min_by_key(|(_, (u, _))| *u).map(|(k, _)| *k) else {
                break;
            };
            g.trees.remove(&oldest);
        }
    }

    /// The tree of trace `id` as stored now; `None` when the store holds no span of it. A cached
    /// tree is served without a query while the store's span generation is unchanged since it was
    /// last checked; otherwise the trace's spans are counted (one pass over its index entries) and
    /// the tree rebuilt when the count differs.
    pub async fn get(
        &self,
        store: &TraceStore,
        id: &TraceId,
    ) -> Result<Option<Arc<TraceTree>>, StoreError> {
        use std::sync::atomic::Ordering::Relaxed;
        let generation = store.span_generation();
        if let Some(t) = self.peek(id)
            && t.generation.load(Relaxed) == generation
        {
            return Ok(Some(t));
        }
        let (count, _, _) = store.trace_extent(id).await?;
        if count == 0 {
            self.entries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .trees
                .remove(id);
            return Ok(None);
        }
        if let Some(t) = self.cached(id, count) {
            t.generation.store(generation, Relaxed);
            return Ok(Some(t));
        }
        let _one = self.building.lock().await;
        // Another request may have built it while this one waited.
        if let Some(t) = self.cached(id, count) {
            return Ok(Some(t));
        }
        let began = std::time::Instant::now();
        let headers = store.span_headers(id).await?;
        if headers.is_empty() {
            return Ok(None);
        }
        let read_ms = began.elapsed().as_millis() as u64;
        let trace = *id;
        // CPU work off the async workers: ~100k spans take a noticeable moment in a debug build.
        let tree = tokio::task::spawn_blocking(move || TraceTree::build(trace, headers))
            .await
            .map_err(|e| StoreError::Schema(format!("building a trace tree failed: {e}")))?;
        tree.generation.store(generation, Relaxed);
        tracing::info!(
            trace_id = %collector_api::ids::hex_id(id),
            spans = tree.span_count(),
            read_ms,
            total_ms = began.elapsed().as_millis() as u64,
            "query API: trace tree built"
        );
        let tree = Arc::new(tree);
        self.builds.fetch_add(1, Relaxed);
        self.insert(tree.clone());
        Ok(Some(tree))
    }
}

async fn tree_of(s: &AppState, trace_id: &str) -> Result<Arc<TraceTree>, QueryError> {
    let id = params::parse_trace_id(trace_id)?;
    s.trees
        .get(&s.store, &id)
        .await?
        .ok_or_else(|| QueryError::NotFound(format!("trace {trace_id} not found")))
}

/// Comma-separated span ids of a query parameter (empty items ignored).
fn id_list(q: &[(String, String)], key: &str) -> Vec<String> {
    q.iter()
        .filter(|(k, _)| k == key)
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

/// The query parameters of `GET …/tree` as a [`TreeRequest`].
fn request_from_query(q: &[(String, String)]) -> Result<TreeRequest, QueryError> {
    let depth = match params::opt_u64(q, "expandDepth")? {
        Some(d) if d > u64::from(u32::MAX) => {
            return Err(QueryError::BadRequest(format!(
                "expandDepth {d} is out of range"
            )));
        }
        d => d.map(|d| d as u32),
    };
    Ok(TreeRequest {
        offset: params::opt_u64(q, "offset")?.unwrap_or(0),
        limit: params::opt_u64(q, "limit")?.unwrap_or(0),
        collapsed: id_list(q, "collapsed"),
        expanded: id_list(q, "expanded"),
        expand_depth: depth,
        reveal: params::get(q, "reveal")
            .filter(|v| !v.is_empty())
            .map(str::to_string),
    })
}

async fn answer(s: &AppState, trace_id: &str, req: TreeRequest) -> Result<TreeWindow, QueryError> {
    let limit = if req.limit == 0 {
        DEFAULT_ROWS
    } else {
        req.limit
    };
    if limit > MAX_TREE_ROWS {
        return Err(QueryError::BadRequest(format!(
            "limit must be between 1 and {MAX_TREE_ROWS}"
        )));
    }
    if req.collapsed.len() + req.expanded.len() > MAX_TREE_TOGGLES {
        return Err(QueryError::TooLarge(format!(
            "{} collapsed and expanded span ids; at most {MAX_TREE_TOGGLES} (use expand_depth)",
            req.collapsed.len() + req.expanded.len()
        )));
    }
    let tree = tree_of(s, trace_id).await?;
    let mut collapse = tree.collapse(&req)?;
    let reveal = match &req.reveal {
        Some(r) => tree.node_of(r)?,
        None => None,
    };
    let (nodes, total, found) = tree.visible(&mut collapse, req.offset, limit, reveal);
    let (rows, processes) = tree.rows(&s.store, &nodes).await?;
    Ok(TreeWindow {
        trace_id: collector_api::ids::hex_id(&tree.trace_id),
        span_count: tree.span_count(),
        total_rows: total,
        offset: req.offset,
        rows,
        processes,
        trace_start_time: tree.start,
        trace_end_time: tree.end,
        revealed: found.map(|(row, opened)| Revealed {
            span_id: tree.hex(reveal.unwrap_or(0)),
            row,
            opened: opened.into_iter().map(|a| tree.hex(a)).collect(),
        }),
    })
}

/// `GET /api/v1/traces/{id}/tree?offset=&limit=&collapsed=a,b&expanded=&expandDepth=&reveal=`.
pub(super) async fn tree_window_get(
    State(s): State<AppState>,
    Path(trace_id): Path<String>,
    Query(q): Pairs,
) -> Result<Json<TreeWindow>, V1Failure> {
    let req = request_from_query(&q)?;
    Ok(Json(answer(&s, &trace_id, req).await?))
}

/// `POST /api/v1/traces/{id}/tree` with a [`TreeRequest`] body.
pub(super) async fn tree_window_post(
    State(s): State<AppState>,
    Path(trace_id): Path<String>,
    body: Result<Json<TreeRequest>, JsonRejection>,
) -> Result<Json<TreeWindow>, V1Failure> {
    let Json(req) = body.map_err(|e| {
        QueryError::BadRequest(format!(
            "expected a JSON body {{\"offset\", \"limit\", \"collapsed\": [span ids], \"expanded\": [span ids], \
             \"expand_depth\", \"reveal\"}}: {}",
            e.body_text()
        ))
    })?;
    Ok(Json(answer(&s, &trace_id, req).await?))
}

/// `GET /api/v1/traces/{id}/tree/spans?spanID=a&spanID=b` (or `spanID=a,b`).
pub(super) async fn tree_spans(
    State(s): State<AppState>,
    Path(trace_id): Path<String>,
    Query(q): Pairs,
) -> Result<Json<TreeSpans>, V1Failure> {
    let ids = id_list(&q, "spanID");
    if ids.is_empty() {
        return Err(QueryError::BadRequest("parameter 'spanID' is required".into()).into());
    }
    if ids.len() > MAX_TREE_SPANS {
        return Err(QueryError::TooLarge(format!(
            "{} span ids; at most {MAX_TREE_SPANS} a call",
            ids.len()
        ))
        .into());
    }
    let tree = tree_of(&s, &trace_id).await?;
    let mut nodes = Vec::new();
    for id in &ids {
        if let Some(i) = tree.node_of(id)? {
            nodes.push((i, false));
        }
    }
    let (rows, processes) = tree.rows(&s.store, &nodes).await?;
    let mut names = BTreeMap::new();
    for r in &rows {
        for reference in &r.span.references {
            if reference.trace_id == r.span.trace_id
                && let Ok(Some(j)) = tree.node_of(&reference.span_id)
            {
                names.insert(tree.hex(j), tree.name(j));
            }
        }
    }
    Ok(Json(TreeSpans {
        rows,
        processes,
        names,
    }))
}

/// `GET /api/v1/traces/{id}/overview`.
pub(super) async fn overview(
    State(s): State<AppState>,
    Path(trace_id): Path<String>,
) -> Result<Json<TraceOverview>, V1Failure> {
    let tree = tree_of(&s, &trace_id).await?;
    let (root, processes) = match tree.root {
        Some(r) => {
            let (mut rows, processes) = tree.rows(&s.store, &[(r, false)]).await?;
            (rows.pop(), processes)
        }
        None => (None, BTreeMap::new()),
    };
    let (leaf_calls, leaf_calls_total) = tree.leaf_calls();
    Ok(Json(TraceOverview {
        trace_id: collector_api::ids::hex_id(&tree.trace_id),
        span_count: tree.span_count(),
        error_count: tree.nodes.iter().filter(|n| n.error).count() as u64,
        max_depth: tree.max_depth,
        trace_start_time: tree.start,
        trace_end_time: tree.end,
        services: tree.services_summary(),
        missing_parents: tree.nodes.iter().filter(|n| n.missing_parent).count() as u64,
        root,
        processes,
        bottleneck: tree.bottleneck.clone(),
        leaf_calls,
        leaf_calls_total,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreConfig;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{
        ResourceSpans, ScopeSpans, Span as OtlpSpan, Status,
    };
    use serde_json::{Value as J, json};

    const TRACE: TraceId = [7; 16];

    /// (id, parent, start, duration, error)
    fn header(id: u64, parent: Option<u64>, start: u64, dur: u64, error: bool) -> SpanHeader {
        SpanHeader {
            row: id as i64,
            span_id: id,
            parent_id: parent,
            service: if id.is_multiple_of(2) { "even" } else { "odd" }.into(),
            name: format!("op-{id}"),
            kind: 1,
            start_us: start,
            duration_us: dur,
            error,
        }
    }

    fn ids(t: &TraceTree, rows: &[(u32, bool)]) -> Vec<u64> {
        rows.iter()
            .map(|(i, _)| t.nodes[*i as usize].span_id)
            .collect()
    }

    fn all(t: &TraceTree, c: &mut Collapse) -> (Vec<u64>, u64) {
        let (rows, total, _) = t.visible(c, 0, u64::MAX, None);
        (ids(t, &rows), total)
    }

    fn open() -> Collapse {
        Collapse {
            collapsed: HashSet::new(),
            expanded: HashSet::new(),
            expand_depth: None,
        }
    }

    /// root 1 [0, 100): child 3 [10, 40) with grandchildren 5 [12, 20, error] and 6 [20, 30);
    /// child 2 [50, 60); orphan 9 (parent 99 absent) at 70; a second root 8 at 5.
    fn sample() -> TraceTree {
        TraceTree::build(
            TRACE,
            vec![
                header(2, Some(1), 50, 10, false),
                header(6, Some(3), 20, 10, false),
                header(9, Some(99), 70, 5, true),
                header(1, None, 0, 100, false),
                header(5, Some(3), 12, 8, true),
                header(3, Some(1), 10, 30, false),
                header(8, None, 5, 3, false),
            ],
        )
    }

    #[test]
    fn rows_come_in_tree_order_with_depths_and_orphans_as_roots() {
        let t = sample();
        let (order, total) = all(&t, &mut open());
        assert_eq!(order, [1, 3, 5, 6, 2, 8, 9]);
        assert_eq!(total, 7);
        let depth = |id: u64| t.nodes[t.by_id[&id] as usize].depth;
        assert_eq!(
            [depth(1), depth(3), depth(5), depth(2), depth(9)],
            [0, 1, 2, 1, 0]
        );
        assert_eq!(t.max_depth, 2);
        assert!(t.nodes[t.by_id[&9] as usize].missing_parent);
        assert!(!t.nodes[t.by_id[&8] as usize].missing_parent);
        assert_eq!(t.nodes[t.by_id[&1] as usize].children, 2);
        // The critical path starts at the earliest parentless span and covers its duration.
        let crit: u64 = t.critical.values().flatten().map(|[a, b]| b - a).sum();
        assert_eq!(crit, 100);
        assert_eq!(
            t.bottleneck.as_ref().map(|b| b.span_id.as_str()),
            Some("0000000000000001")
        );
        let services: Vec<(String, u64, u64)> = t
            .services_summary()
            .into_iter()
            .map(|s| (s.service, s.span_count, s.error_count))
            .collect();
        assert_eq!(services, [("odd".into(), 4, 2), ("even".into(), 3, 0)]);
    }

    #[test]
    fn a_collapsed_row_hides_and_summarises_its_subtree() {
        let t = sample();
        let mut c = open();
        c.collapsed.insert(t.by_id[&3]);
        let (order, total) = all(&t, &mut c);
        assert_eq!(order, [1, 3, 2, 8, 9]);
        assert_eq!(total, 5);
        assert_eq!(
            t.summary(t.by_id[&3]),
            SubtreeSummary {
                span_count: 2,
                error_count: 1,
                start_time: 12,
                end_time: 30
            }
        );
        assert_eq!(
            t.summary(t.by_id[&1]),
            SubtreeSummary {
                span_count: 4,
                error_count: 1,
                start_time: 10,
                end_time: 60
            }
        );
        // A leaf listed as collapsed stays a plain row.
        c.collapsed.insert(t.by_id[&2]);
        assert_eq!(all(&t, &mut c).1, 5);
        // expand_depth collapses everything from that depth unless expanded.
        let mut d = open();
        d.expand_depth = Some(0);
        assert_eq!(all(&t, &mut d).0, [1, 8, 9]);
        d.expanded.insert(t.by_id[&1]);
        assert_eq!(all(&t, &mut d).0, [1, 3, 2, 8, 9]);
    }

    #[test]
    fn offset_and_limit_cut_the_visible_rows_and_reveal_opens_ancestors() {
        let t = sample();
        let (rows, total, _) = t.visible(&mut open(), 2, 3, None);
        assert_eq!((ids(&t, &rows), total), (vec![5, 6, 2], 7));
        let (rows, total, _) = t.visible(&mut open(), 6, 10, None);
        assert_eq!((ids(&t, &rows), total), (vec![9], 7));
        let (rows, _, _) = t.visible(&mut open(), 7, 10, None);
        assert!(rows.is_empty());
        let mut c = open();
        c.expand_depth = Some(0);
        let (rows, total, found) = t.visible(&mut c, 0, 2, Some(t.by_id[&6]));
        assert_eq!(total, 7, "1 and 3 opened: 1, 3, 5, 6, 2, 8, 9");
        assert_eq!(ids(&t, &rows), [1, 3]);
        let (row, opened) = found.unwrap();
        assert_eq!(row, 3);
        let opened: Vec<u64> = opened
            .iter()
            .map(|&i| t.nodes[i as usize].span_id)
            .collect();
        assert_eq!(opened, [1, 3]);
    }

    #[test]
    fn a_hundred_thousand_deep_chain_and_a_cycle_build() {
        let n = 100_000u64;
        let mut hs: Vec<SpanHeader> = (0..n)
            .map(|i| header(i + 1, (i > 0).then_some(i), i, 2 * n - 2 * i, false))
            .collect();
        // Two spans naming each other as parent: unreachable, shown flat at the end.
        hs.push(header(n + 10, Some(n + 11), 0, 1, false));
        hs.push(header(n + 11, Some(n + 10), 0, 1, false));
        let t = TraceTree::build(TRACE, hs);
        assert_eq!(t.max_depth as u64, n - 1);
        let mut c = open();
        c.collapsed.insert(t.by_id[&2]);
        let (order, total) = all(&t, &mut c);
        assert_eq!(total, 4);
        assert_eq!(order[..2], [1, 2]);
        assert_eq!(t.summary(t.by_id[&2]).span_count, n - 2);
    }

    fn kv(key: &str, v: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(v.into())),
            }),
            ..Default::default()
        }
    }

    fn otlp(id: u64, parent: u64, start_ms: u64, dur_ms: u64, error: bool) -> OtlpSpan {
        let base = 1_700_000_000_000_000_000u64;
        OtlpSpan {
            trace_id: TRACE.to_vec(),
            span_id: id.to_be_bytes().to_vec(),
            parent_span_id: if parent == 0 {
                vec![]
            } else {
                parent.to_be_bytes().to_vec()
            },
            name: format!("op-{id}"),
            kind: 1,
            start_time_unix_nano: base + start_ms * 1_000_000,
            end_time_unix_nano: base + (start_ms + dur_ms) * 1_000_000,
            status: error.then(|| Status {
                code: 2,
                message: "boom".into(),
            }),
            ..Default::default()
        }
    }

    fn batch(spans: Vec<OtlpSpan>) -> Vec<ResourceSpans> {
        vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "tree-svc")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }]
    }

    async fn store(dir: &std::path::Path) -> Arc<TraceStore> {
        Arc::new(
            TraceStore::open(StoreConfig {
                directory: dir.to_path_buf(),
                ..Default::default()
            })
            .await
            .unwrap(),
        )
    }

    #[tokio::test]
    async fn the_cache_serves_a_built_tree_until_the_trace_grows_and_evicts_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        store
            .insert_spans(&batch(vec![
                otlp(1, 0, 0, 100, false),
                otlp(2, 1, 10, 20, false),
            ]))
            .await
            .unwrap();
        let cache = TreeCache::new(2, 1_000);
        let t = cache.get(&store, &TRACE).await.unwrap().unwrap();
        assert_eq!((t.span_count(), cache.builds()), (2, 1));
        let again = cache.get(&store, &TRACE).await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&t, &again), "served from the cache");
        assert_eq!(cache.builds(), 1);
        // A late span: the next request rebuilds.
        store
            .insert_spans(&batch(vec![otlp(3, 2, 12, 5, true)]))
            .await
            .unwrap();
        let grown = cache.get(&store, &TRACE).await.unwrap().unwrap();
        assert_eq!((grown.span_count(), cache.builds()), (3, 2));
        assert_eq!(cache.get(&store, &[9; 16]).await.unwrap().map(|_| ()), None);
        // Two other traces push the least recently used one out (capacity 2).
        for k in [1u8, 2] {
            let mut s = otlp(50 + u64::from(k), 0, 0, 10, false);
            s.trace_id = vec![k; 16];
            store.insert_spans(&batch(vec![s])).await.unwrap();
            cache.get(&store, &[k; 16]).await.unwrap().unwrap();
        }
        assert_eq!(cache.builds(), 4);
        cache.get(&store, &TRACE).await.unwrap().unwrap();
        assert_eq!(
            cache.builds(),
            5,
            "the oldest tree was evicted and built again"
        );
    }

    /// The query API over a store holding a trace: root 1, child 2 (with 3 children, one an
    /// error), child 6, orphan 9.
    async fn api() -> (String, tokio::sync::oneshot::Sender<()>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path()).await;
        store
            .insert_spans(&batch(vec![
                otlp(1, 0, 0, 100, false),
                otlp(2, 1, 10, 50, false),
                otlp(3, 2, 11, 5, false),
                otlp(4, 2, 20, 5, true),
                otlp(5, 2, 30, 25, false),
                otlp(6, 1, 70, 20, false),
                otlp(9, 99, 95, 1, false),
            ]))
            .await
            .unwrap();
        let mut stores = super::super::StoreRegistry::default();
        stores.insert("tracelab", store);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(super::super::serve(
            listener,
            "tracelab",
            Arc::new(stores),
            Arc::new(crate::sampling::SamplingRegistry::default()),
            Arc::new(crate::connectors::spanmetrics::red::RedRegistry::default()),
            async {
                let _ = rx.await;
            },
        ));
        (
            format!("http://{addr}/api/v1/traces/{}", "07".repeat(16)),
            tx,
            dir,
        )
    }

    async fn get(url: &str) -> (u16, J) {
        let r = reqwest::get(url).await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    fn row_ids(v: &J) -> Vec<String> {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r["span"]["spanID"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches('0')
                    .to_string()
            })
            .collect()
    }

    #[tokio::test]
    async fn the_routes_answer_windows_spans_and_the_overview() {
        let (base, _stop, _dir) = api().await;
        let (st, w) = get(&format!("{base}/tree?offset=1&limit=3")).await;
        assert_eq!(st, 200, "{w}");
        assert_eq!(
            (w["total_rows"].as_u64(), w["span_count"].as_u64()),
            (Some(7), Some(7))
        );
        assert_eq!(row_ids(&w), ["2", "3", "4"]);
        assert_eq!(w["rows"][0]["depth"], 1);
        assert_eq!(w["rows"][0]["child_count"], 3);
        let pid = w["rows"][0]["span"]["processID"].as_str().unwrap();
        assert_eq!(w["processes"][pid]["serviceName"], "tree-svc");

        let (_, w) = get(&format!("{base}/tree?collapsed=0000000000000002")).await;
        assert_eq!(row_ids(&w), ["1", "2", "6", "9"]);
        assert_eq!(w["total_rows"], 4);
        let base_us = 1_700_000_000_000_000u64;
        assert_eq!(
            w["rows"][1]["hidden"],
            json!({"span_count": 3, "error_count": 1,
                   "start_time": base_us + 11_000, "end_time": base_us + 55_000})
        );
        assert_eq!(w["rows"][1]["collapsed"], true);
        assert_eq!(w["rows"][3]["missing_parent"], true);

        // The same through POST, with the collapse given by depth and a span revealed.
        let r = reqwest::Client::new()
            .post(format!("{base}/tree"))
            .json(&json!({"limit": 2, "expand_depth": 1, "reveal": "4"}))
            .send()
            .await
            .unwrap();
        let w: J = r.json().await.unwrap();
        assert_eq!(w["revealed"]["row"], 3, "{w}");
        assert_eq!(w["revealed"]["opened"], json!(["0000000000000002"]));
        assert_eq!(w["total_rows"], 7);

        let (st, s) = get(&format!("{base}/tree/spans?spanID=4,9")).await;
        assert_eq!(st, 200, "{s}");
        assert_eq!(row_ids(&s), ["4", "9"]);
        assert_eq!(s["names"]["0000000000000002"]["operation"], "op-2");

        let (st, o) = get(&format!("{base}/overview")).await;
        assert_eq!(st, 200, "{o}");
        assert_eq!(
            (
                o["span_count"].as_u64(),
                o["error_count"].as_u64(),
                o["max_depth"].as_u64()
            ),
            (Some(7), Some(1), Some(2))
        );
        assert_eq!(o["missing_parents"], 1);
        assert_eq!(o["root"]["span"]["operationName"], "op-1");
        assert_eq!(o["bottleneck"]["service"], "tree-svc");
        assert_eq!(o["services"][0]["span_count"], 7);
        assert_eq!(o["leaf_calls_total"], 5);
    }

    #[tokio::test]
    async fn bad_parameters_are_refused_with_a_json_error() {
        let (base, _stop, _dir) = api().await;
        for (url, status, says) in [
            (format!("{base}/tree?limit=5000"), 400, "limit"),
            (format!("{base}/tree?offset=-1"), 400, "offset"),
            (format!("{base}/tree?expandDepth=x"), 400, "expandDepth"),
            (format!("{base}/tree?collapsed=zz"), 400, "zz"),
            (format!("{base}/tree/spans"), 400, "spanID"),
            (format!("{base}/tree/spans?spanID=nothex"), 400, "nothex"),
            (
                base.replace(&"07".repeat(16), &"08".repeat(16)) + "/tree",
                404,
                "not found",
            ),
            (
                base.replace(&"07".repeat(16), "xyz") + "/overview",
                400,
                "xyz",
            ),
        ] {
            let (st, v) = get(&url).await;
            assert_eq!(st, status, "{url}: {v}");
            let msg = v["error"]["message"].as_str().unwrap_or_default();
            assert!(msg.contains(says), "{url}: {msg}");
        }
        let r = reqwest::Client::new()
            .post(format!("{base}/tree"))
            .header("content-type", "application/json")
            .body(r#"{"colapsed": []}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
        let v: J = r.json().await.unwrap();
        assert!(
            v["error"]["message"].as_str().unwrap().contains("colapsed"),
            "{v}"
        );
    }
}
