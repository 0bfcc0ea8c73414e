//! Keyset pagination for the lists the API serves: a page is the rows after the last one
//! seen, in the order of a sort column and then the row's id (`WHERE (col, id) < ($a, $b)
//! ORDER BY col DESC, id DESC LIMIT n + 1`), never an OFFSET, so a page costs the same
//! wherever it starts and rows added meanwhile neither repeat nor skip others.
//!
//! Sort columns must be NOT NULL (a NULL would fall out of the comparison), and the id
//! unique, so that `(col, id)` orders every row exactly once. The id may be an expression
//! over the row's key (`kind || ':' || value` for indicators, whose key is two columns).

use super::{Result, StoreError};
use serde::{Deserialize, Serialize};

/// The value of a row's sort column, as carried in a cursor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SortKey {
    Int(i64),
    Text(String),
}

/// Which page to read: sorted by `column` (one of the list's allowed columns), then by id,
/// after the row `after` (its sort key and id), at most `limit` rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyset {
    pub column: &'static str,
    pub descending: bool,
    pub after: Option<(SortKey, String)>,
    pub limit: i64,
}

impl Keyset {
    /// The first page sorted by `column`, at most `limit` rows.
    pub fn first(column: &'static str, descending: bool, limit: i64) -> Keyset {
        Keyset {
            column,
            descending,
            after: None,
            limit,
        }
    }
}

/// The most rows one page may hold.
pub const MAX_PAGE_ROWS: i64 = 10_000;

/// One page of rows, and whether more follow it.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub more: bool,
}

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
pub(super) enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
}

impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Arg {
        Arg::Text(v.map(str::to_owned))
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Arg {
        Arg::Int(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Arg {
        Arg::Text(Some(v.to_owned()))
    }
}

impl From<i64> for Arg {
    fn from(v: i64) -> Arg {
        Arg::Int(Some(v))
    }
}

/// `select` (a `SELECT ... FROM ...` with no WHERE), filtered by `conditions` (SQL over
/// placeholders `$1..$n` for `args`), one page of it per `keyset`: `allowed` are the sort
/// columns this list permits and `id` its unique column (or expression). Reads `limit + 1`
/// rows to learn whether more follow.
pub(super) async fn fetch<R>(
    pool: &sqlx::AnyPool,
    select: &str,
    conditions: &str,
    mut args: Vec<Arg>,
    keyset: &Keyset,
    allowed: &[&str],
    id: &str,
) -> Result<Page<R>>
where
    R: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
{
    if !allowed.contains(&keyset.column) {
        return Err(StoreError::Invalid(format!(
            "cannot sort by '{}'; the sorts are: {}",
            keyset.column,
            allowed.join(", ")
        )));
    }
    if !(1..=MAX_PAGE_ROWS).contains(&keyset.limit) {
        return Err(StoreError::Invalid(format!(
            "cannot read {} rows at once: ask for 1 to {MAX_PAGE_ROWS}",
            keyset.limit
        )));
    }
    let column = keyset.column;
    let (cmp, dir) = if keyset.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    let mut sql = format!("{select} WHERE ({conditions})");
    if let Some((key, _)) = &keyset.after
        && column == id
    {
        // Sorted by the id itself (the audit log's seq): the key alone places the row.
        sql.push_str(&format!(" AND {column} {cmp} ${}", args.len() + 1));
        args.push(match key {
            SortKey::Int(n) => Arg::Int(Some(*n)),
            SortKey::Text(s) => Arg::Text(Some(s.clone())),
        });
    } else if let Some((key, after_id)) = &keyset.after {
        let (a, b) = (args.len() + 1, args.len() + 2);
        // Spelled out rather than a row value, for the same plan on both dialects.
        sql.push_str(&format!(
            " AND ({column} {cmp} ${a} OR ({column} = ${a} AND {id} {cmp} ${b}))"
        ));
        args.push(match key {
            SortKey::Int(n) => Arg::Int(Some(*n)),
            SortKey::Text(s) => Arg::Text(Some(s.clone())),
        });
        args.push(Arg::Text(Some(after_id.clone())));
    }
    let order = if column == id {
        format!("{column} {dir}")
    } else {
        format!("{column} {dir}, {id} {dir}")
    };
    sql.push_str(&format!(" ORDER BY {order} LIMIT ${}", args.len() + 1));
    args.push(Arg::Int(Some(keyset.limit + 1)));
    let mut query = sqlx::query_as::<_, R>(sqlx::AssertSqlSafe(sql));
    for arg in args {
        query = match arg {
            Arg::Int(v) => query.bind(v),
            Arg::Text(v) => query.bind(v),
        };
    }
    let mut items = query.fetch_all(pool).await?;
    let more = items.len() as i64 > keyset.limit;
    items.truncate(keyset.limit as usize);
    Ok(Page { items, more })
}

impl<T> Page<T> {
    /// The same page with each item mapped (a row to a record).
    pub(super) fn try_map<U>(self, f: impl FnMut(T) -> Result<U>) -> Result<Page<U>> {
        Ok(Page {
            items: self.items.into_iter().map(f).collect::<Result<_>>()?,
            more: self.more,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;
    use crate::store::alerts::{AlertFilter, StoredAlert};
    use crate::store::audit::{Actor, AuditFilter, Change};
    use crate::store::testing::both_dialects;

    /// Pages through alerts with `column`, collecting ids; `key_of` gives the cursor key.
    async fn all_alerts(
        store: &Store,
        filter: &AlertFilter<'_>,
        column: &'static str,
        descending: bool,
        key_of: fn(&StoredAlert) -> SortKey,
    ) -> (Vec<String>, usize) {
        let mut keyset = Keyset {
            column,
            descending,
            after: None,
            limit: 7,
        };
        let (mut ids, mut pages) = (Vec::new(), 0);
        loop {
            let page = store.alert_page(filter, &keyset).await.unwrap();
            pages += 1;
            assert!(page.items.len() <= 7);
            ids.extend(page.items.iter().map(|a| a.id.clone()));
            let Some(last) = page.items.last() else { break };
            if !page.more {
                break;
            }
            keyset.after = Some((key_of(last), last.id.clone()));
        }
        (ids, pages)
    }

    both_dialects!(alerts_page_without_duplicates_or_gaps, |store| {
        // 30 alerts over 3 sources, with received_at ties (3 alerts per millisecond).
        let json: Vec<serde_json::Value> = (0..30)
            .map(|i| serde_json::json!({"source": format!("s{}", i % 3), "title": format!("t{i}")}))
            .collect();
        let body = serde_json::to_vec(&json).unwrap();
        let items = crate::intake::parse_items(crate::intake::Format::Json, &body, "json");
        let alerts: Vec<StoredAlert> = items
            .into_iter()
            .enumerate()
            .map(|(i, item)| {
                StoredAlert::new(
                    crate::store::new_id('a'),
                    1000 + (i as i64) / 3,
                    "test",
                    item.alert.unwrap(),
                )
            })
            .collect();
        let mut expected: Vec<(i64, String)> = alerts.iter().map(|a| (a.received_at, a.id.clone())).collect();
        store.insert_alerts(alerts.clone()).await.unwrap();

        let none = AlertFilter::default();
        let (ids, pages) =
            all_alerts(store, &none, "received_at", true, |a| SortKey::Int(a.received_at)).await;
        expected.sort();
        expected.reverse();
        assert_eq!(ids, expected.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>());
        assert_eq!(pages, 5);

        // Ascending by a text column with ties (source): every alert once, sources in order.
        let (ids, _) = all_alerts(store, &none, "source", false, |a| {
            SortKey::Text(a.alert.source.clone())
        })
        .await;
        let mut by_source: Vec<(String, String)> = alerts
            .iter()
            .map(|a| (a.alert.source.clone(), a.id.clone()))
            .collect();
        by_source.sort();
        assert_eq!(
            ids,
            by_source.iter().map(|(_, id)| id.clone()).collect::<Vec<_>>()
        );

        // Filters: a source, and a time window [1002, 1005).
        let s1 = AlertFilter {
            source: Some("s1"),
            ..AlertFilter::default()
        };
        let (ids, _) = all_alerts(store, &s1, "received_at", true, |a| SortKey::Int(a.received_at)).await;
        assert_eq!(ids.len(), 10);
        let window = AlertFilter {
            since: Some(1002),
            until: Some(1005),
            disposition: Some("pending"),
            ..AlertFilter::default()
        };
        let (ids, _) = all_alerts(store, &window, "received_at", false, |a| {
            SortKey::Int(a.received_at)
        })
        .await;
        assert_eq!(ids.len(), 9);
        let dropped = AlertFilter {
            disposition: Some("dropped"),
            ..AlertFilter::default()
        };
        assert!(
            store
                .alert_page(
                    &dropped,
                    &Keyset {
                        column: "received_at",
                        descending: true,
                        after: None,
                        limit: 5
                    }
                )
                .await
                .unwrap()
                .items
                .is_empty()
        );

        // A column not in the list's sorts is refused, never put into SQL.
        let bad = Keyset {
            column: "title",
            descending: false,
            after: None,
            limit: 5,
        };
        assert!(matches!(
            store.alert_page(&none, &bad).await,
            Err(StoreError::Invalid(_))
        ));
    });

    both_dialects!(audit_pages_in_seq_order, |store| {
        let actor = Actor::system();
        for i in 0..25 {
            let change = Change {
                actor: &actor,
                action: if i % 2 == 0 { "test.even" } else { "test.odd" },
                target: format!("thing:{}", i % 5),
                details: serde_json::json!({ "i": i }),
            };
            store.audit(&change).await.unwrap();
        }
        let filter = AuditFilter {
            action: Some("test."),
            ..AuditFilter::default()
        };
        let (mut after, mut seen) = (0, Vec::new());
        loop {
            let page = store.audit_page(&filter, after, 10).await.unwrap();
            seen.extend(page.items.iter().map(|e| e.details["i"].as_i64().unwrap()));
            if !page.more {
                break;
            }
            after = page.items.last().unwrap().seq;
        }
        assert_eq!(seen, (0..25).collect::<Vec<_>>());
        let odd_on_1 = AuditFilter {
            action: Some("test.odd"),
            actor: Some("system"),
            target: Some("thing:1"),
        };
        let page = store.audit_page(&odd_on_1, 0, 500).await.unwrap();
        let is: Vec<i64> = page
            .items
            .iter()
            .map(|e| e.details["i"].as_i64().unwrap())
            .collect();
        assert_eq!(is, vec![1, 11, 21]);
        assert!(!page.more);
        // Newest first, with the same filter, a page at a time.
        let newest = every_page(
            "seq",
            true,
            4,
            async |k| store.audit_page_sorted(&filter, k).await.unwrap(),
            |e| (SortKey::Int(e.seq), e.seq.to_string()),
        )
        .await;
        let is: Vec<i64> = newest.iter().map(|e| e.details["i"].as_i64().unwrap()).collect();
        assert_eq!(is, (0..25).rev().collect::<Vec<_>>());
    });

    /// Every item of a list, a page of `limit` at a time in the order of `column`
    /// (`descending`), with `next` reading one page and `key_of` an item's sort key and id.
    async fn every_page<T>(
        column: &'static str,
        descending: bool,
        limit: i64,
        mut next: impl AsyncFnMut(&Keyset) -> Page<T>,
        key_of: impl Fn(&T) -> (SortKey, String),
    ) -> Vec<T> {
        let mut keyset = Keyset::first(column, descending, limit);
        let mut all = Vec::new();
        loop {
            let page = next(&keyset).await;
            assert!(page.items.len() as i64 <= limit);
            keyset.after = page.items.last().map(&key_of);
            let more = page.more;
            all.extend(page.items);
            if !more {
                return all;
            }
        }
    }

    both_dialects!(
        incidents_tasks_and_indicators_page_without_duplicates_or_gaps,
        |store| {
            use crate::intake::Severity;
            use crate::store::incidents::{IncidentFilter, NewIncident};
            use crate::store::indicators::{IndicatorFilter, IndicatorKind, Verdict};
            use crate::store::tasks::{NewTask, TaskFilter};
            let cli = Actor::cli();

            // Nine incidents over three severities, titles t8 down to t0, each with a task for
            // the soc team; two more tasks for bob.
            store
                .create_user("alice", None, &["soc".into()], &cli)
                .await
                .unwrap();
            store
                .create_user("bob", None, &["net".into()], &cli)
                .await
                .unwrap();
            for i in 0..9 {
                let severity = [Severity::Low, Severity::High, Severity::Critical][i % 3];
                let new = NewIncident::new("phishing", &format!("t{}", 8 - i), severity);
                let id = store.create_incident(&new, &[], &cli, None).await.unwrap();
                let task = NewTask {
                    incident_id: Some(id),
                    title: format!("task {i}"),
                    role: Some("soc".into()),
                    ..NewTask::default()
                };
                store.create_task(&task, &cli, None).await.unwrap();
            }
            for i in 0..2 {
                let task = NewTask {
                    title: format!("bob's {i}"),
                    assignee: Some("bob".into()),
                    ..NewTask::default()
                };
                store.create_task(&task, &cli, None).await.unwrap();
            }

            let any = IncidentFilter::default();
            let newest = store.incidents(None, 100).await.unwrap();
            let paged = every_page(
                "created_at",
                true,
                4,
                async |k| store.incident_page(&any, k).await.unwrap(),
                |i| (SortKey::Int(i.created_at), i.id.clone()),
            )
            .await;
            assert_eq!(paged, newest);
            assert_eq!(paged.len(), 9);
            let by_title = every_page(
                "title",
                false,
                2,
                async |k| store.incident_page(&any, k).await.unwrap(),
                |i| (SortKey::Text(i.title.clone()), i.id.clone()),
            )
            .await;
            let titles: Vec<String> = by_title.iter().map(|i| i.title.clone()).collect();
            assert_eq!(titles, (0..9).map(|i| format!("t{i}")).collect::<Vec<_>>());
            let high = IncidentFilter {
                severity: Some(Severity::High),
                status: Some(crate::store::incidents::IncidentStatus::New),
                ..IncidentFilter::default()
            };
            let found = every_page(
                "updated_at",
                true,
                1,
                async |k| store.incident_page(&high, k).await.unwrap(),
                |i| (SortKey::Int(i.updated_at), i.id.clone()),
            )
            .await;
            assert_eq!(found.len(), 3);
            assert!(found.iter().all(|i| i.severity == Severity::High));

            // Tasks alice may complete (her team's), two a page, oldest first; bob's own.
            let alices = TaskFilter {
                for_user: Some("alice"),
                ..TaskFilter::default()
            };
            let tasks = every_page(
                "created_at",
                false,
                2,
                async |k| store.task_page(&alices, k).await.unwrap(),
                |t| (SortKey::Int(t.created_at), t.id.clone()),
            )
            .await;
            let titles: Vec<String> = tasks.iter().map(|t| t.title.clone()).collect();
            assert_eq!(titles, (0..9).map(|i| format!("task {i}")).collect::<Vec<_>>());
            let bobs = store
                .tasks(Some(crate::store::tasks::TaskStatus::Open), None, Some("bob"), 10)
                .await
                .unwrap();
            assert_eq!(bobs.len(), 2);

            // Indicators: ten IPs and a domain, by value (ties across kinds broken by the key),
            // and by last_seen, where every one ties with others.
            for i in 0..10 {
                let verdict = if i % 2 == 0 { "malicious" } else { "benign" };
                store
                    .set_verdict("ip", &format!("192.0.2.{i}"), verdict, None, None, &cli)
                    .await
                    .unwrap();
            }
            store
                .set_verdict("domain", "192.0.2.example", "malicious", None, None, &cli)
                .await
                .unwrap();
            let any = IndicatorFilter::default();
            let by_value = every_page(
                "value",
                false,
                3,
                async |k| store.indicator_page(&any, k).await.unwrap(),
                |i| (SortKey::Text(i.value.clone()), i.key()),
            )
            .await;
            let values: Vec<String> = by_value.iter().map(|i| i.value.clone()).collect();
            let mut sorted = values.clone();
            sorted.sort();
            assert_eq!((values.len(), &values), (11, &sorted));
            let recent = every_page(
                "last_seen",
                true,
                2,
                async |k| store.indicator_page(&any, k).await.unwrap(),
                |i| (SortKey::Int(i.last_seen), i.key()),
            )
            .await;
            let keys: std::collections::BTreeSet<String> = recent.iter().map(|i| i.key()).collect();
            assert_eq!(keys.len(), 11);
            let malicious_ips = IndicatorFilter {
                kind: Some(IndicatorKind::Ip),
                verdict: Some(Verdict::Malicious),
            };
            let found = every_page(
                "sightings",
                true,
                2,
                async |k| store.indicator_page(&malicious_ips, k).await.unwrap(),
                |i| (SortKey::Int(i.sightings), i.key()),
            )
            .await;
            assert_eq!(found.len(), 5);
            assert!(
                found
                    .iter()
                    .all(|i| i.kind == IndicatorKind::Ip && i.verdict == Verdict::Malicious)
            );
        }
    );
}
