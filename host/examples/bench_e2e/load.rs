//! The alert sender: N alerts to `POST /api/v1/alerts`, each about its own public IPv4
//! address (`11.x.y.z` from the alert's number), one JSON alert per request or NDJSON
//! bodies of `--batch` alerts, over keep-alive connections. With `--url` given more than once
//! (the nodes of a cluster), request number i goes to the (i mod n)th URL: round-robin.
//!
//! Without `--rate`, `--connections` connections each send their next request as soon as the
//! last one is answered, until all N are sent (closed loop: as fast as the server takes them).
//! With `--rate R`, one alert per request is started every 1/R s on the clock whatever the
//! answers do (open loop, so a slow server does not lower the rate it is offered), with at
//! most `--connections` requests in flight; the report says how long sending took, so a rate
//! that could not be kept shows.

use anyhow::{Context, bail};
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

#[derive(clap::Args)]
pub struct Load {
    /// The intake endpoint, e.g. http://127.0.0.1:8080/api/v1/alerts; repeat for several
    /// servers, which get the requests round-robin.
    #[arg(long, required = true)]
    url: Vec<String>,
    /// An intake token (`osprey token create NAME --scope intake`).
    #[arg(long)]
    token: String,
    /// How many alerts in all.
    #[arg(long)]
    alerts: usize,
    /// Alerts per request: 1 sends one JSON object, more an NDJSON body.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Keep-alive connections (closed loop), or the most requests in flight (with --rate).
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Alerts per second, one per request, on a fixed clock; unset: as fast as answered.
    #[arg(long)]
    rate: Option<f64>,
    /// The alerts' `source`, so each phase of the bench can be told apart in the store.
    #[arg(long)]
    source: String,
    /// The number of the first alert (its IP address): phases use different addresses.
    #[arg(long, default_value_t = 0)]
    first: usize,
}

/// What one `send` did.
pub struct Report {
    /// Unix time in ms just before the first request was sent.
    started_ms: u128,
    /// From the first request sent to the last answer.
    elapsed: Duration,
    /// From the first request to the start of the last (with --rate: the offered rate).
    sending: Duration,
    requests: usize,
    /// Alerts in requests answered 2xx: committed by the server.
    accepted: usize,
    non_2xx: usize,
    /// Requests that got no answer at all (connection refused or reset).
    errors: usize,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "started_ms={} elapsed_s={:.3} sending_s={:.3} requests={} accepted={} non_2xx={} errors={}",
            self.started_ms,
            self.elapsed.as_secs_f64(),
            self.sending.as_secs_f64(),
            self.requests,
            self.accepted,
            self.non_2xx,
            self.errors
        )
    }
}

/// How one request ended.
enum Answer {
    Accepted(usize),
    Refused,
    Failed,
}

/// One request's alerts, and how to send them.
struct Body {
    text: String,
    alerts: usize,
    content_type: &'static str,
}

