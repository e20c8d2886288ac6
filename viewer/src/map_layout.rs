//! The service map's layered layout, a pure function (Sugiyama's scheme, small-graph edition):
//! cycles broken by reversing DFS back edges; layers by longest path from the roots (so the
//! gateway stands left and every edge points right); edges longer than one layer routed through
//! virtual points, a lane in each layer they cross; the order within each layer chosen by barycentre
//! sweeps (down, then up, keeping the ordering with the fewest crossings); then coordinates:
//! fixed-width columns, each layer's boxes stacked and centred. Deterministic: the result depends
//! only on the sets of nodes and edges, not on their order in the input.

use std::collections::{BTreeMap, BTreeSet};

/// A node to place: its id and box size.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeBox {
    pub id: String,
    pub w: f64,
    pub h: f64,
}

/// A placed node: the box's top-left corner.
#[derive(Debug, Clone, PartialEq)]
pub struct Placed {
    pub id: String,
    pub layer: usize,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// An edge's route from the source box's right side to the target box's left side, through a
/// lane (its entry and exit point) in each layer it crosses. `back`: the edge closes a cycle and runs right to left.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    pub source: String,
    pub target: String,
    pub points: Vec<(f64, f64)>,
    pub back: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    pub width: f64,
    pub height: f64,
    /// Sorted by id.
    pub nodes: Vec<Placed>,
    /// Sorted by (source, target); one per distinct pair.
    pub edges: Vec<Route>,
}

/// Horizontal space between columns, vertical space between boxes, and the margin around all.
pub const GAP_X: f64 = 150.0;
pub const GAP_Y: f64 = 36.0;
pub const MARGIN: f64 = 24.0;
/// Most vertical space between two edges' ends on one side of a box.
const PORT_STEP: f64 = 16.0;
/// Height a virtual point takes in its layer (room for the edge passing by).
const VIRTUAL_H: f64 = 18.0;
/// Barycentre sweeps (each one down and one up).
const SWEEPS: usize = 12;

/// One layer entry: a node or a virtual point of a long edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Item {
    Node(usize),
    /// (index of the DAG edge, step along it).
    Virtual(usize, usize),
}

