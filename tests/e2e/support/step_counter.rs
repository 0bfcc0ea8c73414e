//! A fake vendor that counts POSTs to `/ping` per `Idempotency-Key` header: the test-echo
//! plugin's `ping` action sends its step's key (`RUN:SEQ`), so the counts say how often each
//! journaled step reached the vendor (a completed step: once; the step in flight at a crash:
//! at most twice).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct StepCounter {
    /// `http://127.0.0.1:PORT`.
    pub base_url: String,
    counts: Arc<Mutex<HashMap<String, usize>>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl StepCounter {
    /// Start on a free loopback port; each answer takes `delay` (a slow vendor keeps steps
    /// in flight).
    pub async fn start(delay: Duration) -> StepCounter {
        use axum::routing::post;
        let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
        let c = counts.clone();
        let app = axum::Router::new().route(
            "/ping",
            post(move |headers: axum::http::HeaderMap| {
                let c = c.clone();
                async move {
                    let key = headers
                        .get("idempotency-key")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("none")
                        .to_owned();
                    *c.lock().unwrap().entry(key).or_default() += 1;
                    tokio::time::sleep(delay).await;
                    "pong"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let stop = super::fake_http::serve(listener, app);
        StepCounter {
            base_url,
            counts,
            _stop: stop,
        }
    }

    /// How many requests each idempotency key sent, so far.
    pub fn counts(&self) -> HashMap<String, usize> {
        self.counts.lock().unwrap().clone()
    }
}
