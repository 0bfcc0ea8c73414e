//! Indicators — IP addresses, CIDRs, domains, URLs, hashes and e-mail addresses — with a
//! verdict, a score and the sources that gave them, and when alerts first and last showed
//! them. (The enrichment cache behind `invoke_cached` is `enrichment_cache.rs`.)
//!
//! Values are checked and kept in a canonical form ([`canonical_value`]), with the same rules
//! as list entries where the kinds meet (`lists.rs`) and as the observables extracted from
//! alerts (`intake/observables.rs`), so a sighting and a verdict on the same thing meet on one
//! row.
//!
//! A verdict is set with [`Store::set_verdict`], audited as `indicator.set`. Sightings are
//! written by pre-processing in the transaction that records what it did with the alerts
//! ([`upsert_sightings`]); they are derived data, not audited.

use super::audit::{self, Actor, Change};
use super::page::{self, Arg, Keyset, Page};
use super::values::{IpValue, ValueError, host_name, ip_value, shown, trimmed_value};
use super::writer::{ROWS_PER_STATEMENT, rows};
use super::{Result, Store, StoreError, now_ms};
use crate::intake::Observables;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use thiserror::Error;

/// The longest value, in characters (URLs can be long; PostgreSQL indexes up to about 2.7 kB).
pub const MAX_VALUE_LEN: usize = 2048;
/// Sources kept per indicator: the latest verdict of each, the most recent ones.
pub const MAX_SOURCES: usize = 20;
/// The longest source name, in characters.
pub const MAX_SOURCE_LEN: usize = 100;

/// The columns indicators may be sorted by (`GET /api/v1/indicators?sort=`).
pub const INDICATOR_SORTS: &[&str] = &["last_seen", "first_seen", "updated_at", "sightings", "value"];

/// An indicator's unique key in one text, `KIND:VALUE` (a kind has no colon), as pages order
/// ties and cursors name the last row ([`Indicator::key`]).
const INDICATOR_ID: &str = "(kind || ':' || value)";

/// Which indicators a page holds; `None` is any.
#[derive(Debug, Clone, Copy, Default)]
pub struct IndicatorFilter {
    pub kind: Option<IndicatorKind>,
    pub verdict: Option<Verdict>,
}

/// What an indicator is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum IndicatorKind {
    /// An IPv4 or IPv6 address.
    Ip,
    /// A network, `ADDRESS/PREFIX`.
    Cidr,
    Domain,
    /// An http, https or ftp URL, with its scheme.
    Url,
    /// An MD5, SHA-1 or SHA-256 hash, in hex.
    Hash,
    Email,
}

impl IndicatorKind {
    pub const NAMES: &[&str] = &["ip", "cidr", "domain", "url", "hash", "email"];

    pub fn as_str(self) -> &'static str {
        match self {
            IndicatorKind::Ip => "ip",
            IndicatorKind::Cidr => "cidr",
            IndicatorKind::Domain => "domain",
            IndicatorKind::Url => "url",
            IndicatorKind::Hash => "hash",
            IndicatorKind::Email => "email",
        }
    }

    pub fn from_name(name: &str) -> Option<IndicatorKind> {
        Some(match name {
            "ip" => IndicatorKind::Ip,
            "cidr" => IndicatorKind::Cidr,
            "domain" => IndicatorKind::Domain,
            "url" => IndicatorKind::Url,
            "hash" => IndicatorKind::Hash,
            "email" => IndicatorKind::Email,
            _ => return None,
        })
    }

    /// The kind named `name`, or an error that lists the kinds.
    pub fn parse(name: &str) -> Result<IndicatorKind, IndicatorError> {
        Self::from_name(name).ok_or_else(|| IndicatorError::BadKind(shown(name)))
    }

    /// "an IP address", "a CIDR", ... for messages.
    pub fn what(self) -> &'static str {
        match self {
            IndicatorKind::Ip => "an IP address",
            IndicatorKind::Cidr => "a CIDR",
            IndicatorKind::Domain => "a domain",
            IndicatorKind::Url => "a URL",
            IndicatorKind::Hash => "a hash",
            IndicatorKind::Email => "an e-mail address",
        }
    }
}

impl std::fmt::Display for IndicatorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is thought of an indicator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Unknown,
    Benign,
    Suspicious,
    Malicious,
}

