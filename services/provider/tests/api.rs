//! card-provider over real HTTP: outcomes by token and test-mode header, idempotent replays,
//! the rate limiter, refunds, the mail API, and bad input that is refused without echoing it.

use std::time::{Duration, Instant};

use card_provider::{Application, Config};
use serde_json::{Value, json};

struct Provider {
    url: String,
    http: reqwest::Client,
}

async fn start(config: Config) -> Provider {
    let app = Application::build(config).await.expect("build");
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(std::future::pending()));
    Provider {
        url,
        http: reqwest::Client::new(),
    }
}

impl Provider {
    async fn post(
        &self,
        path: &str,
        key: Option<&str>,
        simulate: Option<&str>,
        body: Value,
    ) -> (u16, Value, bool) {
        let mut req = self.http.post(format!("{}{path}", self.url)).json(&body);
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(s) = simulate {
            req = req.header("X-Simulate", s);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        let replayed = resp.headers().get("idempotent-replayed").is_some();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
            replayed,
        )
    }

    async fn get(&self, path: &str) -> Value {
        self.http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

fn charge(token: &str) -> Value {
    json!({"amount": 14999, "currency": "usd", "source": token, "metadata": {"order_id": "ord_1"}})
}

#[tokio::test]
async fn a_charge_succeeds_and_a_retry_with_its_key_replays_it() {
    let p = start(Config::for_tests()).await;
    let (status, first, replayed) = p
        .post("/v1/charges", Some("k1"), None, charge("tok_visa"))
        .await;
    assert_eq!(status, 200, "{first}");
    assert!(!replayed);
    assert_eq!(first["status"], "succeeded");
    assert_eq!(first["amount"], 14999);
    let (status, again, replayed) = p
        .post("/v1/charges", Some("k1"), None, charge("tok_visa"))
        .await;
    assert_eq!(status, 200);
    assert!(replayed, "the retry is marked Idempotent-Replayed");
    assert_eq!(again["id"], first["id"]);
    let listed = p.get("/v1/charges").await;
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        1,
        "charged once: {listed}"
    );

    let mut other = charge("tok_visa");
    other["amount"] = json!(1);
    let (status, body, _) = p.post("/v1/charges", Some("k1"), None, other).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["type"], "idempotency_error");
}

