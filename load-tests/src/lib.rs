//! `loadgen`: checkout load for tracelab, and the sampling lab.
//!
//! - [`plan`] draws every request of a run up front from one seed (due time, scenario, body);
//! - [`runner`] sends them at their due times (an open model with a concurrency cap);
//! - [`record`] tallies answers in HdrHistograms; [`report`] and [`plot`] turn them into the JSON
//!   summary, the terminal table and the SVG latency histogram;
//! - [`sampling`] is the sampling lab: one run, and what each strategy's store kept of it;
//! - [`otlp`] is raw OTLP trace load, a counting OTLP sink, and the collector benchmark
//!   (tracelab's collector against rotel) built on them;
//! - [`bench_stack`] is `loadgen bench-stack`: tracing off / 10 % / 100 % on fresh stacks;
//! - [`cli`] holds the flags `loadgen run` and `loadgen sampling-lab` share.

pub mod bench_stack;
pub mod cli;
pub mod mix;
pub mod otlp;
pub mod plan;
pub mod plot;
pub mod procfs;
pub mod record;
pub mod report;
pub mod runner;
pub mod sampling;

pub use mix::Mix;
pub use report::RunSummary;
pub use runner::{RunConfig, RunOutput, run};
