//! The HTML shell, the routes and the navigation bar shared by every page.

use leptos::prelude::*;
use leptos_meta::{MetaTags, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

use crate::pages::compare::{ComparePage, TraceOrCompare};
use crate::pages::dependencies::DependenciesPage;
use crate::pages::flags::FlagsPage;
use crate::pages::monitor::{MonitorPage, MonitorServicePage};
use crate::pages::sampling::SamplingPage;
use crate::pages::search::SearchPage;

/// The document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <link rel="stylesheet" href="/pkg/viewer.css"/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Title text="tracelab"/>
        <Router>
            <NavBar/>
            <main>
                <Routes fallback=|| view! { <p class="notice">"No such page. "<a href="/search">"Search traces"</a></p> }>
                    <Route path=path!("/") view=SearchPage/>
                    <Route path=path!("/search") view=SearchPage/>
                    // `/trace/A...B` is Jaeger UI's compare URL: the same route, told apart by its id.
                    <Route path=path!("/trace/:id") view=TraceOrCompare/>
                    <Route path=path!("/compare") view=ComparePage/>
                    <Route path=path!("/dependencies") view=DependenciesPage/>
                    <Route path=path!("/monitor") view=MonitorPage/>
                    <Route path=path!("/monitor/:service") view=MonitorServicePage/>
                    <Route path=path!("/flags") view=FlagsPage/>
                    <Route path=path!("/sampling") view=SamplingPage/>
                </Routes>
            </main>
        </Router>
    }
}

#[component]
fn NavBar() -> impl IntoView {
    view! {
        <header class="nav">
            <a class="brand" href="/">"tracelab"</a>
            <a href="/search">"Search"</a>
            <a href="/dependencies">"Service map"</a>
            <a href="/monitor">"Monitor"</a>
            <a href="/sampling">"Sampling"</a>
            <a href="/flags">"Flags"</a>
            <a href="/compare">"Compare"</a>
            // A plain form: `/go` redirects to `/trace/{id}`, with or without the wasm loaded.
            <form class="goto" method="get" action="/go">
                <input name="traceID" placeholder="Look up a trace ID…" aria-label="Trace ID" spellcheck="false"/>
            </form>
        </header>
    }
}