impl Verdict {
    pub const NAMES: &[&str] = &["unknown", "benign", "suspicious", "malicious"];

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Unknown => "unknown",
            Verdict::Benign => "benign",
            Verdict::Suspicious => "suspicious",
            Verdict::Malicious => "malicious",
        }
    }

    pub fn from_name(name: &str) -> Option<Verdict> {
        Some(match name {
            "unknown" => Verdict::Unknown,
            "benign" => Verdict::Benign,
            "suspicious" => Verdict::Suspicious,
            "malicious" => Verdict::Malicious,
            _ => return None,
        })
    }

    /// The verdict named `name`, or an error that lists the verdicts.
    pub fn parse(name: &str) -> Result<Verdict, IndicatorError> {
        Self::from_name(name).ok_or_else(|| IndicatorError::BadVerdict(shown(name)))
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why an indicator operation was refused.
#[derive(Debug, Error)]
pub enum IndicatorError {
    #[error("'{0}' is not a kind of indicator; use one of ip, cidr, domain, url, hash, email")]
    BadKind(String),
    #[error("'{value}' is not {what}{why}", what = .kind.what(), why = reason(.why))]
    BadValue {
        kind: IndicatorKind,
        value: String,
        why: IndicatorValueError,
    },
    #[error("verdict '{0}' is not one of unknown, benign, suspicious, malicious")]
    BadVerdict(String),
    #[error("score {0} is out of 0..=100")]
    BadScore(i64),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Why a value is not an indicator of its kind.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IndicatorValueError {
    /// "Not an IP address" says it all.
    #[error("")]
    NotOfKind,
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error("it is the network {0}; use kind cidr")]
    Network(ipnet::IpNet),
    #[error("it is the single address {0}; use kind ip")]
    Address(std::net::IpAddr),
    #[error("it has no prefix; give ADDRESS/PREFIX such as 10.0.0.0/8, or use kind ip")]
    NoPrefix,
    #[error("give ADDRESS/PREFIX such as 10.0.0.0/8 or 2001:db8::/32")]
    NotCidr,
    #[error("it is an IP address; use kind ip")]
    DomainIsIp,
    #[error("it looks like a URL or has a port; give the domain only, or use kind url")]
    DomainIsUrl,
    #[error("it looks like an e-mail address; use kind email")]
    DomainIsEmail,
    #[error("a wildcard is not an indicator; give one domain")]
    Wildcard,
    #[error("it has a single label; a domain has a dot, such as evil.example")]
    SingleLabel,
    #[error("give an http, https or ftp URL with a host, such as https://evil.example/login")]
    NotUrl,
    #[error("give an MD5, SHA-1 or SHA-256 in hex (32, 40 or 64 hex digits)")]
    NotHash,
    #[error("it has no '@'")]
    NoAt,
    #[error("the part before '@' ('{0}') must be 1 to 64 letters, digits and . _ % + -")]
    LocalPart(String),
    #[error("its domain: {0}")]
    EmailDomain(ValueError),
    #[error("its domain has no dot")]
    EmailDomainNoDot,
}

/// `why` after the value in [`IndicatorError::BadValue`]: nothing when the kind says it all.
fn reason(why: &IndicatorValueError) -> String {
    match why {
        IndicatorValueError::NotOfKind => String::new(),
        why => format!(": {why}"),
    }
}

impl From<sqlx::Error> for IndicatorError {
    fn from(e: sqlx::Error) -> Self {
        IndicatorError::Store(e.into())
    }
}

/// One source's latest word on an indicator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SourceVerdict {
    pub source: String,
    pub verdict: Verdict,
    pub score: Option<i64>,
    /// Unix ms.
    pub at: i64,
}

/// An indicator as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Indicator {
    pub kind: IndicatorKind,
    pub value: String,
    /// The last verdict set, by whichever source.
    pub verdict: Verdict,
    /// The score that came with it, 0 to 100.
    pub score: Option<i64>,
    /// The latest verdict of each source, oldest first, at most [`MAX_SOURCES`].
    pub sources: Vec<SourceVerdict>,
    /// When alerts first and last showed it (before any did: when it was recorded).
    pub first_seen: i64,
    pub last_seen: i64,
    /// How many alerts showed it.
    pub sightings: i64,
    pub updated_at: i64,
}

impl Indicator {
    /// `KIND:VALUE`: unique, the key the indicator list pages by.
    pub fn key(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.value)
    }
}

/// Alerts that showed one indicator: how many, the first and last time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sighting {
    pub kind: IndicatorKind,
    /// In canonical form.
    pub value: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: i64,
}

/// The canonical form of `raw` as an indicator of `kind`, or an error that says why not.
///
/// - `ip`: an address in canonical text (`2001:DB8::1` is `2001:db8::1`, a `/32` is the
///   address).
/// - `cidr`: a network, cut to its network address (`10.1.2.3/8` is `10.0.0.0/8`).
/// - `domain`: a host name with at least one dot, lower-case, without a trailing dot.
/// - `url`: an http, https or ftp URL with a host, as the URL parser writes it (lower-case
///   scheme and host, `/` for an empty path), as alerts' observables have it.
/// - `hash`: 32, 40 or 64 hex digits (MD5, SHA-1, SHA-256), lower-case.
/// - `email`: `local@domain`, lower-case.
pub fn canonical_value(kind: IndicatorKind, raw: &str) -> Result<String, IndicatorError> {
    canonical(kind, raw).map_err(|why| IndicatorError::BadValue {
        kind,
        value: shown(raw),
        why,
    })
}

