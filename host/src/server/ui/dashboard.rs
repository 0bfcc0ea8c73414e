//! `GET /`: the dashboard, charts of the last 7, 14 or 30 days (`?days=`): open incidents by
//! severity, alerts per source and day, what pre-processing did with the alerts, runs by
//! outcome, SLA breaches per day, and the analyst time the playbooks saved (completed runs ×
//! the `minutes_saved` each playbook declares), and the playbooks' charts pinned with
//! `pin = true` (`playbook_charts.rs`; for those who may read playbooks). A requester, who
//! has no dashboard, is sent to the inbox.

use super::charts::{self, ChartError};
use super::{failed, may, page};
use crate::app::App;
use crate::rbac::Permission;
use crate::server::web::WebUser;
use crate::store::counts::UNFINISHED;
use crate::store::now_ms;
use crate::store::stats::{DAY_MS, Dashboard};
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use minijinja::Value;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The periods the dashboard offers, in days; the first is the default.
const PERIODS: [i64; 3] = [14, 7, 30];
/// Sources drawn as their own line; the rest are summed as "other".
const MAX_SOURCES: usize = 6;
const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];

#[derive(Serialize)]
struct Chart {
    id: &'static str,
    title: &'static str,
    /// None when there is nothing to draw.
    svg: Option<String>,
    caption: String,
}

pub(super) async fn show(user: WebUser, State(app): State<Arc<App>>, uri: Uri) -> Response {
    if !may(&user, Permission::DashboardRead) {
        return super::see_other("/inbox");
    }
    let days = super::query_params(&uri)
        .get("days")
        .and_then(|d| d.parse::<i64>().ok())
        .filter(|d| PERIODS.contains(d))
        .unwrap_or(PERIODS[0]);
    let today = now_ms() / DAY_MS;
    let first_day = today - days + 1;
    let counts = match app.store.dashboard(first_day).await {
        Ok(c) => c,
        Err(e) => return failed(&user, e),
    };
    let minutes: BTreeMap<String, u32> = app
        .playbooks
        .list()
        .iter()
        .filter_map(|p| p.meta.minutes_saved.map(|m| (p.name().to_owned(), m)))
        .collect();
    let (charts, saved_hours) = match draw(&counts, first_day, today, &minutes) {
        Ok(c) => c,
        Err(e) => return failed(&user, e),
    };
    // Playbooks' pinned charts, for those who may read playbooks.
    let pinned = if may(&user, Permission::PlaybooksRead) {
        match super::playbook_charts::pinned(&app).await {
            Ok(p) => p,
            Err(e) => return failed(&user, e),
        }
    } else {
        Vec::new()
    };
    let periods: Vec<BTreeMap<&str, Value>> = PERIODS
        .iter()
        .map(|d| BTreeMap::from([("days", Value::from(*d)), ("current", Value::from(*d == days))]))
        .collect();
    page(
        &user,
        StatusCode::OK,
        "dashboard.html",
        "Dashboard",
        serde_json::json!({ "charts": charts, "pinned": pinned, "days": days, "periods": periods, "saved_hours": saved_hours }),
    )
}

/// "MM-DD" of a day number.
fn day_label(day: i64) -> String {
    chrono::DateTime::from_timestamp_millis(day * DAY_MS)
        .map(|t| t.format("%m-%d").to_string())
        .unwrap_or_else(|| day.to_string())
}

fn count(rows: &[(String, i64)], key: &str) -> i64 {
    rows.iter().filter(|(k, _)| k == key).map(|(_, n)| n).sum()
}

fn percent(part: i64, whole: i64) -> String {
    if whole == 0 {
        "0%".into()
    } else {
        format!("{:.0}%", part as f64 * 100.0 / whole as f64)
    }
}

