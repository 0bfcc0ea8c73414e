//! Playbook dashboards on the console: each `[[chart]]` of a playbook drawn by `charts.rs`
//! (charts-rs) from the data the API answers (`api::playbook_charts::read`), on the
//! playbook's page, and the pinned ones (`pin = true`) on the dashboard.

use super::charts::{self, ChartError};
use crate::app::App;
use crate::playbook::Playbook;
use crate::playbook::chart::{Bucket, ChartKind, ChartSpec};
use crate::server::api::playbook_charts::{ChartData, ReadError, read};
use serde::Serialize;

/// A chart as a page shows it.
#[derive(Debug, Serialize)]
pub(super) struct Shown {
    playbook: String,
    name: String,
    title: String,
    /// None when there is nothing to draw.
    svg: Option<String>,
    caption: String,
    /// A top chart's rows: (group, value), under the group's field and what is summed.
    rows: Vec<(String, String)>,
    group: String,
    what: String,
}

/// Why a chart could not be shown.
#[derive(Debug, thiserror::Error)]
pub(super) enum ShowError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Draw(#[from] ChartError),
}

/// A value as a caption or table shows it: whole numbers without decimals.
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.2}")
    }
}

/// A bucket's label: "MM-DD" by day, "MM-DD HH:00" by hour (UTC).
fn label(at: i64, bucket: Bucket) -> String {
    let format = match bucket {
        Bucket::Day => "%m-%d",
        Bucket::Hour => "%m-%d %H:00",
    };
    chrono::DateTime::from_timestamp_millis(at)
        .map(|t| t.format(format).to_string())
        .unwrap_or_else(|| at.to_string())
}

/// Draw one chart's data.
fn draw(d: &ChartData) -> Result<Shown, ChartError> {
    let what = match &d.sum {
        Some(field) => format!("sum of {field}"),
        None => "points".to_owned(),
    };
    let days = (d.until - d.since).div_euclid(crate::store::stats::DAY_MS).max(1);
    let (svg, total, rows) = match d.kind {
        ChartKind::Top => {
            let names: Vec<String> = d.rows.iter().map(|r| r.key.clone()).collect();
            let values: Vec<f64> = d.rows.iter().map(|r| r.value).collect();
            let svg = if names.is_empty() {
                None
            } else {
                Some(charts::horizontal_bars(&names, &what, &values)?)
            };
            let rows = d.rows.iter().map(|r| (r.key.clone(), number(r.value))).collect();
            (svg, values.iter().sum::<f64>(), rows)
        }
        ChartKind::Line | ChartKind::Bar => {
            let bucket = d.bucket.unwrap_or_default();
            let labels: Vec<String> = d.points.iter().map(|p| label(p.at, bucket)).collect();
            let values: Vec<f64> = d.points.iter().map(|p| p.value).collect();
            let series = [(what.clone(), values.clone())];
            let svg = if d.kind == ChartKind::Line {
                charts::lines(&labels, &series)?
            } else {
                charts::bars(&labels, &series, false)?
            };
            (Some(svg), values.iter().sum::<f64>(), Vec::new())
        }
    };
    // (A sum of no floats is -0.0.)
    let total = total.max(0.0);
    Ok(Shown {
        playbook: d.playbook.clone(),
        name: d.chart.clone(),
        title: d.title.clone(),
        svg,
        caption: format!(
            "{} {what} in the last {days} day(s), from series '{}'.",
            number(total),
            d.series
        ),
        rows,
        group: d.group.clone().unwrap_or_default(),
        what,
    })
}

/// Read and draw `spec` of `playbook` over its window.
pub(super) async fn show(app: &App, playbook: &Playbook, spec: &ChartSpec) -> Result<Shown, ShowError> {
    let data = read(&app.store, playbook, spec, None, crate::store::now_ms()).await?;
    Ok(draw(&data)?)
}

/// Every chart of `playbook`.
pub(super) async fn of_playbook(app: &App, playbook: &Playbook) -> Result<Vec<Shown>, ShowError> {
    let mut shown = Vec::new();
    for c in &playbook.meta.charts {
        shown.push(show(app, playbook, c.get_ref()).await?);
    }
    Ok(shown)
}

/// The charts pinned to the dashboard (`pin = true`), by playbook.
pub(super) async fn pinned(app: &App) -> Result<Vec<Shown>, ShowError> {
    let mut shown = Vec::new();
    for p in app.playbooks.list().iter() {
        for c in p.meta.charts.iter().filter(|c| c.get_ref().pin) {
            shown.push(show(app, p, c.get_ref()).await?);
        }
    }
    Ok(shown)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::api::playbook_charts::{BucketValue, GroupValue};

    fn data(kind: ChartKind) -> ChartData {
        let day = 86_400_000;
        ChartData {
            playbook: "bonus".into(),
            chart: "gifts".into(),
            title: "Points given".into(),
            kind,
            series: "gifts".into(),
            bucket: Some(Bucket::Day),
            sum: Some("points".into()),
            group: None,
            since: 20_000 * day,
            until: 20_002 * day,
            points: vec![
                BucketValue {
                    at: 20_000 * day,
                    value: 20.0,
                },
                BucketValue {
                    at: 20_001 * day,
                    value: 5.0,
                },
            ],
            rows: vec![GroupValue {
                key: "<ann>".into(),
                value: 15.0,
            }],
        }
    }

    #[test]
    fn charts_over_time_and_top_tables_are_drawn_with_their_totals() {
        let line = draw(&data(ChartKind::Line)).unwrap();
        let svg = line.svg.unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("10-04"), "{svg}");
        assert_eq!(
            line.caption,
            "25 sum of points in the last 2 day(s), from series 'gifts'."
        );
        let bar = draw(&data(ChartKind::Bar)).unwrap();
        assert!(bar.svg.unwrap().contains("<rect"));
        let top = draw(&data(ChartKind::Top)).unwrap();
        assert_eq!(top.rows, vec![("<ann>".to_owned(), "15".to_owned())]);
        let svg = top.svg.unwrap();
        assert!(svg.contains("&lt;ann&gt;") && !svg.contains("<ann>"), "{svg}");
    }
}
