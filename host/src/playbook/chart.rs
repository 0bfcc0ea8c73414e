//! Playbook dashboards: the data points a script records (`record("gifts", #{ to, points })`)
//! and the charts `playbook.toml` declares over them (`[[chart]]`). Pure: the checks of a
//! point and of a declaration, and the bounded window a chart is read over. The store keeps
//! the points (`store/points.rs`) and sums them in SQL; the console draws them.
//!
//! ```toml
//! [[chart]]
//! name = "gifts"              # in the URL: /api/v1/playbooks/NAME/charts/gifts
//! title = "Points given"
//! series = "gifts"            # what record("gifts", ...) wrote
//! kind = "line"               # line | bar (over time) | top (a top-N table)
//! bucket = "day"              # hour | day (line and bar; default day)
//! sum = "points"              # a numeric field to sum; without it, points are counted
//! group = "to"                # top only: the field the rows are grouped by
//! top = 10                    # top only: how many rows (default 10, at most 50)
//! window = "30d"              # how far back by default (default 30 days, 2 days by hour)
//! pin = true                  # also shown on the console's dashboard
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// The largest point, as JSON text.
pub const MAX_POINT_BYTES: usize = 4096;
/// How deep a point may nest (a map of maps of ...).
pub const MAX_POINT_DEPTH: usize = 4;
/// The points one run may record; past it `record` fails.
pub const MAX_POINTS_PER_RUN: usize = 10_000;
/// The most buckets a line or bar chart is read over (400 days, or 400 hours).
pub const MAX_BUCKETS: i64 = 400;
/// The longest window of a top chart: as long as the longest over time.
pub const MAX_WINDOW_MS: i64 = MAX_BUCKETS * DAY_MS;
/// The most rows of a top chart.
pub const MAX_TOP: u32 = 50;
/// The longest field name a chart sums or groups by.
const MAX_FIELD_LEN: usize = 64;

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

/// What a chart draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ChartKind {
    /// A line over time.
    Line,
    /// Bars over time.
    Bar,
    /// The largest groups, as a table (and bars).
    Top,
}

/// The time buckets of a chart over time (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Hour,
    #[default]
    Day,
}

impl Bucket {
    /// The bucket's length in ms.
    pub fn ms(self) -> i64 {
        match self {
            Bucket::Hour => HOUR_MS,
            Bucket::Day => DAY_MS,
        }
    }
}

/// One `[[chart]]` of `playbook.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartSpec {
    /// Lower-case letters, digits and dashes; unique in the playbook.
    pub name: String,
    pub title: String,
    /// The series `record` wrote.
    pub series: String,
    pub kind: ChartKind,
    /// Line and bar: the bucket (default day).
    #[serde(default)]
    pub bucket: Option<Bucket>,
    /// A numeric field of the points to sum; without it, the points are counted.
    #[serde(default)]
    pub sum: Option<String>,
    /// Top: the field the rows are grouped by.
    #[serde(default)]
    pub group: Option<String>,
    /// Top: how many rows (default 10).
    #[serde(default)]
    pub top: Option<u32>,
    /// How far back the chart reads by default.
    #[serde(default, with = "crate::duration::opt_text")]
    pub window: Option<Duration>,
    /// Also shown on the console's dashboard.
    #[serde(default)]
    pub pin: bool,
}

/// A declaration, a point or a window that is not right; the message says what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChartError {
    #[error("chart '{chart}': {message}")]
    Spec { chart: String, message: String },
    #[error("record: {0}")]
    Point(String),
    #[error("{0}")]
    Window(String),
}

/// What a chart reads: the points of a series from `since` (inclusive) to `until`
/// (exclusive), in buckets of `bucket_ms` or grouped by `group`, counted or summed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartQuery {
    pub series: String,
    pub since: i64,
    pub until: i64,
    /// Line and bar: the bucket's length; `since` is the start of a bucket.
    pub bucket_ms: Option<i64>,
    pub sum: Option<String>,
    /// Top: the field grouped by, and how many rows.
    pub group: Option<(String, u32)>,
}