impl Load {
    pub async fn run(self) -> anyhow::Result<Report> {
        if self.alerts == 0 || self.batch == 0 || self.connections == 0 {
            bail!("--alerts, --batch and --connections must each be at least 1");
        }
        if self.rate.is_some() && self.batch != 1 {
            bail!("--rate paces one alert per request: leave --batch at 1");
        }
        if self.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            bail!("--rate must be a positive number of alerts per second");
        }
        // reqwest is built without a TLS provider of its own (Osprey installs ring's); this
        // client speaks plain HTTP on loopback, but reqwest wants one installed all the same.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .pool_max_idle_per_host(self.connections)
            .build()
            .context("building the HTTP client")?;
        let load = Arc::new(self);
        let started_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
        let start = Instant::now();
        let (answers, sending) = match load.rate {
            None => load.clone().closed_loop(client).await,
            Some(rate) => load.clone().open_loop(client, rate).await,
        };
        let elapsed = start.elapsed();
        let mut report = Report {
            started_ms,
            elapsed,
            sending,
            requests: answers.len(),
            accepted: 0,
            non_2xx: 0,
            errors: 0,
        };
        for answer in answers {
            match answer {
                Answer::Accepted(n) => report.accepted += n,
                Answer::Refused => report.non_2xx += 1,
                Answer::Failed => report.errors += 1,
            }
        }
        Ok(report)
    }

    /// `--connections` senders, each sending the next request once its last is answered.
    async fn closed_loop(self: Arc<Self>, client: reqwest::Client) -> (Vec<Answer>, Duration) {
        let requests = self.alerts.div_ceil(self.batch);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let start = Instant::now();
        let mut senders = JoinSet::new();
        for _ in 0..self.connections.min(requests) {
            let (load, client, next) = (self.clone(), client.clone(), next.clone());
            senders.spawn(async move {
                let mut answers = Vec::new();
                loop {
                    let r = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if r >= requests {
                        return answers;
                    }
                    let from = r * load.batch;
                    let body = load.body(from, (from + load.batch).min(load.alerts));
                    answers.push(load.send(&client, r, body).await);
                }
            });
        }
        let mut answers = Vec::with_capacity(requests);
        while let Some(done) = senders.join_next().await {
            answers.extend(done.expect("a sender panicked"));
        }
        // Closed loop: sending lasts until the last request went out, about the whole time.
        (answers, start.elapsed())
    }

    /// One request every 1/rate s on the clock, at most `--connections` in flight.
    async fn open_loop(self: Arc<Self>, client: reqwest::Client, rate: f64) -> (Vec<Answer>, Duration) {
        let in_flight = Arc::new(Semaphore::new(self.connections));
        let start = Instant::now();
        let mut requests = JoinSet::new();
        for i in 0..self.alerts {
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
            let permit = in_flight.clone().acquire_owned().await.expect("never closed");
            let (load, client) = (self.clone(), client.clone());
            requests.spawn(async move {
                let answer = load.send(&client, i, load.body(i, i + 1)).await;
                drop(permit);
                answer
            });
        }
        let sending = start.elapsed();
        let mut answers = Vec::with_capacity(self.alerts);
        while let Some(done) = requests.join_next().await {
            answers.push(done.expect("a request task panicked"));
        }
        (answers, sending)
    }

    /// Alerts number `from..to` (offset by `--first`) as one request's body.
    fn body(&self, from: usize, to: usize) -> Body {
        let alert = |i: usize| {
            let n = self.first + i;
            format!(
                r#"{{"source":"{}","title":"connection from a watched address","severity":"medium","src":"11.{}.{}.{}"}}"#,
                self.source,
                (n >> 16) & 255,
                (n >> 8) & 255,
                n & 255
            )
        };
        if to - from == 1 {
            return Body {
                text: alert(from),
                alerts: 1,
                content_type: "application/json",
            };
        }
        let mut text = String::with_capacity((to - from) * 128);
        for i in from..to {
            text.push_str(&alert(i));
            text.push('\n');
        }
        Body {
            text,
            alerts: to - from,
            content_type: "application/x-ndjson",
        }
    }

    /// Send request number `request` (its server chosen round-robin).
    async fn send(&self, client: &reqwest::Client, request: usize, body: Body) -> Answer {
        let sent = client
            .post(&self.url[request % self.url.len()])
            .bearer_auth(&self.token)
            .header("content-type", body.content_type)
            .body(body.text)
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                // Read the answer whole, so the connection is free for the next request.
                let _ = r.bytes().await;
                Answer::Accepted(body.alerts)
            }
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                say_once(&format!("HTTP {status}: {text}"));
                Answer::Refused
            }
            Err(e) => {
                say_once(&format!("no answer: {e}"));
                Answer::Failed
            }
        }
    }
}

/// The first failure on stderr, so the report's counts come with a reason but thousands of
/// failures do not flood the terminal.
fn say_once(what: &str) {
    static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !SAID.swap(true, std::sync::atomic::Ordering::Relaxed) {
        eprintln!("bench_e2e send: {what} (only the first failure is shown)");
    }
}