/// [`canonical_value`]'s work; the error is the reason.
fn canonical(kind: IndicatorKind, raw: &str) -> Result<String, IndicatorValueError> {
    let v = trimmed_value(raw, MAX_VALUE_LEN, MAX_VALUE_LEN)?;
    let canonical = match kind {
        IndicatorKind::Ip => match ip_value(v) {
            Some(IpValue::Address(a)) => a.to_string(),
            Some(IpValue::Network(n)) => return Err(IndicatorValueError::Network(n)),
            None => return Err(IndicatorValueError::NotOfKind),
        },
        IndicatorKind::Cidr => match ip_value(v) {
            Some(IpValue::Network(n)) => n.to_string(),
            Some(IpValue::Address(a)) if v.contains('/') => {
                return Err(IndicatorValueError::Address(a));
            }
            Some(IpValue::Address(_)) => {
                return Err(IndicatorValueError::NoPrefix);
            }
            None => return Err(IndicatorValueError::NotCidr),
        },
        IndicatorKind::Domain => {
            if v.parse::<std::net::IpAddr>().is_ok() {
                return Err(IndicatorValueError::DomainIsIp);
            }
            if v.contains(['/', ':']) {
                return Err(IndicatorValueError::DomainIsUrl);
            }
            if v.contains('@') {
                return Err(IndicatorValueError::DomainIsEmail);
            }
            if v.starts_with("*.") {
                return Err(IndicatorValueError::Wildcard);
            }
            let host = host_name(v)?;
            if !host.contains('.') {
                return Err(IndicatorValueError::SingleLabel);
            }
            host
        }
        IndicatorKind::Url => crate::intake::observable_url(v)
            .map(String::from)
            .ok_or(IndicatorValueError::NotUrl)?,
        IndicatorKind::Hash => {
            if !matches!(v.len(), 32 | 40 | 64) || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(IndicatorValueError::NotHash);
            }
            v.to_ascii_lowercase()
        }
        IndicatorKind::Email => {
            let lower = v.to_ascii_lowercase();
            let Some((local, domain)) = lower.rsplit_once('@') else {
                return Err(IndicatorValueError::NoAt);
            };
            let local_ok = !local.is_empty()
                && local.len() <= 64
                && local
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b));
            if !local_ok {
                return Err(IndicatorValueError::LocalPart(local.to_owned()));
            }
            let domain = host_name(domain).map_err(IndicatorValueError::EmailDomain)?;
            if !domain.contains('.') {
                return Err(IndicatorValueError::EmailDomainNoDot);
            }
            format!("{local}@{domain}")
        }
    };
    if canonical.chars().count() > MAX_VALUE_LEN {
        return Err(ValueError::TooLong(MAX_VALUE_LEN).into());
    }
    Ok(canonical)
}

/// The sightings in alerts' observables, one per indicator: each alert that shows it counts
/// once, at the time given with the alert. IPs, domains, URLs, MD5/SHA-1/SHA-256 (kind
/// `hash`) and e-mail addresses; values that are not valid indicators are skipped.
pub fn sightings<'a>(alerts: impl IntoIterator<Item = (&'a Observables, i64)>) -> Vec<Sighting> {
    let mut all: BTreeMap<(IndicatorKind, String), Sighting> = BTreeMap::new();
    for (o, at) in alerts {
        let lists = [
            (IndicatorKind::Ip, &o.ips),
            (IndicatorKind::Domain, &o.domains),
            (IndicatorKind::Url, &o.urls),
            (IndicatorKind::Hash, &o.md5),
            (IndicatorKind::Hash, &o.sha1),
            (IndicatorKind::Hash, &o.sha256),
            (IndicatorKind::Email, &o.emails),
        ];
        let mut this_alert = BTreeSet::new();
        for (kind, values) in lists {
            for v in values {
                if let Ok(v) = canonical(kind, v) {
                    this_alert.insert((kind, v));
                }
            }
        }
        for key in this_alert {
            let s = all.entry(key).or_insert_with_key(|(kind, value)| Sighting {
                kind: *kind,
                value: value.clone(),
                first_seen: at,
                last_seen: at,
                count: 0,
            });
            s.first_seen = s.first_seen.min(at);
            s.last_seen = s.last_seen.max(at);
            s.count += 1;
        }
    }
    all.into_values().collect()
}