#[tokio::test]
async fn concurrent_retries_with_one_key_charge_once() {
    let p = start(Config::for_tests()).await;
    let attempts = (0..8).map(|_| p.post("/v1/charges", Some("same"), None, charge("tok_visa")));
    let answers = futures::future::join_all(attempts).await;
    let ids: std::collections::BTreeSet<String> = answers
        .iter()
        .map(|(s, b, _)| {
            assert_eq!(*s, 200, "{b}");
            b["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one charge id for one key: {ids:?}");
    assert_eq!(
        p.get("/v1/charges").await["data"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn declines_come_from_the_token_or_the_test_mode_header() {
    let p = start(Config::for_tests()).await;
    let (status, body, _) = p
        .post(
            "/v1/charges",
            Some("d1"),
            None,
            charge("tok_chargeDeclined"),
        )
        .await;
    assert_eq!(status, 402, "{body}");
    assert_eq!(body["error"]["type"], "card_error");
    assert_eq!(body["error"]["code"], "card_declined");
    assert_eq!(body["error"]["message"], "Your card was declined.");
    let failed = body["error"]["charge"].as_str().unwrap();
    assert_eq!(
        p.get(&format!("/v1/charges/{failed}")).await["status"],
        "failed"
    );

    let (status, body, _) = p
        .post(
            "/v1/charges",
            Some("d2"),
            Some("decline"),
            charge("tok_visa"),
        )
        .await;
    assert_eq!(status, 402, "{body}");
}

#[tokio::test]
async fn the_rate_limiter_refuses_the_first_attempts_then_lets_one_through() {
    let p = start(Config::for_tests()).await;
    for attempt in 1..=2 {
        let (status, body, _) = p
            .post(
                "/v1/charges",
                Some("r1"),
                Some("rate_limited"),
                charge("tok_visa"),
            )
            .await;
        assert_eq!(status, 429, "attempt {attempt}: {body}");
        assert_eq!(body["error"]["type"], "rate_limit_error");
    }
    let (status, body, _) = p
        .post(
            "/v1/charges",
            Some("r1"),
            Some("rate_limited"),
            charge("tok_visa"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        p.get("/v1/charges").await["data"].as_array().unwrap().len(),
        1,
        "refusals charge nothing"
    );
}

#[tokio::test]
async fn a_degraded_provider_answers_after_its_slow_latency_but_has_charged_at_once() {
    let p = start(Config {
        slow_latency_ms: 400,
        ..Config::for_tests()
    })
    .await;
    let url = p.url.clone();
    let started = Instant::now();
    let slow = tokio::spawn(async move {
        reqwest::Client::new()
            .post(format!("{url}/v1/charges"))
            .header("X-Simulate", "slow")
            .header("Idempotency-Key", "s1")
            .json(&charge("tok_visa"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    });
    // The charge is on the books while the answer is still on its way (a client that times out has
    // still charged the card); wait for it, bounded.
    let mut seen = false;
    for _ in 0..200 {
        if !p.get("/v1/charges").await["data"]
            .as_array()
            .unwrap()
            .is_empty()
        {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(seen, "the charge is recorded before the slow answer");
    assert_eq!(slow.await.unwrap(), 200);
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn refunds_are_checked_against_the_charge() {
    let p = start(Config::for_tests()).await;
    let (_, ch, _) = p
        .post("/v1/charges", Some("c"), None, charge("tok_visa"))
        .await;
    let id = ch["id"].as_str().unwrap();
    let (status, re, _) = p
        .post("/v1/refunds", Some("refund:c"), None, json!({"charge": id}))
        .await;
    assert_eq!(status, 200, "{re}");
    assert_eq!(re["amount"], 14999);
    let (status, again, replayed) = p
        .post("/v1/refunds", Some("refund:c"), None, json!({"charge": id}))
        .await;
    assert_eq!((status, replayed), (200, true));
    assert_eq!(again["id"], re["id"]);
    let (status, body, _) = p
        .post(
            "/v1/refunds",
            Some("refund:c2"),
            None,
            json!({"charge": id, "amount": 1}),
        )
        .await;
    assert_eq!(status, 400, "nothing left to refund: {body}");
    let (status, body, _) = p
        .post("/v1/refunds", None, None, json!({"charge": "ch_nope"}))
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "resource_missing");
    assert_eq!(
        p.get(&format!("/v1/charges/{id}")).await["amount_refunded"],
        14999
    );
}

#[tokio::test]
async fn the_mail_api_accepts_once_per_key_and_can_be_slow() {
    let p = start(Config {
        mail_slow_latency_ms: 300,
        ..Config::for_tests()
    })
    .await;
    let mail = json!({"template": "order_confirmation", "data": {"order_id": "ord_1"}});
    let started = Instant::now();
    let (status, first, _) = p
        .post(
            "/v1/emails",
            Some("email:ord_1"),
            Some("slow"),
            mail.clone(),
        )
        .await;
    assert_eq!(status, 202, "{first}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let (_, again, replayed) = p.post("/v1/emails", Some("email:ord_1"), None, mail).await;
    assert!(replayed);
    assert_eq!(again["id"], first["id"]);
    assert_eq!(
        p.get("/v1/emails").await["data"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test]
async fn bad_input_is_refused_without_echoing_card_data() {
    let p = start(Config::for_tests()).await;
    let (status, body, _) = p
        .post(
            "/v1/charges",
            None,
            None,
            json!({"amount": 1, "currency": "usd", "source": 4242424242424242u64}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(!body.to_string().contains("4242424242424242"), "{body}");
    let (status, body, _) = p
        .post(
            "/v1/charges",
            None,
            None,
            json!({"amount": 1, "currency": "usd", "source": "4242424242424242"}),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(!body.to_string().contains("4242424242424242"), "{body}");
    let big = "x".repeat(20 * 1024);
    let (status, _, _) = p
        .post(
            "/v1/emails",
            None,
            None,
            json!({"template": "t", "data": {"x": big}}),
        )
        .await;
    assert_eq!(status, 413);
}
