//! Prometheus metrics, served at `GET /metrics` (`server/metrics.rs`) in the OpenMetrics text
//! format.
//!
//! One [`Metrics`] per process, made by `App::open` and handed to the plugin runtime (in
//! `RuntimeOptions`), so every box counts into the same registry: intake (alerts ingested),
//! pre-processing (what the rules decided), the run executor (step durations), the plugin
//! runtime (calls and denials), the SLA watch (breaches) and the mail sender. Counters are
//! counted where the thing is known to have happened (after the commit that records it);
//! gauges of stored state (runs by status, the queue, open questions) are read from the store
//! when the endpoint is scraped, so every server of a cluster reports the same.
//!
//! Label values that come from outside the code (an alert's source, rule, plugin and action
//! names) are cut to [`MAX_LABEL_LEN`] bytes, and each label takes at most
//! [`MAX_LABEL_VALUES`] distinct values: later ones are counted under [`OTHER`], so a sender
//! that makes up a new source per alert cannot grow the exposition without bound.

use crate::store::runs::RunStatus;
use crate::store::{Store, StoreError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Distinct values one outside-defined label may take before new ones count as [`OTHER`].
pub const MAX_LABEL_VALUES: usize = 100;
/// Longest label value, in bytes; longer ones are cut.
pub const MAX_LABEL_LEN: usize = 64;
/// The label value of everything past [`MAX_LABEL_VALUES`].
pub const OTHER: &str = "other";

/// Upper bounds of the step-duration buckets, in seconds: from a millisecond (`now`, `log`)
/// to five minutes (a slow vendor call).
const STEP_BUCKETS: [f64; 15] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// Every run status, so that a status with no runs is reported as 0, not left out.
const RUN_STATUSES: [RunStatus; 7] = [
    RunStatus::Queued,
    RunStatus::Running,
    RunStatus::Waiting,
    RunStatus::Completed,
    RunStatus::Failed,
    RunStatus::Cancelled,
    RunStatus::Dead,
];

/// What pre-processing decided for an alert, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Preprocessed {
    /// A drop rule matched.
    Dropped,
    /// Folded into an open incident with the same key, within the rule's window.
    Deduplicated,
    /// Linked to an open incident by a link rule.
    Linked,
    /// Opened an incident.
    Incident,
    /// No rule matched; the alert is kept.
    Unmatched,
}

impl Preprocessed {
    fn as_str(self) -> &'static str {
        match self {
            Preprocessed::Dropped => "dropped",
            Preprocessed::Deduplicated => "deduplicated",
            Preprocessed::Linked => "linked",
            Preprocessed::Incident => "incident",
            Preprocessed::Unmatched => "unmatched",
        }
    }
}

/// Why the runtime refused something a plugin asked for, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// An outbound HTTP request the grant does not allow (URL or resolved address).
    Http,
    /// An outbound HTTP request over a limit (request count, body sizes).
    HttpLimit,
    /// A secret that is not granted.
    Secret,
    /// Output that contained the value of a secret.
    SecretInOutput,
}