/// Add `sightings` to their indicators (creating those not known yet, verdict unknown),
/// inside the caller's transaction: one multi-row upsert per [`ROWS_PER_STATEMENT`], rows in
/// (kind, value) order so concurrent writers take row locks in the same order. First seen
/// only moves back, last seen only forward, the counts add up. Sightings of the same
/// indicator are merged first.
pub async fn upsert_sightings(conn: &mut sqlx::AnyConnection, sightings: &[Sighting]) -> Result<()> {
    if sightings.is_empty() {
        return Ok(());
    }
    let mut merged: BTreeMap<(IndicatorKind, &str), Sighting> = BTreeMap::new();
    for s in sightings {
        merged
            .entry((s.kind, s.value.as_str()))
            .and_modify(|m| {
                m.first_seen = m.first_seen.min(s.first_seen);
                m.last_seen = m.last_seen.max(s.last_seen);
                m.count += s.count;
            })
            .or_insert_with(|| s.clone());
    }
    let merged: Vec<Sighting> = merged.into_values().collect();
    let sqlite = conn.backend_name() == "SQLite";
    let now = now_ms();
    for chunk in merged.chunks(ROWS_PER_STATEMENT) {
        // Before any sighting (an indicator only given a verdict), the times are when it was
        // recorded: the first sighting replaces them.
        let sql = format!(
            "INSERT INTO indicators (kind, value, verdict, score, sources, first_seen, last_seen, sightings, updated_at)
             VALUES {}
             ON CONFLICT (kind, value) DO UPDATE SET
                 first_seen = CASE WHEN indicators.sightings = 0 OR excluded.first_seen < indicators.first_seen
                     THEN excluded.first_seen ELSE indicators.first_seen END,
                 last_seen = CASE WHEN indicators.sightings = 0 OR excluded.last_seen > indicators.last_seen
                     THEN excluded.last_seen ELSE indicators.last_seen END,
                 sightings = indicators.sightings + excluded.sightings,
                 updated_at = excluded.updated_at",
            rows("(?, ?, 'unknown', NULL, '[]', ?, ?, ?, ?)", chunk.len(), sqlite)
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for s in chunk {
            q = q
                .bind(s.kind.as_str())
                .bind(&s.value)
                .bind(s.first_seen)
                .bind(s.last_seen)
                .bind(s.count)
                .bind(now);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// An `indicators` row, by column name.
#[derive(sqlx::FromRow)]
struct IndicatorRow {
    kind: String,
    value: String,
    verdict: String,
    score: Option<i64>,
    sources: String,
    first_seen: i64,
    last_seen: i64,
    sightings: i64,
    updated_at: i64,
}

/// An indicator's verdict, score and sources before a new verdict changes them.
#[derive(sqlx::FromRow)]
struct VerdictRow {
    verdict: String,
    score: Option<i64>,
    sources: String,
}

const COLUMNS: &str = "kind, value, verdict, score, sources, first_seen, last_seen, sightings, updated_at";

fn indicator_from_row(row: IndicatorRow) -> Result<Indicator> {
    let IndicatorRow {
        kind,
        value,
        verdict,
        score,
        sources,
        first_seen,
        last_seen,
        sightings,
        updated_at,
    } = row;
    let corrupt = |what: String| StoreError::Corrupt(format!("indicator {kind}:{value}: {what}"));
    Ok(Indicator {
        kind: IndicatorKind::from_name(&kind).ok_or_else(|| corrupt(format!("kind '{kind}'")))?,
        verdict: Verdict::from_name(&verdict).ok_or_else(|| corrupt(format!("verdict '{verdict}'")))?,
        sources: serde_json::from_str(&sources).map_err(|e| corrupt(format!("sources: {e}")))?,
        value,
        score,
        first_seen,
        last_seen,
        sightings,
        updated_at,
    })
}

/// A source name: 1 to [`MAX_SOURCE_LEN`] characters, no control characters.
fn check_source(source: &str) -> Result<(), IndicatorError> {
    if source.trim().is_empty() {
        return Err(IndicatorError::Invalid(
            "the source is empty; say who gave the verdict (a vendor, a playbook, an analyst)".into(),
        ));
    }
    if source.chars().count() > MAX_SOURCE_LEN || source.chars().any(char::is_control) {
        return Err(IndicatorError::Invalid(format!(
            "the source '{}' must be at most {MAX_SOURCE_LEN} characters, without control characters",
            shown(source)
        )));
    }
    Ok(())
}

impl Store {
    /// Add sightings in their own transaction; see [`upsert_sightings`].
    pub async fn record_sightings(&self, sightings: &[Sighting]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        upsert_sightings(&mut tx, sightings).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Record `source`'s verdict on an indicator (created if new, with no sightings):
    /// its verdict and score become the indicator's, and its entry in the sources replaces
    /// that source's previous one (the [`MAX_SOURCES`] latest sources are kept). `score` is
    /// 0 to 100 or none; `source` defaults to the actor. Audited as `indicator.set` with the
    /// previous verdict and score. Every input is checked first: the error says what was
    /// wrong.
    pub async fn set_verdict(
        &self,
        kind: &str,
        value: &str,
        verdict: &str,
        score: Option<i64>,
        source: Option<&str>,
        actor: &Actor,
    ) -> Result<Indicator, IndicatorError> {
        let kind = IndicatorKind::parse(kind)?;
        let value = canonical_value(kind, value)?;
        let verdict = Verdict::parse(verdict)?;
        if let Some(s) = score
            && !(0..=100).contains(&s)
        {
            return Err(IndicatorError::BadScore(s));
        }
        let source = source.unwrap_or(actor.as_str()).trim();
        check_source(source)?;
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let created = sqlx::query(
            "INSERT INTO indicators (kind, value, verdict, score, sources, first_seen, last_seen, sightings, updated_at)
             VALUES ($1, $2, 'unknown', NULL, '[]', $3, $3, 0, $3)
             ON CONFLICT (kind, value) DO NOTHING",
        )
        .bind(kind.as_str())
        .bind(&value)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        // Takes the row for this transaction (writers of one indicator queue here).
        let VerdictRow {
            verdict: previous,
            score: previous_score,
            sources,
        } = sqlx::query_as(
            "UPDATE indicators SET updated_at = $1 WHERE kind = $2 AND value = $3
             RETURNING verdict, score, sources",
        )
        .bind(now)
        .bind(kind.as_str())
        .bind(&value)
        .fetch_one(&mut *tx)
        .await?;
        let mut sources: Vec<SourceVerdict> = serde_json::from_str(&sources)
            .map_err(|e| StoreError::Corrupt(format!("indicator {kind}:{value}: sources: {e}")))?;
        sources.retain(|s| s.source != source);
        sources.push(SourceVerdict {
            source: source.to_owned(),
            verdict,
            score,
            at: now,
        });
        if sources.len() > MAX_SOURCES {
            sources.drain(..sources.len() - MAX_SOURCES);
        }
        let sql = format!(
            "UPDATE indicators SET verdict = $1, score = $2, sources = $3, updated_at = $4
             WHERE kind = $5 AND value = $6 RETURNING {COLUMNS}"
        );
        let row: IndicatorRow = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(verdict.as_str())
            .bind(score)
            .bind(serde_json::to_string(&sources).expect("sources serialise"))
            .bind(now)
            .bind(kind.as_str())
            .bind(&value)
            .fetch_one(&mut *tx)
            .await?;
        let change = Change {
            actor,
            action: "indicator.set",
            target: format!("indicator:{kind}:{value}"),
            details: serde_json::json!({
                "verdict": verdict,
                "score": score,
                "source": source,
                "new": created,
                "previous": { "verdict": previous, "score": previous_score },
            }),
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(indicator_from_row(row)?)
    }

    /// One indicator; `value` is put in canonical form first (so `2001:DB8::1` finds
    /// `2001:db8::1`).
    pub async fn indicator(&self, kind: &str, value: &str) -> Result<Option<Indicator>, IndicatorError> {
        let kind = IndicatorKind::parse(kind)?;
        let value = canonical_value(kind, value)?;
        let sql = format!("SELECT {COLUMNS} FROM indicators WHERE kind = $1 AND value = $2");
        let row: Option<IndicatorRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(kind.as_str())
            .bind(&value)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(indicator_from_row).transpose()?)
    }

    /// One page of indicators matching `filter`, in the order of `keyset` (one of
    /// [`INDICATOR_SORTS`]; ties are ordered by kind and value, [`INDICATOR_ID`]).
    pub async fn indicator_page(&self, filter: &IndicatorFilter, keyset: &Keyset) -> Result<Page<Indicator>> {
        let mut conditions = vec!["1 = 1".to_owned()];
        let mut args: Vec<Arg> = Vec::new();
        if let Some(kind) = filter.kind {
            args.push(kind.as_str().into());
            conditions.push(format!("kind = ${}", args.len()));
        }
        if let Some(verdict) = filter.verdict {
            args.push(verdict.as_str().into());
            conditions.push(format!("verdict = ${}", args.len()));
        }
        let select = format!("SELECT {COLUMNS} FROM indicators");
        let page: Page<IndicatorRow> = page::fetch(
            &self.pool,
            &select,
            &conditions.join(" AND "),
            args,
            keyset,
            INDICATOR_SORTS,
            INDICATOR_ID,
        )
        .await?;
        page.try_map(indicator_from_row)
    }

    /// Indicators, most recently seen first, optionally of one kind and with one verdict
    /// (the first page of [`Store::indicator_page`]).
    pub async fn indicators(
        &self,
        kind: Option<&str>,
        verdict: Option<&str>,
        limit: i64,
    ) -> Result<Vec<Indicator>, IndicatorError> {
        let filter = IndicatorFilter {
            kind: kind.map(IndicatorKind::parse).transpose()?,
            verdict: verdict.map(Verdict::parse).transpose()?,
        };
        let keyset = Keyset::first("last_seen", true, limit);
        Ok(self.indicator_page(&filter, &keyset).await?.items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::both_dialects;
    use serde_json::json;

    fn ok(kind: IndicatorKind, raw: &str) -> String {
        canonical_value(kind, raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    fn bad(kind: IndicatorKind, raw: &str) -> String {
        canonical_value(kind, raw).unwrap_err().to_string()
    }

    fn seen(kind: IndicatorKind, value: &str, first_seen: i64, last_seen: i64, count: i64) -> Sighting {
        Sighting {
            kind,
            value: value.into(),
            first_seen,
            last_seen,
            count,
        }
    }

    #[test]
    fn indicators_values_are_put_in_canonical_form() {
        use IndicatorKind::*;
        assert_eq!(ok(Ip, " 192.0.2.1 "), "192.0.2.1");
        assert_eq!(ok(Ip, "2001:DB8:0:0::1"), "2001:db8::1");
        assert_eq!(ok(Ip, "192.0.2.1/32"), "192.0.2.1");
        assert_eq!(ok(Cidr, "10.1.2.3/8"), "10.0.0.0/8");
        assert_eq!(ok(Cidr, "2001:db8:ffff::/32"), "2001:db8::/32");
        assert_eq!(ok(Domain, "Evil.Example."), "evil.example");
        assert_eq!(
            ok(Url, "HTTPS://Evil.Example/Login?x=1"),
            "https://evil.example/Login?x=1"
        );
        assert_eq!(ok(Url, "http://evil.example"), "http://evil.example/");
        assert_eq!(
            ok(Hash, "D41D8CD98F00B204E9800998ECF8427E"),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(ok(Email, "Bob.Smith+x@Corp.Example"), "bob.smith+x@corp.example");
    }

    #[test]
    fn indicators_bad_values_say_what_was_wrong() {
        use IndicatorKind::*;
        assert_eq!(bad(Ip, "999.1.1.1"), "'999.1.1.1' is not an IP address");
        assert!(bad(Ip, "10.0.0.0/8").contains("use kind cidr"));
        assert!(bad(Ip, "").contains("empty"));
        assert!(bad(Cidr, "10.0.0.1").contains("no prefix"));
        assert!(bad(Cidr, "10.0.0.1/32").contains("use kind ip"));
        assert!(bad(Cidr, "10.0.0.0/33").starts_with("'10.0.0.0/33' is not a CIDR"));
        assert!(bad(Domain, "192.0.2.1").contains("use kind ip"));
        assert!(bad(Domain, "https://evil.example/").contains("use kind url"));
        assert!(bad(Domain, "bob@evil.example").contains("use kind email"));
        assert!(bad(Domain, "*.evil.example").contains("wildcard"));
        assert!(bad(Domain, "evil").contains("single label"));
        assert!(bad(Domain, "ev_il..example").contains("empty label"));
        assert!(bad(Url, "evil.example/login").starts_with("'evil.example/login' is not a URL"));
        assert!(bad(Url, "javascript:alert(1)").contains("http, https or ftp"));
        assert!(bad(Hash, "abc123").contains("32, 40 or 64"));
        assert!(bad(Hash, &"g".repeat(32)).contains("hex"));
        assert!(bad(Email, "bob.example").contains("no '@'"));
        assert!(bad(Email, "@corp.example").contains("before '@'"));
        assert!(bad(Email, "bob@localhost").contains("no dot"));
        assert!(bad(Url, &format!("https://x.example/{}", "a".repeat(3000))).contains("longer than 2048"));
        assert!(
            IndicatorKind::parse("ipv4")
                .unwrap_err()
                .to_string()
                .contains("ip, cidr, domain")
        );
        assert_eq!(
            Verdict::parse("evil").unwrap_err().to_string(),
            "verdict 'evil' is not one of unknown, benign, suspicious, malicious"
        );
    }

    #[test]
    fn indicators_sightings_count_each_alert_once() {
        let a = Observables {
            ips: vec!["192.0.2.1".into()],
            domains: vec!["evil.example".into()],
            urls: vec!["https://evil.example/x".into()],
            md5: vec!["d41d8cd98f00b204e9800998ecf8427e".into()],
            emails: vec!["bob@corp.example".into()],
            ..Default::default()
        };
        let b = Observables {
            ips: vec!["192.0.2.1".into(), "not an ip".into()],
            ..Default::default()
        };
        let found = sightings([(&a, 2000), (&b, 1000), (&b, 3000)]);
        let ip = found.iter().find(|s| s.kind == IndicatorKind::Ip).unwrap();
        assert_eq!((ip.first_seen, ip.last_seen, ip.count), (1000, 3000, 3));
        let kinds: Vec<&str> = found.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(kinds, ["ip", "domain", "url", "hash", "email"]);
        assert!(
            found
                .iter()
                .filter(|s| s.kind != IndicatorKind::Ip)
                .all(|s| s.count == 1)
        );
    }

    both_dialects!(indicators_sightings_add_up, |store| {
        use IndicatorKind::*;
        store
            .record_sightings(&[
                seen(Ip, "192.0.2.1", 1000, 1000, 1),
                seen(Domain, "evil.example", 1500, 1500, 1),
            ])
            .await
            .unwrap();
        // The same indicator twice in one call is merged; first seen only moves back, last
        // seen only forward.
        store
            .record_sightings(&[
                seen(Ip, "192.0.2.1", 2000, 3000, 2),
                seen(Ip, "192.0.2.1", 500, 2500, 1),
                seen(Domain, "evil.example", 1600, 1400, 1),
            ])
            .await
            .unwrap();
        let ip = store.indicator("ip", "192.0.2.1").await.unwrap().unwrap();
        assert_eq!((ip.first_seen, ip.last_seen, ip.sightings), (500, 3000, 4));
        assert_eq!(
            (ip.verdict, ip.score, ip.sources.len()),
            (Verdict::Unknown, None, 0)
        );
        let d = store.indicator("domain", "EVIL.example.").await.unwrap().unwrap();
        assert_eq!((d.first_seen, d.last_seen, d.sightings), (1500, 1500, 2));

        // More rows than one statement holds.
        let many: Vec<Sighting> = (0..1200)
            .map(|i| seen(Ip, &format!("10.0.{}.{}", i / 256, i % 256), 10, 20, 1))
            .collect();
        store.record_sightings(&many).await.unwrap();
        store.record_sightings(&many[..600]).await.unwrap();
        let ips = store.indicators(Some("ip"), None, 5000).await.unwrap();
        assert_eq!(ips.len(), 1201);
        assert_eq!(ips.iter().map(|i| i.sightings).sum::<i64>(), 4 + 1200 + 600);
        // Most recently seen first.
        assert_eq!(ips[0].value, "192.0.2.1");

        // Within someone else's transaction: nothing is written if it rolls back.
        let mut tx = store.writer.begin().await.unwrap();
        upsert_sightings(&mut tx, &[seen(Hash, &"a".repeat(64), 1, 1, 1)])
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert!(store.indicator("hash", &"a".repeat(64)).await.unwrap().is_none());
    });

    both_dialects!(indicators_sightings_are_written_with_the_triage, |store| {
        let o = Observables {
            ips: vec!["198.51.100.7".into()],
            sha256: vec!["b".repeat(64)],
            ..Default::default()
        };
        let triage = crate::store::triage::Triage {
            sightings: sightings([(&o, 100), (&o, 200)]),
            ..Default::default()
        };
        store.apply_triage(&triage).await.unwrap();
        store.apply_triage(&triage).await.unwrap();
        let ip = store.indicator("ip", "198.51.100.7").await.unwrap().unwrap();
        assert_eq!((ip.first_seen, ip.last_seen, ip.sightings), (100, 200, 4));
        let hash = store.indicator("hash", &"B".repeat(64)).await.unwrap().unwrap();
        assert_eq!(hash.sightings, 4);
    });

    both_dialects!(indicators_verdicts_are_set_audited_and_keep_sightings, |store| {
        let analyst = Actor::cli();
        store
            .record_sightings(&[seen(IndicatorKind::Ip, "203.0.113.66", 1000, 2000, 3)])
            .await
            .unwrap();
        let i = store
            .set_verdict(
                "ip",
                "203.0.113.66",
                "malicious",
                Some(90),
                Some("autofocus"),
                &Actor::run("r1"),
            )
            .await
            .unwrap();
        assert_eq!((i.verdict, i.score), (Verdict::Malicious, Some(90)));
        assert_eq!((i.first_seen, i.last_seen, i.sightings), (1000, 2000, 3));
        assert_eq!(i.sources.len(), 1);
        assert_eq!(
            (i.sources[0].source.as_str(), i.sources[0].verdict),
            ("autofocus", Verdict::Malicious)
        );

        // A new indicator; the source defaults to the actor; no score.
        let before = now_ms();
        let d = store
            .set_verdict("domain", "Phish.Example", "suspicious", None, None, &analyst)
            .await
            .unwrap();
        assert_eq!(
            (d.value.as_str(), d.sightings, d.score),
            ("phish.example", 0, None)
        );
        assert!(d.first_seen >= before && d.last_seen == d.first_seen);
        assert_eq!(d.sources[0].source, analyst.as_str());
        // Its first sighting replaces the times it was recorded at.
        store
            .record_sightings(&[seen(IndicatorKind::Domain, "phish.example", 5, 6, 1)])
            .await
            .unwrap();
        let d = store.indicator("domain", "phish.example").await.unwrap().unwrap();
        assert_eq!((d.first_seen, d.last_seen, d.sightings), (5, 6, 1));
        assert_eq!(d.verdict, Verdict::Suspicious);

        // A source's new word replaces its old one; the latest source decides.
        store
            .set_verdict("ip", "203.0.113.66", "benign", Some(0), Some("analyst"), &analyst)
            .await
            .unwrap();
        let i = store
            .set_verdict(
                "ip",
                "203.0.113.66",
                "malicious",
                Some(95),
                Some("autofocus"),
                &analyst,
            )
            .await
            .unwrap();
        let sources: Vec<(&str, Verdict, Option<i64>)> = i
            .sources
            .iter()
            .map(|s| (s.source.as_str(), s.verdict, s.score))
            .collect();
        assert_eq!(
            sources,
            [
                ("analyst", Verdict::Benign, Some(0)),
                ("autofocus", Verdict::Malicious, Some(95))
            ]
        );
        assert_eq!((i.verdict, i.score), (Verdict::Malicious, Some(95)));

        // Filters.
        let malicious = store.indicators(None, Some("malicious"), 10).await.unwrap();
        assert_eq!(malicious.len(), 1);
        assert_eq!(malicious[0].value, "203.0.113.66");
        assert_eq!(store.indicators(Some("domain"), None, 10).await.unwrap().len(), 1);
        assert!(store.indicators(Some("url"), None, 10).await.unwrap().is_empty());
        assert!(matches!(
            store.indicators(None, Some("bad"), 10).await,
            Err(IndicatorError::BadVerdict(_))
        ));

        let audit = store.audit_entries(0, 100, Some("indicator.")).await.unwrap();
        assert_eq!(audit.len(), 4);
        assert_eq!(audit[0].action, "indicator.set");
        assert_eq!(audit[0].actor, "run:r1");
        assert_eq!(audit[0].target, "indicator:ip:203.0.113.66");
        assert_eq!(audit[0].details["verdict"], "malicious");
        assert_eq!(audit[0].details["source"], "autofocus");
        assert_eq!(audit[0].details["new"], false);
        assert_eq!(audit[0].details["previous"]["verdict"], "unknown");
        assert_eq!(audit[1].details["new"], true);
        assert_eq!(
            audit[3].details["previous"],
            json!({"verdict": "benign", "score": 0})
        );
        assert!(matches!(
            store.verify_audit().await.unwrap(),
            crate::store::audit::Verification::Intact { .. }
        ));
    });

    /// kind, value, verdict, score, source, and how the error starts.
    type BadCase = (
        &'static str,
        &'static str,
        &'static str,
        Option<i64>,
        Option<&'static str>,
        &'static str,
    );

    both_dialects!(indicators_bad_input_is_refused_and_changes_nothing, |store| {
        let who = Actor::cli();
        let cases: &[BadCase] = &[
            (
                "ipv4",
                "192.0.2.1",
                "malicious",
                None,
                None,
                "'ipv4' is not a kind of indicator; use one of",
            ),
            (
                "ip",
                "999.1.1.1",
                "malicious",
                None,
                None,
                "'999.1.1.1' is not an IP address",
            ),
            (
                "cidr",
                "10.0.0.1",
                "malicious",
                None,
                None,
                "'10.0.0.1' is not a CIDR",
            ),
            (
                "domain",
                "evil",
                "malicious",
                None,
                None,
                "'evil' is not a domain",
            ),
            (
                "url",
                "evil.example/x",
                "malicious",
                None,
                None,
                "'evil.example/x' is not a URL",
            ),
            ("hash", "abc", "malicious", None, None, "'abc' is not a hash"),
            (
                "email",
                "bob",
                "malicious",
                None,
                None,
                "'bob' is not an e-mail address",
            ),
            (
                "ip",
                "192.0.2.1",
                "evil",
                None,
                None,
                "verdict 'evil' is not one of unknown, benign, suspicious, malicious",
            ),
            (
                "ip",
                "192.0.2.1",
                "malicious",
                Some(120),
                None,
                "score 120 is out of 0..=100",
            ),
            (
                "ip",
                "192.0.2.1",
                "malicious",
                Some(-1),
                None,
                "score -1 is out of 0..=100",
            ),
            (
                "ip",
                "192.0.2.1",
                "malicious",
                None,
                Some("  "),
                "the source is empty",
            ),
            (
                "ip",
                "192.0.2.1",
                "malicious",
                None,
                Some("a\nb"),
                "the source 'a",
            ),
        ];
        for (kind, value, verdict, score, source, want) in cases {
            let e = store
                .set_verdict(kind, value, verdict, *score, *source, &who)
                .await
                .unwrap_err();
            assert!(e.to_string().starts_with(want), "{kind} {value}: {e}");
            assert!(!matches!(e, IndicatorError::Store(_)), "{e:?}");
        }
        assert!(store.indicators(None, None, 10).await.unwrap().is_empty());
        assert!(
            store
                .audit_entries(0, 10, Some("indicator."))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(matches!(
            store.indicator("ip", "999.1.1.1").await,
            Err(IndicatorError::BadValue { .. })
        ));
        assert!(store.indicator("ip", "192.0.2.1").await.unwrap().is_none());
    });

    both_dialects!(indicators_keep_the_latest_sources_only, |store| {
        let who = Actor::cli();
        for n in 0..MAX_SOURCES + 5 {
            store
                .set_verdict(
                    "hash",
                    &"0".repeat(40),
                    "suspicious",
                    Some(n as i64),
                    Some(&format!("feed-{n}")),
                    &who,
                )
                .await
                .unwrap();
        }
        let i = store.indicator("hash", &"0".repeat(40)).await.unwrap().unwrap();
        assert_eq!(i.sources.len(), MAX_SOURCES);
        assert_eq!(i.sources[0].source, "feed-5");
        assert_eq!(
            i.sources[MAX_SOURCES - 1].source,
            format!("feed-{}", MAX_SOURCES + 4)
        );
        assert_eq!(i.score, Some(MAX_SOURCES as i64 + 4));
    });
}