/// A field name a chart may name: a plain identifier, so it is safe in a JSON path.
fn is_field(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_FIELD_LEN
        && (s.as_bytes()[0].is_ascii_alphabetic() || s.as_bytes()[0] == b'_')
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

impl ChartSpec {
    /// Check the declaration (at load, with the others of its playbook).
    pub fn check(&self) -> Result<(), ChartError> {
        let bad = |message: String| ChartError::Spec {
            chart: self.name.clone(),
            message,
        };
        crate::names::check("chart", &self.name).map_err(|e| bad(e.to_string()))?;
        crate::names::check("series", &self.series).map_err(|e| bad(e.to_string()))?;
        if self.title.trim().is_empty() || self.title.chars().count() > 200 {
            return Err(bad("needs a `title`, at most 200 characters".into()));
        }
        for (key, field) in [("sum", &self.sum), ("group", &self.group)] {
            if let Some(f) = field
                && !is_field(f)
            {
                return Err(bad(format!(
                    "{key} '{f}' must be a field name: letters, digits and '_', at most {MAX_FIELD_LEN}"
                )));
            }
        }
        match self.kind {
            ChartKind::Top => {
                if self.group.is_none() {
                    return Err(bad(
                        "a top chart needs `group`, the field its rows are grouped by".into(),
                    ));
                }
                if self.bucket.is_some() {
                    return Err(bad("a top chart has no `bucket` (it is not over time)".into()));
                }
                if let Some(n) = self.top
                    && !(1..=MAX_TOP).contains(&n)
                {
                    return Err(bad(format!("top must be 1 to {MAX_TOP}, not {n}")));
                }
            }
            ChartKind::Line | ChartKind::Bar => {
                if self.group.is_some() || self.top.is_some() {
                    return Err(bad(
                        "`group` and `top` are for kind = \"top\"; a line or bar is over time".into(),
                    ));
                }
            }
        }
        let window = self.window_ms();
        if window < self.bucket().ms() {
            return Err(bad(format!(
                "the window must be at least one {:?} bucket",
                self.bucket()
            )));
        }
        if window > self.max_window_ms() {
            return Err(bad(format!(
                "the window is longer than {MAX_BUCKETS} buckets; shorten it or use bucket = \"day\""
            )));
        }
        Ok(())
    }

    /// The bucket (day when not said).
    pub fn bucket(&self) -> Bucket {
        self.bucket.unwrap_or_default()
    }

    /// The default window in ms: as declared, else 30 days (2 days by hour).
    pub fn window_ms(&self) -> i64 {
        match self.window {
            Some(w) => i64::try_from(w.as_millis()).unwrap_or(i64::MAX),
            None if self.bucket() == Bucket::Hour => 2 * DAY_MS,
            None => 30 * DAY_MS,
        }
    }

    fn max_window_ms(&self) -> i64 {
        match self.kind {
            ChartKind::Top => MAX_WINDOW_MS,
            _ => MAX_BUCKETS * self.bucket().ms(),
        }
    }

    /// What to read at `now`: from `since` (default: the window before now), at most
    /// [`MAX_BUCKETS`] buckets (or [`MAX_WINDOW_MS`] for a top chart), to `now`. A line or
    /// bar starts at the start of `since`'s bucket.
    pub fn query(&self, since: Option<i64>, now: i64) -> Result<ChartQuery, ChartError> {
        let max = self.max_window_ms();
        let until = match self.kind {
            ChartKind::Top => now,
            // The end of the current bucket, so it is drawn whole.
            _ => (now.div_euclid(self.bucket().ms()) + 1) * self.bucket().ms(),
        };
        let since = since.unwrap_or_else(|| until.saturating_sub(self.window_ms()));
        if since >= until {
            return Err(ChartError::Window(format!(
                "since {since} is not before now ({now}, Unix ms)"
            )));
        }
        if until.saturating_sub(since) > max {
            return Err(ChartError::Window(format!(
                "since {since} is too far back: chart '{}' reads at most {} days",
                self.name,
                max / DAY_MS
            )));
        }
        let (bucket_ms, since, group) = match self.kind {
            ChartKind::Top => (
                None,
                since,
                Some((self.group.clone().unwrap_or_default(), self.top.unwrap_or(10))),
            ),
            _ => {
                let b = self.bucket().ms();
                (Some(b), since.div_euclid(b) * b, None)
            }
        };
        Ok(ChartQuery {
            series: self.series.clone(),
            since,
            until,
            bucket_ms,
            sum: self.sum.clone(),
            group,
        })
    }
}

/// Check the charts of one playbook: each, and that no two share a name. The error comes
/// with the index of the chart it is about.
pub fn check_all<'a>(charts: impl IntoIterator<Item = &'a ChartSpec>) -> Result<(), (usize, ChartError)> {
    let mut seen = std::collections::BTreeSet::new();
    for (i, c) in charts.into_iter().enumerate() {
        c.check().map_err(|e| (i, e))?;
        if !seen.insert(c.name.as_str()) {
            let e = ChartError::Spec {
                chart: c.name.clone(),
                message: "another chart of this playbook has this name".into(),
            };
            return Err((i, e));
        }
    }
    Ok(())
}