impl Denial {
    fn as_str(self) -> &'static str {
        match self {
            Denial::Http => "http",
            Denial::HttpLimit => "http-limit",
            Denial::Secret => "secret",
            Denial::SecretInOutput => "secret-in-output",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PreprocessLabels {
    outcome: &'static str,
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    plugin: String,
    action: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DenialLabels {
    plugin: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WebhookLabels {
    plugin: String,
    outcome: &'static str,
}

/// What became of a webhook request to an installed plugin, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Webhook {
    /// The plugin answered (whatever its status).
    Answered,
    /// Not handed to the plugin: not granted, or a contract without webhooks.
    Refused,
    /// Refused before the call: too large, too many headers, too many at once.
    Limited,
    /// The plugin failed: an error, a trap, a timeout, a limit.
    Failed,
}

impl Webhook {
    fn as_str(self) -> &'static str {
        match self {
            Webhook::Answered => "answered",
            Webhook::Refused => "refused",
            Webhook::Limited => "limited",
            Webhook::Failed => "failed",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PollLabels {
    poller: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PollerLabels {
    poller: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TimerLabels {
    timer: String,
}

fn step_histogram() -> Histogram {
    Histogram::new(STEP_BUCKETS)
}

/// Stored state read at scrape time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Runs per status (statuses not listed have none).
    pub runs: Vec<(RunStatus, i64)>,
    /// Runs due now and not being replayed.
    pub queue_depth: i64,
    /// Questions to people not answered yet.
    pub questions_open: i64,
    /// Each poller's name and seconds since its last successful poll (those that had one).
    pub poll_lag: Vec<(String, i64)>,
    /// Committed alerts pre-processing has not decided yet, and how long ago the oldest of
    /// them was received (ms; 0 when there is none).
    pub undecided: (i64, i64),
}

/// The process's metrics. Cheap to count into from any thread.
pub struct Metrics {
    registry: Registry,
    alerts_ingested: Family<SourceLabels, Counter>,
    alerts_preprocessed: Family<PreprocessLabels, Counter>,
    runs: Family<StatusLabels, Gauge>,
    run_queue_depth: Gauge,
    step_duration: Family<KindLabels, Histogram, fn() -> Histogram>,
    plugin_calls: Family<CallLabels, Counter>,
    plugin_denials: Family<DenialLabels, Counter>,
    sla_breaches: Family<TimerLabels, Counter>,
    webhooks: Family<WebhookLabels, Counter>,
    webhook_answers: Family<WebhookLabels, Counter>,
    mail_sent: Counter,
    mail_retried: Counter,
    mail_failed: Counter,
    questions_open: Gauge,
    polls: Family<PollLabels, Counter>,
    poll_items: Family<PollLabels, Counter>,
    poll_lag: Family<PollerLabels, Gauge>,
    alerts_undecided: Gauge,
    preprocess_lag: Gauge<f64, std::sync::atomic::AtomicU64>,
    intake_throttled: Counter,
    /// The values each outside-defined label has taken, by label name.
    seen: Mutex<HashMap<&'static str, HashSet<String>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric registered (counters at zero).
    pub fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            alerts_ingested: Family::default(),
            alerts_preprocessed: Family::default(),
            runs: Family::default(),
            run_queue_depth: Gauge::default(),
            step_duration: Family::new_with_constructor(step_histogram),
            plugin_calls: Family::default(),
            plugin_denials: Family::default(),
            sla_breaches: Family::default(),
            webhooks: Family::default(),
            webhook_answers: Family::default(),
            mail_sent: Counter::default(),
            mail_retried: Counter::default(),
            mail_failed: Counter::default(),
            questions_open: Gauge::default(),
            polls: Family::default(),
            poll_items: Family::default(),
            poll_lag: Family::default(),
            alerts_undecided: Gauge::default(),
            preprocess_lag: Gauge::default(),
            intake_throttled: Counter::default(),
            seen: Mutex::default(),
        };
        let mut registry = Registry::default();
        // Counters are registered without `_total`: the encoder adds it.
        registry.register(
            "osprey_alerts_ingested",
            "Alerts committed by intake (HTTP and syslog), by the alert's source",
            m.alerts_ingested.clone(),
        );
        registry.register(
            "osprey_alerts_preprocessed",
            "Alerts decided by pre-processing, by outcome (dropped, deduplicated, linked, incident, unmatched) and the rule that decided",
            m.alerts_preprocessed.clone(),
        );
        registry.register(
            "osprey_runs",
            "Playbook runs in the store, by status",
            m.runs.clone(),
        );
        registry.register(
            "osprey_run_queue_depth",
            "Runs due now that no worker is replaying",
            m.run_queue_depth.clone(),
        );
        registry.register(
            "osprey_run_step_duration_seconds",
            "Duration of journaled playbook steps, by kind (invoke, act, sleep, ...)",
            m.step_duration.clone(),
        );
        registry.register(
            "osprey_plugin_calls",
            "Plugin calls by plugin, action and outcome (ok or the error kind)",
            m.plugin_calls.clone(),
        );
        registry.register(
            "osprey_plugin_denials",
            "Requests of plugins the runtime refused, by plugin and kind (http, http-limit, secret, secret-in-output)",
            m.plugin_denials.clone(),
        );
        registry.register(
            "osprey_sla_breaches",
            "SLA breaches recorded by this server, by timer",
            m.sla_breaches.clone(),
        );
        registry.register(
            "osprey_webhooks",
            "Requests to /hooks/PLUGIN of installed plugins, by plugin and outcome (answered, refused, limited, failed)",
            m.webhooks.clone(),
        );
        registry.register(
            "osprey_webhook_answers",
            "Answers to questions reported by plugins' webhooks (clicks in chat), by plugin and outcome (taken, refused)",
            m.webhook_answers.clone(),
        );
        registry.register(
            "osprey_mail_sent",
            "Mails delivered over SMTP",
            m.mail_sent.clone(),
        );
        registry.register(
            "osprey_mail_retried",
            "Mail delivery attempts that failed and will be tried again",
            m.mail_retried.clone(),
        );
        registry.register(
            "osprey_mail_failed",
            "Mails given up on after their last attempt",
            m.mail_failed.clone(),
        );
        registry.register(
            "osprey_questions_open",
            "Questions to people not answered yet",
            m.questions_open.clone(),
        );
        registry.register(
            "osprey_polls",
            "Polls of pollers (`osprey intake poll`), by poller and outcome (ok, failed)",
            m.polls.clone(),
        );
        registry.register(
            "osprey_poll_items",
            "Items polled, by poller and outcome (accepted: committed as alerts; bad: not an alert)",
            m.poll_items.clone(),
        );
        registry.register(
            "osprey_poll_lag_seconds",
            "Seconds since each poller's last successful poll",
            m.poll_lag.clone(),
        );
        registry.register(
            "osprey_alerts_undecided",
            "Alerts committed that pre-processing has not decided yet (dropped, deduplicated, linked or opened as incidents)",
            m.alerts_undecided.clone(),
        );
        registry.register(
            "osprey_preprocess_lag_seconds",
            "How long ago the oldest undecided alert was received (0 when none waits)",
            m.preprocess_lag.clone(),
        );
        registry.register(
            "osprey_intake_throttled",
            "Intake requests answered 503 with Retry-After because pre-processing lags (intake.max_undecided)",
            m.intake_throttled.clone(),
        );
        Metrics { registry, ..m }
    }

    /// `value` as a label value of `label`: cut to [`MAX_LABEL_LEN`], or [`OTHER`] once the
    /// label has taken [`MAX_LABEL_VALUES`] other values.
    fn bounded(&self, label: &'static str, value: &str) -> String {
        let mut end = value.len().min(MAX_LABEL_LEN);
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        let value = &value[..end];
        let mut seen = self.seen.lock().expect("metrics labels lock");
        let values = seen.entry(label).or_default();
        if values.contains(value) {
            return value.to_owned();
        }
        if values.len() >= MAX_LABEL_VALUES {
            return OTHER.to_owned();
        }
        values.insert(value.to_owned());
        value.to_owned()
    }

    /// `n` alerts from `source` were committed.
    pub fn alerts_ingested(&self, source: &str, n: u64) {
        let source = self.bounded("source", source);
        self.alerts_ingested
            .get_or_create(&SourceLabels { source })
            .inc_by(n);
    }

    /// `n` alerts were decided `outcome` by `rule` (none for unmatched), and committed.
    pub fn alerts_preprocessed(&self, outcome: Preprocessed, rule: Option<&str>, n: u64) {
        let rule = rule.map_or_else(String::new, |r| self.bounded("rule", r));
        self.alerts_preprocessed
            .get_or_create(&PreprocessLabels {
                outcome: outcome.as_str(),
                rule,
            })
            .inc_by(n);
    }

    /// A step of `kind` that took `duration_ms` was journaled.
    pub fn step_recorded(&self, kind: &str, duration_ms: i64) {
        let kind = self.bounded("kind", kind);
        self.step_duration
            .get_or_create(&KindLabels { kind })
            .observe(duration_ms.max(0) as f64 / 1000.0);
    }

    /// A call of `plugin`'s `action` ended with `outcome`: `ok` or an error kind.
    pub fn plugin_call(&self, plugin: &str, action: &str, outcome: &str) {
        let labels = CallLabels {
            plugin: self.bounded("plugin", plugin),
            action: self.bounded("action", action),
            outcome: self.bounded("outcome", outcome),
        };
        self.plugin_calls.get_or_create(&labels).inc();
    }

    /// The runtime refused `n` requests of `kind` from `plugin`.
    pub fn plugin_denied(&self, plugin: &str, kind: Denial, n: u64) {
        let labels = DenialLabels {
            plugin: self.bounded("plugin", plugin),
            kind: kind.as_str(),
        };
        self.plugin_denials.get_or_create(&labels).inc_by(n);
    }

    /// A webhook request to the installed `plugin` ended with `outcome`.
    pub fn webhook(&self, plugin: &str, outcome: Webhook) {
        let labels = WebhookLabels {
            plugin: self.bounded("plugin", plugin),
            outcome: outcome.as_str(),
        };
        self.webhooks.get_or_create(&labels).inc();
    }

    /// A plugin reported an answer to a question: `taken`, or refused (changed nothing).
    pub fn webhook_answer(&self, plugin: &str, taken: bool) {
        let labels = WebhookLabels {
            plugin: self.bounded("plugin", plugin),
            outcome: if taken { "taken" } else { "refused" },
        };
        self.webhook_answers.get_or_create(&labels).inc();
    }

    /// A breach of `timer` (acknowledge, resolve, due) was recorded.
    pub fn sla_breached(&self, timer: &str) {
        let timer = self.bounded("timer", timer);
        self.sla_breaches.get_or_create(&TimerLabels { timer }).inc();
    }

    /// A poll of `poller` ended (`ok`, with `accepted` alerts committed and `bad` items
    /// refused, or failed).
    pub fn polled(&self, poller: &str, ok: bool, accepted: u64, bad: u64) {
        let poller = self.bounded("poller", poller);
        let labels = |outcome| PollLabels {
            poller: poller.clone(),
            outcome,
        };
        self.polls
            .get_or_create(&labels(if ok { "ok" } else { "failed" }))
            .inc();
        if ok {
            self.poll_items
                .get_or_create(&labels("accepted"))
                .inc_by(accepted);
            self.poll_items.get_or_create(&labels("bad")).inc_by(bad);
        }
    }

    /// A mail was delivered.
    pub fn mail_sent(&self) {
        self.mail_sent.inc();
    }

    /// A delivery attempt failed; the mail will be tried again.
    pub fn mail_retried(&self) {
        self.mail_retried.inc();
    }

    /// A mail was given up on.
    pub fn mail_failed(&self) {
        self.mail_failed.inc();
    }

    /// An intake request was refused because pre-processing lags.
    pub fn intake_throttled(&self) {
        self.intake_throttled.inc();
    }

    /// The exposition, with the gauges of stored state set from `snapshot`.
    pub fn encode(&self, snapshot: &Snapshot) -> String {
        for status in RUN_STATUSES {
            let n = snapshot
                .runs
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| *n);
            self.runs
                .get_or_create(&StatusLabels {
                    status: status.as_str(),
                })
                .set(n);
        }
        self.run_queue_depth.set(snapshot.queue_depth);
        self.questions_open.set(snapshot.questions_open);
        self.alerts_undecided.set(snapshot.undecided.0);
        self.preprocess_lag.set(snapshot.undecided.1 as f64 / 1000.0);
        for (poller, lag) in &snapshot.poll_lag {
            let poller = self.bounded("poller", poller);
            self.poll_lag.get_or_create(&PollerLabels { poller }).set(*lag);
        }
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String does not fail");
        out
    }

    /// Read the stored state and encode everything.
    pub async fn scrape(&self, store: &Store) -> Result<String, StoreError> {
        let snapshot = Snapshot {
            runs: store.run_counts().await?,
            queue_depth: store.queue_depth().await?,
            questions_open: store.count_open_questions().await?,
            undecided: store.undecided_alerts().await?,
            poll_lag: {
                let now = crate::store::now_ms();
                store
                    .pollers()
                    .await?
                    .into_iter()
                    .filter_map(|p| Some((p.name, (now - p.last_ok_at?).max(0) / 1000)))
                    .collect()
            },
        };
        Ok(self.encode(&snapshot))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample lines of `text` (no comments), for exact comparisons.
    fn samples(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    fn has(text: &str, line: &str) -> bool {
        samples(text).contains(&line)
    }

    #[test]
    fn counters_are_encoded_with_their_labels_and_total_suffix() {
        let m = Metrics::new();
        m.alerts_ingested("ids", 3);
        m.alerts_ingested("edr", 2);
        m.alerts_ingested("ids", 1);
        m.alerts_preprocessed(Preprocessed::Dropped, Some("scanner-noise"), 4);
        m.alerts_preprocessed(Preprocessed::Unmatched, None, 1);
        m.plugin_call("test-echo", "echo", "ok");
        m.plugin_call("test-echo", "echo", "ok");
        m.plugin_call("test-echo", "ping", "denied");
        m.plugin_denied("test-echo", Denial::Http, 1);
        m.sla_breached("acknowledge");
        m.mail_sent();
        m.mail_failed();
        let text = m.encode(&Snapshot::default());
        for line in [
            r#"osprey_alerts_ingested_total{source="ids"} 4"#,
            r#"osprey_alerts_ingested_total{source="edr"} 2"#,
            r#"osprey_alerts_preprocessed_total{outcome="dropped",rule="scanner-noise"} 4"#,
            r#"osprey_alerts_preprocessed_total{outcome="unmatched",rule=""} 1"#,
            r#"osprey_plugin_calls_total{plugin="test-echo",action="echo",outcome="ok"} 2"#,
            r#"osprey_plugin_calls_total{plugin="test-echo",action="ping",outcome="denied"} 1"#,
            r#"osprey_plugin_denials_total{plugin="test-echo",kind="http"} 1"#,
            r#"osprey_sla_breaches_total{timer="acknowledge"} 1"#,
            "osprey_mail_sent_total 1",
            "osprey_mail_retried_total 0",
            "osprey_mail_failed_total 1",
        ] {
            assert!(has(&text, line), "missing {line} in:\n{text}");
        }
        assert!(text.contains("# TYPE osprey_alerts_ingested counter"), "{text}");
        assert!(text.contains("# HELP osprey_plugin_denials "), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn gauges_come_from_the_snapshot_with_every_status() {
        let m = Metrics::new();
        let text = m.encode(&Snapshot {
            runs: vec![(RunStatus::Completed, 7), (RunStatus::Queued, 2)],
            queue_depth: 2,
            questions_open: 3,
            poll_lag: Vec::new(),
            undecided: (1200, 2500),
        });
        for line in [
            r#"osprey_runs{status="completed"} 7"#,
            r#"osprey_runs{status="queued"} 2"#,
            r#"osprey_runs{status="dead"} 0"#,
            r#"osprey_runs{status="waiting"} 0"#,
            "osprey_run_queue_depth 2",
            "osprey_questions_open 3",
            "osprey_alerts_undecided 1200",
            "osprey_preprocess_lag_seconds 2.5",
        ] {
            assert!(has(&text, line), "missing {line} in:\n{text}");
        }
        assert!(text.contains("# TYPE osprey_runs gauge"), "{text}");
        // The next scrape sets them again: a status that emptied goes back to 0.
        let text = m.encode(&Snapshot::default());
        assert!(has(&text, r#"osprey_runs{status="completed"} 0"#), "{text}");
    }

    #[test]
    fn step_durations_are_a_histogram_in_seconds() {
        let m = Metrics::new();
        m.step_recorded("invoke", 30);
        m.step_recorded("invoke", 2000);
        m.step_recorded("log", 0);
        let text = m.encode(&Snapshot::default());
        for line in [
            r#"osprey_run_step_duration_seconds_count{kind="invoke"} 2"#,
            r#"osprey_run_step_duration_seconds_sum{kind="invoke"} 2.03"#,
            r#"osprey_run_step_duration_seconds_bucket{le="0.025",kind="invoke"} 0"#,
            r#"osprey_run_step_duration_seconds_bucket{le="0.05",kind="invoke"} 1"#,
            r#"osprey_run_step_duration_seconds_bucket{le="2.5",kind="invoke"} 2"#,
            r#"osprey_run_step_duration_seconds_bucket{le="+Inf",kind="invoke"} 2"#,
            r#"osprey_run_step_duration_seconds_count{kind="log"} 1"#,
        ] {
            assert!(has(&text, line), "missing {line} in:\n{text}");
        }
        assert!(
            text.contains("# TYPE osprey_run_step_duration_seconds histogram"),
            "{text}"
        );
    }

    #[test]
    fn outside_label_values_are_cut_escaped_and_bounded() {
        let m = Metrics::new();
        let long = "x".repeat(200);
        m.alerts_ingested(&long, 1);
        m.alerts_ingested("say \"hi\"\n", 1);
        for i in 0..MAX_LABEL_VALUES + 10 {
            m.alerts_ingested(&format!("made-up-{i}"), 1);
        }
        // A value seen before the cap keeps its own series.
        m.alerts_ingested("made-up-0", 1);
        let text = m.encode(&Snapshot::default());
        let cut = format!(
            r#"osprey_alerts_ingested_total{{source="{}"}} 1"#,
            "x".repeat(MAX_LABEL_LEN)
        );
        assert!(has(&text, &cut), "{text}");
        assert!(
            has(&text, r#"osprey_alerts_ingested_total{source="say \"hi\"\n"} 1"#),
            "{text}"
        );
        assert!(
            has(&text, r#"osprey_alerts_ingested_total{source="made-up-0"} 2"#),
            "{text}"
        );
        // 2 values were taken before the loop, so 98 of its 110 got their own series.
        assert!(
            has(&text, r#"osprey_alerts_ingested_total{source="other"} 12"#),
            "{text}"
        );
        let series = samples(&text)
            .iter()
            .filter(|l| l.starts_with("osprey_alerts_ingested_total"))
            .count();
        assert_eq!(series, MAX_LABEL_VALUES + 1);
        // Each label has its own budget: rules are not crowded out by sources.
        m.alerts_preprocessed(Preprocessed::Dropped, Some("noise"), 1);
        let text = m.encode(&Snapshot::default());
        assert!(
            has(
                &text,
                r#"osprey_alerts_preprocessed_total{outcome="dropped",rule="noise"} 1"#
            ),
            "{text}"
        );
    }
}
