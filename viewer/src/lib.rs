//! tracelab's trace viewer: a Leptos app rendered on the server (feature `ssr`, the `viewer`
//! binary) and hydrated in the browser (feature `hydrate`, the wasm bundle under `/pkg`).
//!
//! - [`app`]: the HTML shell, the router and the navigation bar.
//! - [`pages`]: the search page (form, scatter plot, results) and the trace page (header,
//!   bottleneck sentence, virtualised waterfall, span panel).
//! - [`api`]: server functions — the only data path, towards the collector's query API.
//! - [`compare`]: two traces aligned span by span (trace compare), with signed deltas.
//! - [`model`]: the waterfall's collapse state and row windows, the whole-trace span tree, colours.
//! - [`map_layout`]: the service map's layered layout (a pure function).
//! - [`search`]: the search form ⇄ URL (Jaeger UI's shapes) ⇄ the query API's parameters.
//! - [`chart`]: the RED pages' chart geometry (scales, nice maxima, gap-aware line paths).
//! - [`flags`]: the flags panel's types and server functions (towards the gateway's and
//!   inventory's `/admin` routes, with the admin token).
//! - [`format`]: durations and UTC timestamps, identical on server and browser.
//! - `server` (ssr only): configuration and `Application::build` → `run_until_stopped`.

#![recursion_limit = "256"]

pub mod api;
pub mod app;
pub mod chart;
pub mod compare;
pub mod flags;
pub mod format;
pub mod map_layout;
pub mod model;
pub mod pages;
pub mod search;
#[cfg(feature = "ssr")]
pub mod server;

/// The browser's entry point: hydrate the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
