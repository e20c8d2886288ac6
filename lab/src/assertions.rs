//! The assertions of seed 000's "What Trace-Based Tests Catch", as methods on [`TraceView`]. Each
//! returns `Result<(), AssertionError>`; the error prints the failed expectation, what was found,
//! and the whole trace as an indented tree, so a failure explains itself.
//!
//! Relations between matchers are existential where that is the natural reading ("a `charge` span
//! is a child of a `POST /charges` span") and universal for ordering ("every `charge_payment`
//! ends before any `reserve_inventory` starts"); a matcher that matches nothing always fails.

use std::fmt;
use std::time::Duration;

use serde_json::Value;

use crate::matcher::{SpanMatcher, value_text};
use crate::view::{SpanInfo, TraceView, fmt_duration};

/// A failed trace assertion.
#[derive(Debug, Clone)]
pub struct AssertionError {
    /// What should have held, e.g. `span "charge_payment" ends before span "reserve_inventory" starts`.
    pub expected: String,
    /// What the trace showed instead.
    pub found: String,
    /// The trace as an indented tree ([`TraceView::tree`]).
    pub tree: String,
}

impl fmt::Display for AssertionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "trace assertion failed")?;
        writeln!(f, "  expected: {}", self.expected)?;
        writeln!(f, "  found:    {}", self.found)?;
        writeln!(f)?;
        write!(f, "{}", self.tree)
    }
}

impl std::error::Error for AssertionError {}

/// An inclusive count range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Count {
    pub min: usize,
    pub max: usize,
}

impl Count {
    pub fn exactly(n: usize) -> Self {
        Self { min: n, max: n }
    }
    pub fn at_least(n: usize) -> Self {
        Self {
            min: n,
            max: usize::MAX,
        }
    }
    pub fn at_most(n: usize) -> Self {
        Self { min: 0, max: n }
    }
    pub fn between(min: usize, max: usize) -> Self {
        Self { min, max }
    }
    fn contains(&self, n: usize) -> bool {
        n >= self.min && n <= self.max
    }
}

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.min, self.max) {
            (a, b) if a == b => write!(f, "exactly {a}"),
            (0, b) => write!(f, "at most {b}"),
            (a, usize::MAX) => write!(f, "at least {a}"),
            (a, b) => write!(f, "between {a} and {b}"),
        }
    }
}

type Check = Result<(), AssertionError>;

impl TraceView {
    /// An error for this trace.
    pub fn fail(&self, expected: impl Into<String>, found: impl Into<String>) -> AssertionError {
        AssertionError {
            expected: expected.into(),
            found: found.into(),
            tree: self.tree(),
        }
    }

    fn labels(spans: &[SpanInfo<'_>]) -> String {
        if spans.is_empty() {
            return "none".into();
        }
        spans
            .iter()
            .map(|s| s.label())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// At least one span matches `m`; returns the matches (start order).
    pub fn expect_span(&self, m: &SpanMatcher) -> Result<Vec<SpanInfo<'_>>, AssertionError> {
        let found = self.find(m);
        if found.is_empty() {
            Err(self.fail(format!("{m} to be present"), "no span matches"))
        } else {
            Ok(found)
        }
    }

    /// The longest span matching `m` (the one a duration or share assertion is about).
    fn longest(&self, m: &SpanMatcher) -> Result<SpanInfo<'_>, AssertionError> {
        let found = self.expect_span(m)?;
        Ok(found
            .into_iter()
            .max_by_key(|s| s.span.duration)
            .expect("non-empty"))
    }