/// Every chart, and the hours saved.
fn draw(
    c: &Dashboard,
    first_day: i64,
    today: i64,
    minutes: &BTreeMap<String, u32>,
) -> Result<(Vec<Chart>, f64), ChartError> {
    let days: Vec<i64> = (first_day..=today).collect();
    let day_labels: Vec<String> = days.iter().map(|d| day_label(*d)).collect();
    let mut charts = Vec::new();

    // Open incidents by severity (the known severities in order, then any other).
    let mut severities: Vec<String> = SEVERITIES.iter().map(|s| (*s).to_owned()).collect();
    for (s, _) in &c.open_by_severity {
        if !severities.contains(s) {
            severities.push(s.clone());
        }
    }
    let open: Vec<f64> = severities
        .iter()
        .map(|s| count(&c.open_by_severity, s) as f64)
        .collect();
    let total_open: i64 = c.open_by_severity.iter().map(|(_, n)| n).sum();
    charts.push(Chart {
        id: "open-incidents",
        title: "Open incidents by severity",
        svg: Some(charts::bars(&severities, &[("open".into(), open)], false)?),
        caption: format!(
            "{total_open} open incident(s); {} critical, {} high.",
            count(&c.open_by_severity, "critical"),
            count(&c.open_by_severity, "high")
        ),
    });

    // Alerts per source and day: the busiest sources, the rest as "other".
    let mut totals: BTreeMap<&str, i64> = BTreeMap::new();
    for (source, _, n) in &c.alerts_by_source_day {
        *totals.entry(source.as_str()).or_default() += n;
    }
    let mut by_total: Vec<(&str, i64)> = totals.into_iter().collect();
    by_total.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let shown: Vec<&str> = by_total.iter().take(MAX_SOURCES).map(|(s, _)| *s).collect();
    let mut lines: Vec<(String, Vec<f64>)> = shown
        .iter()
        .map(|s| ((*s).to_owned(), vec![0.0; days.len()]))
        .collect();
    let mut other = vec![0.0; days.len()];
    for (source, day, n) in &c.alerts_by_source_day {
        let Some(i) = days.iter().position(|d| d == day) else {
            continue;
        };
        match shown.iter().position(|s| s == source) {
            Some(j) => lines[j].1[i] += *n as f64,
            None => other[i] += *n as f64,
        }
    }
    if other.iter().any(|n| *n > 0.0) {
        lines.push(("other".into(), other));
    }
    let total_alerts: i64 = by_total.iter().map(|(_, n)| n).sum();
    charts.push(Chart {
        id: "alerts-per-source",
        title: "Alerts per source per day",
        svg: Some(charts::lines(&day_labels, &lines)?),
        caption: format!("{total_alerts} alert(s) from {} source(s).", by_total.len()),
    });

    // What pre-processing did with them.
    let names = [
        ("dropped", "dropped"),
        ("duplicate", "deduplicated"),
        ("incident", "incident"),
        ("linked", "linked"),
        ("unmatched", "unmatched"),
        ("pending", "pending"),
    ];
    let slices: Vec<(String, f64)> = names
        .iter()
        .map(|(k, label)| ((*label).to_owned(), count(&c.alerts_by_disposition, k) as f64))
        .collect();
    let handled: i64 = c.alerts_by_disposition.iter().map(|(_, n)| n).sum();
    charts.push(Chart {
        id: "preprocessing",
        title: "What pre-processing did with the alerts",
        svg: charts::pie(&slices)?,
        caption: format!(
            "{} dropped and {} deduplicated of {handled} alert(s): no analyst saw them.",
            percent(count(&c.alerts_by_disposition, "dropped"), handled),
            percent(count(&c.alerts_by_disposition, "duplicate"), handled),
        ),
    });

    // Runs by outcome (those queued, running or waiting are counted together).
    let outcomes = [
        ("completed", "completed"),
        ("failed", "failed"),
        ("dead", "dead"),
        ("cancelled", "cancelled"),
        (UNFINISHED, "in progress"),
    ];
    let slices: Vec<(String, f64)> = outcomes
        .iter()
        .map(|(o, label)| ((*label).to_owned(), count(&c.runs_by_status, o) as f64))
        .collect();
    let runs: i64 = c.runs_by_status.iter().map(|(_, n)| n).sum();
    charts.push(Chart {
        id: "runs",
        title: "Playbook runs by outcome",
        svg: charts::pie(&slices)?,
        caption: format!(
            "{runs} run(s): {} completed, {} failed.",
            count(&c.runs_by_status, "completed"),
            count(&c.runs_by_status, "failed") + count(&c.runs_by_status, "dead")
        ),
    });

    // SLA breaches per day, piled by timer.
    let mut timers: Vec<&str> = c
        .breaches_by_timer_day
        .iter()
        .map(|(t, _, _)| t.as_str())
        .collect();
    timers.dedup();
    let series: Vec<(String, Vec<f64>)> = timers
        .iter()
        .map(|t| {
            let data = days
                .iter()
                .map(|d| {
                    c.breaches_by_timer_day
                        .iter()
                        .filter(|(tt, dd, _)| tt == t && dd == d)
                        .map(|(_, _, n)| *n as f64)
                        .sum()
                })
                .collect();
            ((*t).to_owned(), data)
        })
        .collect();
    let breaches: i64 = c.breaches_by_timer_day.iter().map(|(_, _, n)| n).sum();
    let series = if series.is_empty() {
        vec![("breaches".to_owned(), vec![0.0; days.len()])]
    } else {
        series
    };
    charts.push(Chart {
        id: "sla-breaches",
        title: "SLA breaches per day",
        svg: Some(charts::bars(&day_labels, &series, true)?),
        caption: format!("{breaches} SLA timer(s) breached."),
    });

    // Analyst time saved: completed runs × the minutes each playbook declares.
    let mut saved: Vec<(String, f64, i64)> = c
        .completed_by_playbook
        .iter()
        .filter_map(|(p, n)| {
            minutes
                .get(p)
                .map(|m| (p.clone(), (*n * i64::from(*m)) as f64 / 60.0, *n))
        })
        .filter(|(_, h, _)| *h > 0.0)
        .collect();
    saved.sort_by(|a, b| b.1.total_cmp(&a.1));
    // (A sum of no floats is -0.0.)
    let hours: f64 = saved.iter().map(|(_, h, _)| h).sum::<f64>().max(0.0);
    let without: Vec<&str> = c
        .completed_by_playbook
        .iter()
        .filter(|(p, _)| !minutes.contains_key(p))
        .map(|(p, _)| p.as_str())
        .collect();
    let names: Vec<String> = saved.iter().map(|(p, _, _)| p.clone()).collect();
    let values: Vec<f64> = saved.iter().map(|(_, h, _)| (h * 10.0).round() / 10.0).collect();
    charts.push(Chart {
        id: "time-saved",
        title: "Analyst time saved (hours)",
        svg: if names.is_empty() {
            None
        } else {
            Some(charts::horizontal_bars(&names, "hours", &values)?)
        },
        caption: format!(
            "About {hours:.1} hour(s) saved by {} completed run(s), counted as runs × the minutes_saved each playbook declares.{}",
            saved.iter().map(|(_, _, n)| n).sum::<i64>(),
            if without.is_empty() {
                String::new()
            } else {
                format!(" Not counted (no minutes_saved): {}.", without.join(", "))
            }
        ),
    });
    Ok((charts, (hours * 10.0).round() / 10.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_charts_add_up_what_the_store_counted() {
        let today = 20_000;
        let c = Dashboard {
            open_by_severity: vec![("critical".into(), 2), ("low".into(), 1)],
            alerts_by_source_day: vec![("syslog".into(), today, 5), ("edr".into(), today - 1, 3)],
            alerts_by_disposition: vec![
                ("dropped".into(), 6),
                ("duplicate".into(), 1),
                ("incident".into(), 1),
            ],
            runs_by_status: vec![("completed".into(), 4), ("failed".into(), 1)],
            completed_by_playbook: vec![("guard".into(), 4), ("other".into(), 2)],
            breaches_by_timer_day: vec![("acknowledge".into(), today, 2)],
        };
        let minutes = BTreeMap::from([("guard".to_owned(), 30)]);
        let (charts, hours) = draw(&c, today - 13, today, &minutes).unwrap();
        assert_eq!(hours, 2.0);
        let caption = |id: &str| charts.iter().find(|c| c.id == id).unwrap().caption.clone();
        assert!(caption("open-incidents").starts_with("3 open incident(s); 2 critical"));
        assert!(caption("alerts-per-source").starts_with("8 alert(s) from 2 source(s)"));
        assert!(caption("preprocessing").starts_with("75% dropped and 12% deduplicated of 8"));
        assert!(caption("runs").starts_with("5 run(s): 4 completed, 1 failed"));
        assert!(caption("sla-breaches").starts_with("2 SLA"));
        assert!(caption("time-saved").contains("2.0 hour(s) saved by 4 completed run(s)"));
        assert!(caption("time-saved").contains("Not counted (no minutes_saved): other."));
        assert_eq!(charts.len(), 6);
    }
}
