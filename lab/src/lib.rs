//! tracelab's lab: the trace-assertion kit and the local launcher.
//!
//! - [`client`]: [`TraceClient`] fetches a trace from the collector's Jaeger query API and waits
//!   until it is complete ([`Wait`]: deadline + quiet period, never a fixed sleep).
//! - [`view`] + [`assertions`]: [`TraceView`] indexes a trace and asserts on it (services, spans,
//!   parentage, ordering, durations, bottleneck shares, errors, attributes, counts, fragments);
//!   a failed assertion prints the whole trace as a tree.
//! - [`matcher`]: [`SpanMatcher`] selects spans by name, service, kind, status and attributes.
//! - [`spec`]: YAML specs (a request + assertions), run by `tracelab assert`.
//! - [`launcher`]: [`Stack::start`] runs the platform as local processes (`tracelab up`).
//! - [`harness`]: one such stack per test binary, for the workspace's end-to-end tests.
//! - [`probe`]: `tracelab probe URL`, the containers' health check.

pub mod assertions;
pub mod client;
pub mod harness;
pub mod launcher;
pub mod matcher;
pub mod probe;
pub mod spec;
pub mod view;

pub use assertions::{AssertionError, Count};
pub use client::{FetchError, TraceClient, TraceQuery, Wait};
pub use launcher::{Sampling, Stack, StackOptions, StackUrls};
pub use matcher::{SpanKind, SpanMatcher, SpanStatus};
pub use spec::{Spec, SpecOutcome, SpecRunner};
pub use view::{SpanInfo, TraceView};