    /// Every listed service emitted at least one span of this trace.
    pub fn assert_services_present(&self, services: &[&str]) -> Check {
        let have = self.services();
        let missing: Vec<&str> = services
            .iter()
            .copied()
            .filter(|s| !have.contains(s))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(self.fail(
                format!("services {services:?} in the trace"),
                format!("missing {missing:?}; present {have:?}"),
            ))
        }
    }

    /// None of the listed services emitted a span of this trace.
    pub fn assert_services_absent(&self, services: &[&str]) -> Check {
        let have = self.services();
        let present: Vec<&str> = services
            .iter()
            .copied()
            .filter(|s| have.contains(s))
            .collect();
        if present.is_empty() {
            Ok(())
        } else {
            Err(self.fail(
                format!("no span of {services:?} in this trace"),
                format!("{present:?} present"),
            ))
        }
    }

    /// A span matching `m` exists.
    pub fn assert_span(&self, m: &SpanMatcher) -> Check {
        self.expect_span(m).map(|_| ())
    }

    /// No span matches `m`.
    pub fn assert_no_span(&self, m: &SpanMatcher) -> Check {
        let found = self.find(m);
        if found.is_empty() {
            Ok(())
        } else {
            Err(self.fail(format!("no {m}"), Self::labels(&found)))
        }
    }

    /// Some span matching `child` has a direct parent matching `parent`.
    pub fn assert_child_of(&self, child: &SpanMatcher, parent: &SpanMatcher) -> Check {
        let children = self.expect_span(child)?;
        self.expect_span(parent)?;
        if children
            .iter()
            .any(|c| self.parent_of(*c).is_some_and(|p| p.matches(parent)))
        {
            return Ok(());
        }
        let parents: Vec<String> = children
            .iter()
            .map(|c| match self.parent_of(*c) {
                Some(p) => format!("{} is a child of {}", c.label(), p.label()),
                None => format!("{} has no parent in the trace", c.label()),
            })
            .collect();
        Err(self.fail(
            format!("{child} to be a child of {parent}"),
            parents.join("; "),
        ))
    }

    /// Some span matching `descendant` is below a span matching `ancestor` (at any depth).
    pub fn assert_descendant_of(&self, descendant: &SpanMatcher, ancestor: &SpanMatcher) -> Check {
        let ds = self.expect_span(descendant)?;
        let anc = self.expect_span(ancestor)?;
        if ds
            .iter()
            .any(|d| anc.iter().any(|a| self.is_descendant(*d, *a)))
        {
            Ok(())
        } else {
            Err(self.fail(
                format!("{descendant} below {ancestor}"),
                format!("{} not under {}", Self::labels(&ds), Self::labels(&anc)),
            ))
        }
    }

    /// Some span matching `from` carries a span link (`FOLLOWS_FROM`) to a span matching `to` —
    /// how a Kafka consumer span points at its producer besides being its child.
    pub fn assert_linked(&self, from: &SpanMatcher, to: &SpanMatcher) -> Check {
        let froms = self.expect_span(from)?;
        self.expect_span(to)?;
        if froms
            .iter()
            .any(|f| self.links_of(*f).iter().any(|l| l.matches(to)))
        {
            return Ok(());
        }
        let got: Vec<String> = froms
            .iter()
            .map(|f| {
                format!(
                    "{} links to [{}]",
                    f.label(),
                    Self::labels(&self.links_of(*f))
                )
            })
            .collect();
        Err(self.fail(format!("{from} to link to {to}"), got.join("; ")))
    }

    /// Spans matching `m` have no children (e.g. a CLIENT call whose callee never joined the trace).
    pub fn assert_no_children(&self, m: &SpanMatcher) -> Check {
        let spans = self.expect_span(m)?;
        let with: Vec<String> = spans
            .iter()
            .filter(|s| !self.children_of(**s).is_empty())
            .map(|s| {
                format!(
                    "{} has children {}",
                    s.label(),
                    Self::labels(&self.children_of(*s))
                )
            })
            .collect();
        if with.is_empty() {
            Ok(())
        } else {
            Err(self.fail(format!("{m} to have no child span"), with.join("; ")))
        }
    }

    /// Every span matching `first` ends no later than any span matching `then` starts.
    pub fn assert_ends_before_starts(&self, first: &SpanMatcher, then: &SpanMatcher) -> Check {
        let a = self.expect_span(first)?;
        let b = self.expect_span(then)?;
        let a_end = a.iter().max_by_key(|s| s.end_us()).expect("non-empty");
        let b_start = b.iter().min_by_key(|s| s.start_us()).expect("non-empty");
        if a_end.end_us() <= b_start.start_us() {
            Ok(())
        } else {
            Err(self.fail(
                format!("{first} to end before {then} starts"),
                format!(
                    "{} ends {} after {} starts",
                    a_end.label(),
                    fmt_duration(Duration::from_micros(a_end.end_us() - b_start.start_us())),
                    b_start.label()
                ),
            ))
        }
    }

    /// `then` starts at least `gap` after `first` ends (`first` before `then` with a wait between
    /// them: a message that sat in a backlog, a request that queued).
    pub fn assert_starts_after(
        &self,
        then: &SpanMatcher,
        first: &SpanMatcher,
        gap: Duration,
    ) -> Check {
        let a = self.expect_span(first)?;
        let b = self.expect_span(then)?;
        let a_end = a.iter().max_by_key(|s| s.end_us()).expect("non-empty");
        let b_start = b.iter().min_by_key(|s| s.start_us()).expect("non-empty");
        let waited = b_start.start_us().saturating_sub(a_end.end_us());
        if b_start.start_us() >= a_end.end_us() && Duration::from_micros(waited) >= gap {
            Ok(())
        } else {
            Err(self.fail(
                format!(
                    "{then} to start at least {} after {first} ends",
                    fmt_duration(gap)
                ),
                format!(
                    "{} starts {} after {} ends",
                    b_start.label(),
                    fmt_duration(Duration::from_micros(waited)),
                    a_end.label()
                ),
            ))
        }
    }

    /// The root span is shorter than `max`.
    pub fn assert_root_duration_below(&self, max: Duration) -> Check {
        let Some(root) = self.root() else {
            return Err(self.fail("a root span", "the trace has no span"));
        };
        if root.duration() < max {
            Ok(())
        } else {
            Err(self.fail(
                format!("root span under {}", fmt_duration(max)),
                format!("{} took {}", root.label(), fmt_duration(root.duration())),
            ))
        }
    }

    /// The longest span matching `m` lasts between `min` and `max` (either bound optional).
    pub fn assert_duration(
        &self,
        m: &SpanMatcher,
        min: Option<Duration>,
        max: Option<Duration>,
    ) -> Check {
        let s = self.longest(m)?;
        let d = s.duration();
        let ok = min.is_none_or(|lo| d >= lo) && max.is_none_or(|hi| d <= hi);
        if ok {
            return Ok(());
        }
        let bound = match (min, max) {
            (Some(lo), Some(hi)) => {
                format!("between {} and {}", fmt_duration(lo), fmt_duration(hi))
            }
            (Some(lo), None) => format!("at least {}", fmt_duration(lo)),
            (None, Some(hi)) => format!("at most {}", fmt_duration(hi)),
            (None, None) => "any duration".into(),
        };
        Err(self.fail(
            format!("{m} to last {bound}"),
            format!("{} took {}", s.label(), fmt_duration(d)),
        ))
    }

    /// The longest span matching `m` takes at least `min_share` (0–1) of the longest span matching
    /// `of` — or of the root when `of` is `None`. The bottleneck assertion: `charge` ≥ 0.8 of root.
    pub fn assert_share(&self, m: &SpanMatcher, of: Option<&SpanMatcher>, min_share: f64) -> Check {
        let s = self.longest(m)?;
        let whole = match of {
            Some(o) => self.longest(o)?,
            None => self
                .root()
                .ok_or_else(|| self.fail("a root span", "the trace has no span"))?,
        };
        let share = if whole.span.duration == 0 {
            0.0
        } else {
            s.span.duration as f64 / whole.span.duration as f64
        };
        if share >= min_share {
            Ok(())
        } else {
            Err(self.fail(
                format!(
                    "{m} to take at least {:.0}% of {}",
                    min_share * 100.0,
                    whole.label()
                ),
                format!(
                    "{} took {} of {} = {:.1}%",
                    s.label(),
                    fmt_duration(s.duration()),
                    fmt_duration(whole.duration()),
                    share * 100.0
                ),
            ))
        }
    }

    /// The longest span matching `m` takes at least `min_share` of its own parent.
    pub fn assert_share_of_parent(&self, m: &SpanMatcher, min_share: f64) -> Check {
        let s = self.longest(m)?;
        let Some(p) = self.parent_of(s) else {
            return Err(self.fail(
                format!("{m} to have a parent"),
                format!("{} is a root", s.label()),
            ));
        };
        let share = if p.span.duration == 0 {
            0.0
        } else {
            s.span.duration as f64 / p.span.duration as f64
        };
        if share >= min_share {
            Ok(())
        } else {
            Err(self.fail(
                format!(
                    "{m} to take at least {:.0}% of its parent",
                    min_share * 100.0
                ),
                format!("{} is {:.1}% of {}", s.label(), share * 100.0, p.label()),
            ))
        }
    }

    /// No span has status ERROR.
    pub fn assert_no_error_spans(&self) -> Check {
        let errors = self.error_spans();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(self.fail(
                "no ERROR span",
                format!("ERROR spans: {}", Self::labels(&errors)),
            ))
        }
    }

    /// The ERROR spans are exactly these: every ERROR span matches one of `expected`, and every
    /// matcher matches at least one ERROR span.
    pub fn assert_error_spans_exactly(&self, expected: &[SpanMatcher]) -> Check {
        let errors = self.error_spans();
        let unexpected: Vec<SpanInfo<'_>> = errors
            .iter()
            .copied()
            .filter(|e| !expected.iter().any(|m| e.matches(m)))
            .collect();
        let unmatched: Vec<String> = expected
            .iter()
            .filter(|m| !errors.iter().any(|e| e.matches(m)))
            .map(|m| m.to_string())
            .collect();
        if unexpected.is_empty() && unmatched.is_empty() {
            return Ok(());
        }
        let want: Vec<String> = expected.iter().map(|m| m.to_string()).collect();
        let mut found = Vec::new();
        if !unexpected.is_empty() {
            found.push(format!(
                "unexpected ERROR spans: {}",
                Self::labels(&unexpected)
            ));
        }
        if !unmatched.is_empty() {
            found.push(format!("no ERROR span for: {}", unmatched.join(", ")));
        }
        Err(self.fail(
            format!("ERROR spans exactly [{}]", want.join("; ")),
            found.join("; "),
        ))
    }

    /// The first span matching `m` has attribute `key` equal to `value` (compared as text).
    pub fn assert_attribute(&self, m: &SpanMatcher, key: &str, value: impl Into<Value>) -> Check {
        let value = value.into();
        let spans = self.expect_span(m)?;
        let want = value_text(&value);
        if spans
            .iter()
            .any(|s| s.attr(key).as_deref() == Some(want.as_str()))
        {
            return Ok(());
        }
        let got: Vec<String> = spans
            .iter()
            .map(|s| match s.attr(key) {
                Some(v) => format!("{} has {key}={v}", s.label()),
                None => format!("{} has no {key}", s.label()),
            })
            .collect();
        Err(self.fail(
            format!("{m} with {key}={}", TraceView::show_value(&value)),
            got.join("; "),
        ))
    }

    /// Some span matching `m` carries attribute `key` (any value).
    pub fn assert_attribute_present(&self, m: &SpanMatcher, key: &str) -> Check {
        let spans = self.expect_span(m)?;
        if spans.iter().any(|s| s.attr(key).is_some()) {
            Ok(())
        } else {
            Err(self.fail(
                format!("{m} with attribute {key}"),
                format!("{} lack it", Self::labels(&spans)),
            ))
        }
    }

    /// Some span matching `m` recorded event `event` (e.g. `payment_failed`, `exception`).
    pub fn assert_event(&self, m: &SpanMatcher, event: &str) -> Check {
        let spans = self.expect_span(m)?;
        if spans.iter().any(|s| s.events().contains(&event)) {
            return Ok(());
        }
        let got: Vec<String> = spans
            .iter()
            .map(|s| format!("{} has events {:?}", s.label(), s.events()))
            .collect();
        Err(self.fail(format!("{m} with event \"{event}\""), got.join("; ")))
    }

    /// The number of spans matching `m` is within `count` (N+1 queries, extra retries).
    pub fn assert_span_count(&self, m: &SpanMatcher, count: Count) -> Check {
        let n = self.find(m).len();
        if count.contains(n) {
            Ok(())
        } else {
            Err(self.fail(format!("{count} {m}"), format!("{n}")))
        }
    }

    /// The trace holds spans whose parent is missing — it is broken into fragments — at least
    /// `min` of them (`min` = 0 accepts a connected trace).
    pub fn assert_fragments(&self, min: usize) -> Check {
        let broken = self.missing_parent_spans();
        if broken.len() >= min {
            Ok(())
        } else {
            Err(self.fail(
                format!("at least {min} span(s) with a missing parent (a fragmented trace)"),
                format!("{} ({})", broken.len(), Self::labels(&broken)),
            ))
        }
    }

    /// The critical path's bottleneck (`collector_api::critical_path`, what the viewer's sentence
    /// names) is in `service`, and in `operation` when given.
    pub fn assert_bottleneck(&self, service: &str, operation: Option<&str>) -> Check {
        use collector_api::critical_path::{bottleneck, critical_path};
        let t = self.trace();
        let path = critical_path(&t.spans);
        let expected = match operation {
            Some(op) => format!("the critical path's bottleneck to be {service} · {op}"),
            None => format!("the critical path's bottleneck to be in {service}"),
        };
        match bottleneck(&t.spans, &t.processes, &path) {
            Some(b) if b.service == service && operation.is_none_or(|op| b.operation == op) => {
                Ok(())
            }
            Some(b) => Err(self.fail(expected, b.sentence())),
            None => Err(self.fail(expected, "no critical path (empty trace)")),
        }
    }

    /// Every span's parent is in the trace: one connected tree.
    pub fn assert_connected(&self) -> Check {
        let broken = self.missing_parent_spans();
        if broken.is_empty() {
            Ok(())
        } else {
            Err(self.fail(
                "one connected trace (no span with a missing parent)",
                format!("fragment roots: {}", Self::labels(&broken)),
            ))
        }
    }
}