/// Check a point before it is recorded: a series name, and a map at most
/// [`MAX_POINT_DEPTH`] deep and [`MAX_POINT_BYTES`] long as JSON.
pub fn check_point(series: &str, point: &Value) -> Result<(), ChartError> {
    crate::names::check("series", series).map_err(|e| ChartError::Point(e.to_string()))?;
    if !point.is_object() {
        return Err(ChartError::Point(
            "the point must be a map, such as #{ points: 10 }".into(),
        ));
    }
    crate::nesting::check(point, MAX_POINT_DEPTH)
        .map_err(|e| ChartError::Point(format!("the point is {e}; at most {MAX_POINT_DEPTH}")))?;
    let len = point.to_string().len();
    if len > MAX_POINT_BYTES {
        return Err(ChartError::Point(format!(
            "the point is {len} bytes as JSON; at most {MAX_POINT_BYTES}"
        )));
    }
    Ok(())
}

/// The buckets from `q.since` to `q.until`, each with the value the store found for it
/// (`found`: bucket start and value, any order), 0 where it found none.
pub fn fill(q: &ChartQuery, found: &[(i64, f64)]) -> Vec<(i64, f64)> {
    let Some(b) = q.bucket_ms else {
        return Vec::new();
    };
    (0..)
        .map(|i| q.since + i * b)
        .take_while(|t| *t < q.until)
        .take(MAX_BUCKETS as usize + 1)
        .map(|t| {
            let v = found.iter().filter(|(at, _)| *at == t).map(|(_, v)| v).sum();
            (t, v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(toml_text: &str) -> ChartSpec {
        toml::from_str(toml_text).unwrap()
    }

    const LINE: &str =
        "name = \"gifts\"\ntitle = \"Points given\"\nseries = \"gifts\"\nkind = \"line\"\nsum = \"points\"\n";

    #[test]
    fn a_line_reads_whole_buckets_back_to_its_window() {
        let s = spec(LINE);
        s.check().unwrap();
        let now = 100 * DAY_MS + 5 * HOUR_MS;
        let q = s.query(None, now).unwrap();
        assert_eq!(q.until, 101 * DAY_MS, "to the end of today");
        assert_eq!(q.since, 71 * DAY_MS, "30 days");
        assert_eq!(q.bucket_ms, Some(DAY_MS));
        assert_eq!(q.sum.as_deref(), Some("points"));
        // A since inside a day starts at that day.
        let q = s.query(Some(99 * DAY_MS + 7), now).unwrap();
        assert_eq!(q.since, 99 * DAY_MS);
        let filled = fill(&q, &[(100 * DAY_MS, 20.0), (99 * DAY_MS, 5.0)]);
        assert_eq!(filled, vec![(99 * DAY_MS, 5.0), (100 * DAY_MS, 20.0)]);
    }

    #[test]
    fn a_window_past_the_bucket_limit_is_refused() {
        let s = spec(LINE);
        let now = 1000 * DAY_MS;
        let e = s.query(Some(now - 500 * DAY_MS), now).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "since {} is too far back: chart 'gifts' reads at most 400 days",
                now - 500 * DAY_MS
            )
        );
        assert!(
            s.query(Some(now + DAY_MS), now)
                .unwrap_err()
                .to_string()
                .contains("not before now")
        );
        let e = s.query(Some(i64::MIN), now).unwrap_err();
        assert!(e.to_string().contains("too far back"), "{e}");
        let hourly = spec(&format!("{LINE}bucket = \"hour\"\nwindow = \"30d\"\n"));
        assert_eq!(
            hourly.check().unwrap_err().to_string(),
            "chart 'gifts': the window is longer than 400 buckets; shorten it or use bucket = \"day\""
        );
        let hourly = spec(&format!("{LINE}bucket = \"hour\"\n"));
        hourly.check().unwrap();
        let q = hourly.query(None, now).unwrap();
        assert_eq!(
            (q.until - q.since) / HOUR_MS,
            48,
            "two days, to the end of this hour"
        );
        assert_eq!(fill(&q, &[]).len(), 48);
    }

    #[test]
    fn a_top_chart_groups_by_a_field() {
        let s = spec(
            "name = \"top-givers\"\ntitle = \"Who got most\"\nseries = \"gifts\"\nkind = \"top\"\ngroup = \"to\"\nsum = \"points\"\ntop = 3\n",
        );
        s.check().unwrap();
        let q = s.query(None, 100 * DAY_MS).unwrap();
        assert_eq!(q.group, Some(("to".into(), 3)));
        assert_eq!(q.bucket_ms, None);
        assert_eq!((q.since, q.until), (70 * DAY_MS, 100 * DAY_MS));
    }

    #[test]
    fn bad_declarations_say_what_is_wrong() {
        let cases = [
            (
                "name = \"Gifts\"\ntitle = \"t\"\nseries = \"gifts\"\nkind = \"line\"\n",
                "chart name 'Gifts'",
            ),
            (
                "name = \"g\"\ntitle = \"t\"\nseries = \"a b\"\nkind = \"line\"\n",
                "series name 'a b'",
            ),
            (
                "name = \"g\"\ntitle = \" \"\nseries = \"s\"\nkind = \"line\"\n",
                "needs a `title`",
            ),
            (
                "name = \"g\"\ntitle = \"t\"\nseries = \"s\"\nkind = \"line\"\nsum = \"a.b\"\n",
                "sum 'a.b' must be a field name",
            ),
            (
                "name = \"g\"\ntitle = \"t\"\nseries = \"s\"\nkind = \"top\"\n",
                "a top chart needs `group`",
            ),
            (
                "name = \"g\"\ntitle = \"t\"\nseries = \"s\"\nkind = \"top\"\ngroup = \"to\"\ntop = 500\n",
                "top must be 1 to 50",
            ),
            (
                "name = \"g\"\ntitle = \"t\"\nseries = \"s\"\nkind = \"top\"\ngroup = \"to\"\nbucket = \"day\"\n",
                "has no `bucket`",
            ),
            (
                "name = \"g\"\ntitle = \"t\"\nseries = \"s\"\nkind = \"bar\"\ngroup = \"to\"\n",
                "are for kind = \"top\"",
            ),
            (
                "name = \"g\"\ntitle = \"t\"\nseries = \"s\"\nkind = \"bar\"\nwindow = \"5m\"\n",
                "at least one Day bucket",
            ),
        ];
        for (text, want) in cases {
            let e = spec(text).check().unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        assert!(
            toml::from_str::<ChartSpec>("name = \"g\"\ntitle = \"t\"\nseries = \"s\"\nkind = \"pie\"\n")
                .is_err()
        );
        let twice = [spec(LINE), spec(LINE)];
        let (i, e) = check_all(&twice).unwrap_err();
        assert_eq!(i, 1);
        assert_eq!(
            e.to_string(),
            "chart 'gifts': another chart of this playbook has this name"
        );
    }

    #[test]
    fn points_are_bounded() {
        check_point("gifts", &json!({"to": "ann", "points": 10})).unwrap();
        let e = check_point("Gifts!", &json!({})).unwrap_err().to_string();
        assert!(e.starts_with("record: series name 'Gifts!'"), "{e}");
        let e = check_point("gifts", &json!(5)).unwrap_err().to_string();
        assert_eq!(e, "record: the point must be a map, such as #{ points: 10 }");
        let deep = json!({"a": {"b": {"c": {"d": {"e": 1}}}}});
        let e = check_point("gifts", &deep).unwrap_err().to_string();
        assert!(e.contains("nested more than 4 levels"), "{e}");
        let big = json!({ "text": "x".repeat(MAX_POINT_BYTES) });
        let e = check_point("gifts", &big).unwrap_err().to_string();
        assert!(e.contains("bytes as JSON; at most 4096"), "{e}");
    }
}
