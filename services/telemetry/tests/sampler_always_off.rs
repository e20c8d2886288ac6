//! `OTEL_TRACES_SAMPLER=always_off` exports nothing, yet context still propagates: the
//! downstream service receives the caller's trace id. Runs as a child process so the
//! SDK reads the sampler from a real environment.

use std::process::Command;

use axum::{Json, Router, http::HeaderMap, routing::get};
use serde_json::{Value, json};

const CHILD: &str = "TELEMETRY_SAMPLER_CHILD";

#[test]
fn always_off_exports_nothing_but_propagates() {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_calls_downstream",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("OTEL_TRACES_SAMPLER", "always_off")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("CHILD_OK"), "{stdout}");
}

#[test]
fn child_process_calls_downstream() {
    if std::env::var(CHILD).is_err() {
        return; // only meaningful when started by the test above
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let t = telemetry::testing::init();
        let down = Router::new().route(
            "/echo",
            get(|headers: HeaderMap| async move {
                Json(json!({ "traceparent": headers.get("traceparent").map(|v| v.to_str().unwrap().to_owned()) }))
            }),
        );
        let down = serve(telemetry::http::instrument_router(down)).await;
        let client = telemetry::http::client();
        let up = Router::new().route(
            "/front",
            get(move || {
                let client = client.clone();
                let url = format!("{down}/echo");
                async move {
                    let body: Value = client.get(url).send().await.unwrap().json().await.unwrap();
                    Json(body)
                }
            }),
        );
        let up = serve(telemetry::http::instrument_router(up)).await;

        let caller = "4bf92f3577b34da6a3ce929d0e0e4736";
        let response = reqwest::Client::new()
            .get(format!("{up}/front"))
            .header("traceparent", format!("00-{caller}-00f067aa0ba902b7-00"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-trace-id"], caller);
        let body: Value = response.json().await.unwrap();
        let wire = body["traceparent"].as_str().expect("downstream got a traceparent");
        assert!(wire.starts_with(&format!("00-{caller}-")), "{wire}");
        assert!(wire.ends_with("-00"), "not sampled: {wire}");

        // The simple processor exports synchronously at span end, and every span of
        // this request has ended once the response is read.
        assert!(t.all_spans().is_empty(), "always_off exported {:?}", t.all_spans());
    });
    println!("CHILD_OK");
}

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}")
}