pub fn layout(nodes: &[NodeBox], edges: &[(String, String)]) -> Layout {
    // Nodes by id (deduplicated), edges by index pair.
    let mut by_id: BTreeMap<&str, &NodeBox> = BTreeMap::new();
    for n in nodes {
        by_id.entry(n.id.as_str()).or_insert(n);
    }
    let boxes: Vec<&NodeBox> = by_id.values().copied().collect();
    let index: BTreeMap<&str, usize> = by_id.keys().enumerate().map(|(i, k)| (*k, i)).collect();
    let n = boxes.len();
    let pairs: BTreeSet<(usize, usize)> = edges
        .iter()
        .filter_map(|(a, b)| Some((*index.get(a.as_str())?, *index.get(b.as_str())?)))
        .filter(|(a, b)| a != b)
        .collect();
    let mut out_adj: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut indeg = vec![0usize; n];
    for &(a, b) in &pairs {
        out_adj[a].push(b);
        indeg[b] += 1;
    }

    // Cycle breaking: iterative DFS, roots (no incoming edge) first, then the rest by id; an edge
    // into a node still on the stack is a back edge.
    let back = back_edges(n, &out_adj, &indeg);
    // The DAG: (upper, lower, original pair, reversed).
    let dag: Vec<(usize, usize, (usize, usize), bool)> = pairs
        .iter()
        .map(|&(a, b)| {
            if back.contains(&(a, b)) {
                (b, a, (a, b), true)
            } else {
                (a, b, (a, b), false)
            }
        })
        .collect();

    // Longest-path layering in topological order (Kahn, smallest index first).
    let mut layer = vec![0usize; n];
    let mut dag_out: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut dag_in = vec![0usize; n];
    for &(u, v, _, _) in &dag {
        dag_out[u].push(v);
        dag_in[v] += 1;
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|v| dag_in[*v] == 0).collect();
    while let Some(u) = ready.pop_first() {
        for &v in &dag_out[u] {
            layer[v] = layer[v].max(layer[u] + 1);
            dag_in[v] -= 1;
            if dag_in[v] == 0 {
                ready.insert(v);
            }
        }
    }
    let layers_n = layer.iter().copied().max().map_or(0, |m| m + 1);

    // Layers with virtual points, and the segments between adjacent layers.
    let mut layers: Vec<Vec<Item>> = vec![Vec::new(); layers_n];
    for v in 0..n {
        layers[layer[v]].push(Item::Node(v));
    }
    let mut chains: Vec<Vec<Item>> = Vec::with_capacity(dag.len());
    for (ei, &(u, v, _, _)) in dag.iter().enumerate() {
        let mut chain = vec![Item::Node(u)];
        for (step, l) in (layer[u] + 1..layer[v]).enumerate() {
            let it = Item::Virtual(ei, step);
            layers[l].push(it);
            chain.push(it);
        }
        chain.push(Item::Node(v));
        chains.push(chain);
    }
    let segments: Vec<(Item, Item)> = chains
        .iter()
        .flat_map(|c| c.windows(2).map(|w| (w[0], w[1])))
        .collect();
    let layer_of = |it: Item| match it {
        Item::Node(v) => layer[v],
        Item::Virtual(ei, step) => layer[dag[ei].0] + 1 + step,
    };
    let mut up: BTreeMap<Item, Vec<Item>> = BTreeMap::new();
    let mut down: BTreeMap<Item, Vec<Item>> = BTreeMap::new();
    for &(a, b) in &segments {
        down.entry(a).or_default().push(b);
        up.entry(b).or_default().push(a);
    }

    // Initial order: by first discovery in a breadth-first walk from the first layer, so
    // children start near their parents.
    for l in 1..layers_n {
        let prev: BTreeMap<Item, usize> = layers[l - 1]
            .iter()
            .enumerate()
            .map(|(i, it)| (*it, i))
            .collect();
        let first_parent = |it: &Item| {
            up.get(it)
                .and_then(|ps| ps.iter().filter_map(|p| prev.get(p)).min().copied())
                .unwrap_or(usize::MAX)
        };
        layers[l].sort_by_key(|it| (first_parent(it), *it));
    }
    let mut best = layers.clone();
    let mut best_crossings = crossings(&layers, &segments, &layer_of);
    for _ in 0..SWEEPS {
        if best_crossings == 0 {
            break;
        }
        for l in 1..layers_n {
            reorder(&mut layers, l, l - 1, &up);
        }
        for l in (0..layers_n.saturating_sub(1)).rev() {
            reorder(&mut layers, l, l + 1, &down);
        }
        let c = crossings(&layers, &segments, &layer_of);
        if c < best_crossings {
            best_crossings = c;
            best = layers.clone();
        }
    }
    let layers = best;

    // Coordinates: one column per layer, as wide as the widest box; each layer stacked and
    // centred on the tallest.
    let col_w = boxes.iter().map(|b| b.w).fold(0.0, f64::max);
    let item_h = |it: &Item| match it {
        Item::Node(v) => boxes[*v].h,
        Item::Virtual(..) => VIRTUAL_H,
    };
    let stack_h = |l: &Vec<Item>| {
        l.iter().map(item_h).sum::<f64>() + GAP_Y * l.len().saturating_sub(1) as f64
    };
    let tallest = layers.iter().map(stack_h).fold(0.0, f64::max);
    let mut centre: BTreeMap<Item, (f64, f64)> = BTreeMap::new();
    for (l, items) in layers.iter().enumerate() {
        let x_mid = MARGIN + l as f64 * (col_w + GAP_X) + col_w / 2.0;
        let mut y = MARGIN + (tallest - stack_h(items)) / 2.0;
        for it in items {
            let h = item_h(it);
            centre.insert(*it, (x_mid, y + h / 2.0));
            y += h + GAP_Y;
        }
    }
    let placed: Vec<Placed> = (0..n)
        .map(|v| {
            let (cx, cy) = centre[&Item::Node(v)];
            let b = boxes[v];
            Placed {
                id: b.id.clone(),
                layer: layer[v],
                x: cx - b.w / 2.0,
                y: cy - b.h / 2.0,
                w: b.w,
                h: b.h,
            }
        })
        .collect();
    // Ports: a box's edges leave its right side and reach its left side spread over that side,
    // ordered by where their other end lies, so arrowheads do not pile up on one point.
    let mut leaving: BTreeMap<usize, Vec<(f64, usize)>> = BTreeMap::new();
    let mut arriving: BTreeMap<usize, Vec<(f64, usize)>> = BTreeMap::new();
    for (ei, (&(u, v, _, _), chain)) in dag.iter().zip(&chains).enumerate() {
        leaving
            .entry(u)
            .or_default()
            .push((centre[&chain[1]].1, ei));
        arriving
            .entry(v)
            .or_default()
            .push((centre[&chain[chain.len() - 2]].1, ei));
    }
    let spread = |ports: BTreeMap<usize, Vec<(f64, usize)>>| {
        let mut dy = vec![0.0; dag.len()];
        for (v, mut list) in ports {
            list.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            let k = list.len() as f64;
            let step = (boxes[v].h / (k + 1.0)).min(PORT_STEP);
            for (i, (_, ei)) in list.iter().enumerate() {
                dy[*ei] = (i as f64 - (k - 1.0) / 2.0) * step;
            }
        }
        dy
    };
    let (start_dy, end_dy) = (spread(leaving), spread(arriving));
    let mut routes: Vec<Route> = dag
        .iter()
        .zip(&chains)
        .enumerate()
        .map(|(ei, (&(u, v, (a, b), reversed), chain))| {
            let (ux, uy) = centre[&Item::Node(u)];
            let (vx, vy) = centre[&Item::Node(v)];
            let mut points = vec![(ux + boxes[u].w / 2.0, uy + start_dy[ei])];
            // Through a column: straight along its lane, curving only between columns.
            for it in &chain[1..chain.len() - 1] {
                let (cx, cy) = centre[it];
                points.push((cx - col_w / 2.0, cy));
                points.push((cx + col_w / 2.0, cy));
            }
            points.push((vx - boxes[v].w / 2.0, vy + end_dy[ei]));
            if reversed {
                points.reverse();
            }
            Route {
                source: boxes[a].id.clone(),
                target: boxes[b].id.clone(),
                points,
                back: reversed,
            }
        })
        .collect();
    routes.sort_by(|x, y| (&x.source, &x.target).cmp(&(&y.source, &y.target)));
    Layout {
        width: 2.0 * MARGIN + layers_n as f64 * col_w + layers_n.saturating_sub(1) as f64 * GAP_X,
        height: 2.0 * MARGIN + tallest,
        nodes: placed,
        edges: routes,
    }
}

/// Edges that close a cycle, from a DFS starting at the roots (then any unvisited node by index).
fn back_edges(n: usize, out_adj: &[Vec<usize>], indeg: &[usize]) -> BTreeSet<(usize, usize)> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; n];
    let mut back = BTreeSet::new();
    let starts = (0..n).filter(|v| indeg[*v] == 0).chain(0..n);
    for s in starts {
        if mark[s] != Mark::New {
            continue;
        }
        // (node, next child index): an explicit stack, so deep chains cannot overflow.
        let mut stack = vec![(s, 0usize)];
        mark[s] = Mark::Open;
        while let Some((v, i)) = stack.last_mut() {
            let v = *v;
            if let Some(&w) = out_adj[v].get(*i) {
                *i += 1;
                match mark[w] {
                    Mark::New => {
                        mark[w] = Mark::Open;
                        stack.push((w, 0));
                    }
                    Mark::Open => {
                        back.insert((v, w));
                    }
                    Mark::Done => {}
                }
            } else {
                mark[v] = Mark::Done;
                stack.pop();
            }
        }
    }
    back
}

/// Sorts layer `l` by the mean position of each item's neighbours in layer `by` (items without
/// neighbours there keep their position); ties keep the current order.
fn reorder(layers: &mut [Vec<Item>], l: usize, by: usize, nbrs: &BTreeMap<Item, Vec<Item>>) {
    let pos: BTreeMap<Item, usize> = layers[by]
        .iter()
        .enumerate()
        .map(|(i, it)| (*it, i))
        .collect();
    let mut keyed: Vec<(f64, usize, Item)> = layers[l]
        .iter()
        .enumerate()
        .map(|(i, it)| {
            let ps: Vec<usize> = nbrs
                .get(it)
                .map(|v| v.iter().filter_map(|p| pos.get(p).copied()).collect())
                .unwrap_or_default();
            let bary = if ps.is_empty() {
                i as f64
            } else {
                ps.iter().sum::<usize>() as f64 / ps.len() as f64
            };
            (bary, i, *it)
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    layers[l] = keyed.into_iter().map(|(_, _, it)| it).collect();
}

/// Pairs of segments between the same two layers that cross.
fn crossings(
    layers: &[Vec<Item>],
    segments: &[(Item, Item)],
    layer_of: &dyn Fn(Item) -> usize,
) -> usize {
    let pos: BTreeMap<Item, usize> = layers
        .iter()
        .flat_map(|l| l.iter().enumerate().map(|(i, it)| (*it, i)))
        .collect();
    let mut by_layer: BTreeMap<usize, Vec<(usize, usize)>> = BTreeMap::new();
    for &(a, b) in segments {
        by_layer
            .entry(layer_of(a))
            .or_default()
            .push((pos[&a], pos[&b]));
    }
    let mut c = 0;
    for segs in by_layer.values() {
        for (i, s) in segs.iter().enumerate() {
            for t in &segs[i + 1..] {
                if (s.0 < t.0 && s.1 > t.1) || (s.0 > t.0 && s.1 < t.1) {
                    c += 1;
                }
            }
        }
    }
    c
}

/// Segment crossings in a finished layout (straight lines between consecutive route points that
/// run between the same pair of columns), for tests and checks.
pub fn route_crossings(l: &Layout) -> usize {
    let mut segs: Vec<((f64, f64), (f64, f64))> = Vec::new();
    for r in &l.edges {
        for w in r.points.windows(2) {
            let (a, b) = if w[0].0 <= w[1].0 {
                (w[0], w[1])
            } else {
                (w[1], w[0])
            };
            segs.push((a, b));
        }
    }
    let mut c = 0;
    for (i, s) in segs.iter().enumerate() {
        for t in &segs[i + 1..] {
            let same_span = (s.0.0 - t.0.0).abs() < 1.0 && (s.1.0 - t.1.0).abs() < 1.0;
            if same_span && (s.0.1 - t.0.1) * (s.1.1 - t.1.1) < 0.0 {
                c += 1;
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nb(id: &str) -> NodeBox {
        NodeBox {
            id: id.into(),
            w: 190.0,
            h: if id.starts_with("topic:") { 48.0 } else { 66.0 },
        }
    }

    fn e(a: &str, b: &str) -> (String, String) {
        (a.into(), b.into())
    }

    fn checkout() -> (Vec<NodeBox>, Vec<(String, String)>) {
        let nodes = [
            "service:api-gateway",
            "service:order-service",
            "service:payment-service",
            "service:inventory-service",
            "topic:orders",
        ]
        .map(nb)
        .to_vec();
        let edges = vec![
            e("service:api-gateway", "service:order-service"),
            e("service:order-service", "service:payment-service"),
            e("service:order-service", "service:inventory-service"),
            e("service:order-service", "topic:orders"),
            e("topic:orders", "service:inventory-service"),
        ];
        (nodes, edges)
    }

    fn node<'a>(l: &'a Layout, id: &str) -> &'a Placed {
        l.nodes.iter().find(|n| n.id == id).unwrap()
    }

    fn assert_no_overlap(l: &Layout) {
        for (i, a) in l.nodes.iter().enumerate() {
            assert!(a.x >= 0.0 && a.y >= 0.0 && a.x + a.w <= l.width && a.y + a.h <= l.height);
            for b in &l.nodes[i + 1..] {
                let apart =
                    a.x + a.w <= b.x || b.x + b.w <= a.x || a.y + a.h <= b.y || b.y + b.h <= a.y;
                assert!(apart, "{a:?} overlaps {b:?}");
            }
        }
    }

    #[test]
    fn the_checkout_map_runs_left_to_right_from_the_gateway() {
        let (nodes, edges) = checkout();
        let l = layout(&nodes, &edges);
        assert_no_overlap(&l);
        assert_eq!(
            node(&l, "service:api-gateway").layer,
            0,
            "the root stands left"
        );
        assert_eq!(node(&l, "service:order-service").layer, 1);
        assert_eq!(node(&l, "topic:orders").layer, 2);
        assert_eq!(
            node(&l, "service:inventory-service").layer,
            3,
            "longest path: after the topic it reads"
        );
        for r in &l.edges {
            let (s, t) = (node(&l, &r.source), node(&l, &r.target));
            assert!(s.layer < t.layer, "{r:?} points right");
            assert!(!r.back);
            assert_eq!(
                r.points.len(),
                2 * (t.layer - s.layer),
                "a lane per layer crossed"
            );
            assert!(r.points.windows(2).all(|w| w[0].0 < w[1].0));
            let (first, last) = (r.points[0], *r.points.last().unwrap());
            assert!(
                first.0 == s.x + s.w && first.1 > s.y && first.1 < s.y + s.h,
                "leaves the source's right side: {r:?}"
            );
            assert!(last.0 == t.x && last.1 > t.y && last.1 < t.y + t.h, "{r:?}");
        }
        assert_eq!(route_crossings(&l), 0);
        assert_eq!(l.edges.len(), 5);
        // Two edges reach inventory-service: at two points of its side, not one.
        let ends: Vec<f64> = l
            .edges
            .iter()
            .filter(|r| r.target == "service:inventory-service")
            .map(|r| r.points.last().unwrap().1)
            .collect();
        assert_eq!(ends.len(), 2);
        assert!((ends[0] - ends[1]).abs() >= 8.0, "{ends:?}");
    }

    #[test]
    fn barycentre_sweeps_remove_crossings() {
        // Two roots whose children are listed the other way round by id: a naive order crosses.
        let nodes = ["a1", "a2", "z1", "z2", "m"].map(nb).to_vec();
        let edges = vec![e("a1", "z2"), e("a2", "z1"), e("z1", "m"), e("z2", "m")];
        let l = layout(&nodes, &edges);
        assert_eq!(route_crossings(&l), 0, "{l:#?}");
        assert!(
            node(&l, "z2").y < node(&l, "z1").y,
            "z2 sits beside its parent a1"
        );
        assert_no_overlap(&l);

        // The first-parent order puts c1 (children of r1 and r2) before c2 (r1's only): r2 → c1
        // crosses r1 → c2 until a sweep moves c1 to its barycentre between r1 and r2.
        let nodes = ["r1", "r2", "c1", "c2"].map(nb).to_vec();
        let edges = vec![e("r1", "c1"), e("r2", "c1"), e("r1", "c2")];
        let l = layout(&nodes, &edges);
        assert_eq!(route_crossings(&l), 0, "{l:#?}");
        assert!(node(&l, "c2").y < node(&l, "c1").y);

        // A bigger graph: three layers of five fully shuffled edges.
        let ids: Vec<String> = (0..15).map(|i| format!("n{i:02}")).collect();
        let nodes: Vec<NodeBox> = ids.iter().map(|i| nb(i)).collect();
        let mut edges = Vec::new();
        for (a, b) in [
            (0, 9),
            (1, 7),
            (2, 5),
            (3, 8),
            (4, 6),
            (5, 13),
            (6, 11),
            (7, 14),
            (8, 10),
            (9, 12),
        ] {
            edges.push(e(&ids[a], &ids[b]));
        }
        let l = layout(&nodes, &edges);
        assert_no_overlap(&l);
        assert_eq!(route_crossings(&l), 0, "chains can always be laid out flat");
    }

    #[test]
    fn the_result_does_not_depend_on_input_order() {
        let (nodes, edges) = checkout();
        let a = layout(&nodes, &edges);
        let mut n2 = nodes.clone();
        n2.reverse();
        let mut e2 = edges.clone();
        e2.reverse();
        e2.push(edges[0].clone()); // a duplicate too
        let b = layout(&n2, &e2);
        assert_eq!(a, b);
        assert_eq!(a, layout(&nodes, &edges), "same input, same output");
    }

    #[test]
    fn cycles_and_strays_are_laid_out() {
        let nodes = ["a", "b", "c", "lonely"].map(nb).to_vec();
        let edges = vec![
            e("a", "b"),
            e("b", "c"),
            e("c", "a"),
            e("a", "a"),
            e("a", "missing"),
        ];
        let l = layout(&nodes, &edges);
        assert_no_overlap(&l);
        assert_eq!(l.edges.len(), 3, "self loop and unknown endpoint dropped");
        let back: Vec<&Route> = l.edges.iter().filter(|r| r.back).collect();
        assert_eq!(back.len(), 1, "one edge closes the cycle");
        for r in l.edges.iter().filter(|r| !r.back) {
            assert!(node(&l, &r.source).layer < node(&l, &r.target).layer);
        }
        assert_eq!(node(&l, "lonely").layer, 0);
        let empty = layout(&[], &[]);
        assert!(empty.nodes.is_empty() && empty.edges.is_empty());
    }
}
