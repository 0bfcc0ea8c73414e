//! Named allow and block lists of IPs, domains or URLs whose entries may expire, served as
//! External Dynamic Lists by `server/edl.rs`.
//!
//! Values are checked and stored in a canonical form by the list's entry type (see
//! [`canonical_value`]). Every change is audited in its own transaction: `list.create`,
//! `list.delete`, `list.add`, `list.update` (a value added again: new reason and expiry),
//! `list.remove` and `list.expire` (the expiry job). An entry is never served from its
//! `expires_at` on, whether or not the job has removed it yet.
//!
//! Writers take the list's row first (an `UPDATE lists`), then its entries, then the audit
//! head: one order for everyone, so the entry limit is checked under that lock and writers on
//! PostgreSQL do not deadlock.

use super::audit::{self, Actor, Change};
use super::page::{self, Arg, Keyset, Page};
use super::values::{ValueError, check_host_name, host_name, ip_value, shown, trimmed_value};
use super::{Result, Store, StoreError, now_ms};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use thiserror::Error;

/// The longest value, in characters (PAN-OS URL entries are at most 255).
pub const MAX_VALUE_LEN: usize = 255;
/// The longest reason or description, in characters.
pub const MAX_TEXT_LEN: usize = 1024;

/// What a list is for. Osprey serves both the same way; the firewall rule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ListKind {
    Block,
    Allow,
}

impl ListKind {
    pub const NAMES: &[&str] = &["block", "allow"];

    pub fn as_str(self) -> &'static str {
        match self {
            ListKind::Block => "block",
            ListKind::Allow => "allow",
        }
    }

    pub fn from_name(name: &str) -> Option<ListKind> {
        match name {
            "block" => Some(ListKind::Block),
            "allow" => Some(ListKind::Allow),
            _ => None,
        }
    }
}

/// What a list's entries are, as PAN-OS EDL types have it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EntryType {
    /// IPv4 and IPv6 addresses and CIDRs.
    Ip,
    /// Host names, optionally with a leading `*.`.
    Domain,
    /// URLs without their scheme: `host[:port][/path]`.
    Url,
}

impl EntryType {
    pub const NAMES: &[&str] = &["ip", "domain", "url"];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryType::Ip => "ip",
            EntryType::Domain => "domain",
            EntryType::Url => "url",
        }
    }

    pub fn from_name(name: &str) -> Option<EntryType> {
        match name {
            "ip" => Some(EntryType::Ip),
            "domain" => Some(EntryType::Domain),
            "url" => Some(EntryType::Url),
            _ => None,
        }
    }
}

impl std::fmt::Display for EntryType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a list operation was refused.
#[derive(Debug, Error)]
pub enum ListError {
    /// The message of [`crate::names::check`].
    #[error("{0}")]
    BadName(String),
    #[error("no list named '{0}'")]
    NoSuchList(String),
    #[error("a list named '{0}' exists already")]
    Exists(String),
    #[error("'{value}' is not a valid {entry_type} entry for list '{list}': {why}")]
    BadValue {
        list: String,
        entry_type: EntryType,
        value: String,
        why: EntryValueError,
    },
    #[error(
        "list '{list}' would hold {would} live entries; the most is {max} (lists.max_entries); nothing was added"
    )]
    Full { list: String, would: usize, max: usize },
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ListError {
    fn from(e: sqlx::Error) -> Self {
        ListError::Store(e.into())
    }
}

/// Why a value is not an entry of a list's type.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EntryValueError {
    #[error(transparent)]
    Value(#[from] ValueError),
    #[error("not an IP address or CIDR (such as 192.0.2.1, 10.0.0.0/8 or 2001:db8::/32)")]
    NotIp,
    #[error("it is an IP address, not a domain; use a list of type ip")]
    DomainIsIp,
    #[error("it looks like a URL or has a port; give the domain only, or use a list of type url")]
    DomainIsUrl,
    #[error(
        "only http:// and https:// URLs can be listed (the scheme is removed: PAN-OS URL lists hold host/path)"
    )]
    Scheme,
    #[error("it is not ASCII; percent-encode the path and write the host in its xn-- (punycode) form")]
    UrlNotAscii,
    #[error("it has user information ('user@'); list the host and path only")]
    UserInfo,
    #[error("the IPv6 host has no closing ']'")]
    UnclosedIpv6,
    #[error("'[{0}]' is not an IPv6 address")]
    BadIpv6(String),
    #[error("'{0}' is not a port number")]
    BadPort(String),
    #[error("'{0}' follows the host; expected ':PORT' or a path")]
    AfterHost(String),
}

/// The columns a list's entries may be sorted by (`GET /api/v1/lists/{name}/entries?sort=`).
pub const ENTRY_SORTS: &[&str] = &["value", "created_at", "updated_at"];

/// A list and how many live entries it has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ListInfo {
    pub name: String,
    pub kind: ListKind,
    pub entry_type: EntryType,
    pub description: String,
    pub created_at: i64,
    pub updated_at: i64,
    /// Entries not expired now.
    pub entries: i64,
}

/// One entry of a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ListEntry {
    pub value: String,
    pub reason: String,
    /// The actor who added it or last updated it.
    pub added_by: String,
    /// The run that added it or last updated it, if a playbook did.
    pub run_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub expires_at: Option<i64>,
}

/// What each value added by one call carries.
#[derive(Debug, Clone, Copy)]
pub struct NewEntry<'a> {
    /// Why it is on the list (required).
    pub reason: &'a str,
    /// When it stops being served (Unix ms, in the future); `None`: never.
    pub expires_at: Option<i64>,
    /// The run adding it, if a playbook does.
    pub run_id: Option<&'a str>,
}

/// What an add did, by canonical value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Added {
    /// Values that were not on the list (or only expired).
    pub added: Vec<String>,
    /// Values that were on the list: their reason and expiry were replaced.
    pub updated: Vec<String>,
}

/// What a remove did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Removed {
    pub removed: Vec<String>,
    /// Values that were not on the list.
    pub missing: Vec<String>,
}

/// A list as served: one live entry per line, in byte order, and its strong validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edl {
    pub body: String,
    /// A quoted strong ETag: a hash of the body, so it changes exactly when the body does.
    pub etag: String,
    pub entries: usize,
}

impl Edl {
    fn render(mut values: Vec<String>) -> Edl {
        // Byte order, not the database's collation: the same body (and ETag) on every node.
        values.sort();
        let mut body = String::with_capacity(values.iter().map(|v| v.len() + 1).sum());
        for v in &values {
            body.push_str(v);
            body.push('\n');
        }
        let hash = hex::encode(Sha256::digest(body.as_bytes()));
        Edl {
            etag: format!("\"{}\"", &hash[..32]),
            entries: values.len(),
            body,
        }
    }
}

/// Check a list name ([`crate::names::check`]).
pub fn validate_list_name(name: &str) -> Result<(), ListError> {
    crate::names::check("list", name).map_err(|e| ListError::BadName(e.to_string()))
}

/// The canonical form of `raw` as an entry of type `entry_type`, or why it is not one.
///
/// - `ip`: an IPv4 or IPv6 address or CIDR; a CIDR is cut to its network (`10.1.2.3/8` is
///   `10.0.0.0/8`) and a host prefix (`/32`, `/128`) is dropped.
/// - `domain`: a host name, lower-cased, without a trailing dot, optionally with a leading
///   `*.` wildcard (as PAN-OS allows); internationalised names in their `xn--` form.
/// - `url`: `host[:port][/path][?query]` as PAN-OS URL lists hold them; `http://` and
///   `https://` are removed, the host is lower-cased (its labels may be `*` or `^`), a
///   `#fragment` is dropped.
pub fn canonical_value(entry_type: EntryType, raw: &str) -> Result<String, EntryValueError> {
    // Cheap first; the canonical form (without a scheme, say) is measured below.
    let v = trimmed_value(raw, 2 * MAX_VALUE_LEN, MAX_VALUE_LEN)?;
    let canonical = match entry_type {
        EntryType::Ip => canonical_ip(v)?,
        EntryType::Domain => canonical_domain(v)?,
        EntryType::Url => canonical_url(v)?,
    };
    if canonical.len() > MAX_VALUE_LEN {
        return Err(ValueError::TooLong(MAX_VALUE_LEN).into());
    }
    Ok(canonical)
}

fn canonical_ip(v: &str) -> Result<String, EntryValueError> {
    ip_value(v).map(|ip| ip.to_string()).ok_or(EntryValueError::NotIp)
}

fn canonical_domain(v: &str) -> Result<String, EntryValueError> {
    if v.parse::<IpAddr>().is_ok() {
        return Err(EntryValueError::DomainIsIp);
    }
    if v.contains('/') || v.contains(':') {
        return Err(EntryValueError::DomainIsUrl);
    }
    let lower = v.to_ascii_lowercase();
    let (wildcard, host) = match lower.strip_prefix("*.") {
        Some(host) => ("*.", host),
        None => ("", lower.as_str()),
    };
    Ok(format!("{wildcard}{}", host_name(host)?))
}

fn canonical_url(v: &str) -> Result<String, EntryValueError> {
    let lower = v.to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &v[7..]
    } else if lower.starts_with("https://") {
        &v[8..]
    } else {
        v
    };
    if rest.contains("://") {
        return Err(EntryValueError::Scheme);
    }
    if !rest.is_ascii() {
        return Err(EntryValueError::UrlNotAscii);
    }
    let rest = rest.split('#').next().unwrap_or_default();
    let split = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(split);
    if authority.contains('@') {
        return Err(EntryValueError::UserInfo);
    }
    let authority = authority.to_ascii_lowercase();
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or(EntryValueError::UnclosedIpv6)?;
        let addr: std::net::Ipv6Addr = addr
            .parse()
            .map_err(|_| EntryValueError::BadIpv6(addr.to_owned()))?;
        (format!("[{addr}]"), after)
    } else {
        let (host, port) = match authority.find(':') {
            Some(i) => authority.split_at(i),
            None => (authority.as_str(), ""),
        };
        // A name (with `*` or `^` labels) or an IPv4 address, which passes as a name too.
        check_host_name(host, true)?;
        (host.to_owned(), port)
    };
    if let Some(p) = port.strip_prefix(':')
        && !p.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(EntryValueError::BadPort(p.to_owned()));
    } else if !port.is_empty() && !port.starts_with(':') {
        return Err(EntryValueError::AfterHost(port.to_owned()));
    }
    Ok(format!("{host}{port}{path}"))
}

fn check_text(what: &str, text: &str, required: bool) -> Result<(), ListError> {
    if required && text.trim().is_empty() {
        return Err(ListError::Invalid(format!("the {what} is empty; say why")));
    }
    if text.chars().count() > MAX_TEXT_LEN {
        return Err(ListError::Invalid(format!(
            "the {what} is longer than {MAX_TEXT_LEN} characters"
        )));
    }
    Ok(())
}

/// Whether the insert failed on a unique constraint (the name is taken).
fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// A `lists` row with its count of live entries, by column name.
#[derive(sqlx::FromRow)]
struct ListRow {
    name: String,
    kind: String,
    entry_type: String,
    description: String,
    created_at: i64,
    updated_at: i64,
    entries: i64,
}

fn list_info(
    ListRow {
        name,
        kind,
        entry_type,
        description,
        created_at,
        updated_at,
        entries,
    }: ListRow,
) -> Result<ListInfo> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("list {name}: {what}"));
    Ok(ListInfo {
        kind: ListKind::from_name(&kind).ok_or_else(|| corrupt(&format!("kind '{kind}'")))?,
        entry_type: EntryType::from_name(&entry_type)
            .ok_or_else(|| corrupt(&format!("type '{entry_type}'")))?,
        name,
        description,
        created_at,
        updated_at,
        entries,
    })
}

const LIST_COLUMNS: &str = "l.name, l.kind, l.entry_type, l.description, l.created_at, l.updated_at,
    (SELECT COUNT(*) FROM list_entries e WHERE e.list = l.name AND (e.expires_at IS NULL OR e.expires_at > $1)) AS entries";

/// A `list_entries` row, by column name.
#[derive(sqlx::FromRow)]
struct EntryRow {
    value: String,
    reason: String,
    added_by: String,
    run_id: Option<String>,
    created_at: i64,
    updated_at: i64,
    expires_at: Option<i64>,
}

fn list_entry(
    EntryRow {
        value,
        reason,
        added_by,
        run_id,
        created_at,
        updated_at,
        expires_at,
    }: EntryRow,
) -> ListEntry {
    ListEntry {
        value,
        reason,
        added_by,
        run_id,
        created_at,
        updated_at,
        expires_at,
    }
}

/// An entry's reason and expiry, as adding it again reads them.
#[derive(sqlx::FromRow)]
struct LiveRow {
    value: String,
    reason: String,
    expires_at: Option<i64>,
}

/// A list's kind and entry type, as a writer reads them when it takes the list's row.
#[derive(sqlx::FromRow)]
struct KindRow {
    kind: String,
    entry_type: String,
}

/// Bound parameters per lookup statement (well under both dialects' limits).
const LOOKUP_CHUNK: usize = 500;

impl Store {
    /// Create an empty list (audited as `list.create`).
    pub async fn create_list(
        &self,
        name: &str,
        kind: ListKind,
        entry_type: EntryType,
        description: &str,
        actor: &Actor,
    ) -> Result<(), ListError> {
        validate_list_name(name)?;
        check_text("description", description, false)?;
        let now = now_ms();
        let mut tx = self.writer.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO lists (name, kind, entry_type, description, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(name)
        .bind(kind.as_str())
        .bind(entry_type.as_str())
        .bind(description)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => return Err(ListError::Exists(name.to_owned())),
            other => other?,
        };
        let change = Change {
            actor,
            action: "list.create",
            target: format!("list:{name}"),
            details: serde_json::json!({
                "kind": kind, "type": entry_type, "description": description
            }),
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Delete a list and its entries (audited as `list.delete`, with the number of entries).
    /// Returns how many entries it had.
    pub async fn delete_list(&self, name: &str, actor: &Actor) -> Result<i64, ListError> {
        let mut tx = self.writer.begin().await?;
        let (kind, entry_type) = lock_list(&mut tx, name).await?;
        let entries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM list_entries WHERE list = $1")
            .bind(name)
            .fetch_one(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM list_entries WHERE list = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM lists WHERE name = $1")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let change = Change {
            actor,
            action: "list.delete",
            target: format!("list:{name}"),
            details: serde_json::json!({ "kind": kind, "type": entry_type, "entries": entries }),
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(entries)
    }

    /// Every list, by name, with its number of live entries.
    pub async fn lists(&self) -> Result<Vec<ListInfo>> {
        let sql = format!("SELECT {LIST_COLUMNS} FROM lists l ORDER BY l.name");
        let rows: Vec<ListRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now_ms())
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(list_info).collect()
    }

    /// One list, with its number of live entries.
    pub async fn list(&self, name: &str) -> Result<Option<ListInfo>> {
        let sql = format!("SELECT {LIST_COLUMNS} FROM lists l WHERE l.name = $2");
        let row: Option<ListRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(now_ms())
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(list_info).transpose()
    }

    /// A list's entries by value: the live ones, or also those expired but not yet removed.
    pub async fn list_entries(&self, name: &str, include_expired: bool) -> Result<Vec<ListEntry>, ListError> {
        if self.list(name).await?.is_none() {
            return Err(ListError::NoSuchList(name.to_owned()));
        }
        let rows: Vec<EntryRow> = sqlx::query_as(
            "SELECT value, reason, added_by, run_id, created_at, updated_at, expires_at FROM list_entries
             WHERE list = $1 AND ($2 OR expires_at IS NULL OR expires_at > $3) ORDER BY value",
        )
        .bind(name)
        .bind(include_expired)
        .bind(now_ms())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(list_entry).collect())
    }

    /// One page of a list's live entries (or also those expired but not yet removed), in
    /// the order of `keyset` (one of [`ENTRY_SORTS`]).
    pub async fn list_entry_page(
        &self,
        name: &str,
        include_expired: bool,
        keyset: &Keyset,
    ) -> Result<Page<ListEntry>, ListError> {
        if self.list(name).await?.is_none() {
            return Err(ListError::NoSuchList(name.to_owned()));
        }
        let mut conditions = "list = $1".to_owned();
        let mut args: Vec<Arg> = vec![name.into()];
        if !include_expired {
            conditions.push_str(" AND (expires_at IS NULL OR expires_at > $2)");
            args.push(now_ms().into());
        }
        let page: Page<EntryRow> = page::fetch(
            &self.pool,
            "SELECT value, reason, added_by, run_id, created_at, updated_at, expires_at FROM list_entries",
            &conditions,
            args,
            keyset,
            ENTRY_SORTS,
            "value",
        )
        .await?;
        Ok(page.try_map(|row| Ok(list_entry(row)))?)
    }

    /// Add one value; see [`Store::add_list_entries`].
    #[allow(clippy::too_many_arguments)]
    pub async fn add_list_entry(
        &self,
        list: &str,
        value: &str,
        expires_at: Option<i64>,
        reason: &str,
        run_id: Option<&str>,
        max_entries: usize,
        actor: &Actor,
    ) -> Result<Added, ListError> {
        let entry = NewEntry {
            reason,
            expires_at,
            run_id,
        };
        self.add_list_entries(list, &[value], &entry, max_entries, actor)
            .await
    }

    /// Add values to a list, all or none: each is checked and put in canonical form for the
    /// list's type, and the list may then hold at most `max_entries` live entries. A value
    /// already on the list gets the new reason, expiry, actor and run. Audited as `list.add`
    /// (new values) and `list.update` (values that were there, with their previous reason
    /// and expiry).
    pub async fn add_list_entries<S: AsRef<str>>(
        &self,
        list: &str,
        values: &[S],
        entry: &NewEntry<'_>,
        max_entries: usize,
        actor: &Actor,
    ) -> Result<Added, ListError> {
        check_text("reason", entry.reason, true)?;
        let now = now_ms();
        if let Some(at) = entry.expires_at
            && at <= now
        {
            return Err(ListError::Invalid(format!(
                "the expiry ({at} ms) is not in the future; an entry must live for a while"
            )));
        }
        let mut tx = self.writer.begin().await?;
        let (_, entry_type) = lock_list(&mut tx, list).await?;
        let mut canonical = BTreeSet::new();
        for raw in values {
            let raw = raw.as_ref();
            let value = canonical_value(entry_type, raw).map_err(|why| ListError::BadValue {
                list: list.to_owned(),
                entry_type,
                value: shown(raw),
                why,
            })?;
            canonical.insert(value);
        }
        // What is there now: value → (reason, expiry).
        let canonical: Vec<String> = canonical.into_iter().collect();
        let mut existing: BTreeMap<String, (String, Option<i64>)> = BTreeMap::new();
        for chunk in canonical.chunks(LOOKUP_CHUNK) {
            let placeholders: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT value, reason, expires_at FROM list_entries WHERE list = $1 AND value IN ({})",
                placeholders.join(", ")
            );
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(list);
            for v in chunk {
                query = query.bind(v);
            }
            let rows: Vec<LiveRow> = query.fetch_all(&mut *tx).await?;
            existing.extend(rows.into_iter().map(|r| (r.value, (r.reason, r.expires_at))));
        }
        let live = |e: Option<i64>| e.is_none_or(|at| at > now);
        let mut done = Added::default();
        let mut previous = Vec::new();
        for v in &canonical {
            match existing.get(v) {
                Some((reason, expires_at)) if live(*expires_at) => {
                    done.updated.push(v.clone());
                    previous.push(serde_json::json!({
                        "value": v, "reason": reason, "expires_at": expires_at
                    }));
                }
                _ => done.added.push(v.clone()),
            }
        }
        if !done.added.is_empty() {
            let live_now: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM list_entries WHERE list = $1 AND (expires_at IS NULL OR expires_at > $2)",
            )
            .bind(list)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            let would = live_now as usize + done.added.len();
            if would > max_entries {
                return Err(ListError::Full {
                    list: list.to_owned(),
                    would,
                    max: max_entries,
                });
            }
        }
        for v in &canonical {
            let statement = if existing.contains_key(v) {
                "UPDATE list_entries SET reason = $3, added_by = $4, run_id = $5, updated_at = $6, expires_at = $7
                 WHERE list = $1 AND value = $2"
            } else {
                "INSERT INTO list_entries (list, value, reason, added_by, run_id, created_at, updated_at, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $7)"
            };
            sqlx::query(statement)
                .bind(list)
                .bind(v)
                .bind(entry.reason)
                .bind(actor.as_str())
                .bind(entry.run_id)
                .bind(now)
                .bind(entry.expires_at)
                .execute(&mut *tx)
                .await?;
        }
        let common = |values: &[String]| {
            serde_json::json!({
                "values": values,
                "reason": entry.reason,
                "expires_at": entry.expires_at,
                "run_id": entry.run_id,
            })
        };
        if !done.added.is_empty() {
            let change = Change {
                actor,
                action: "list.add",
                target: format!("list:{list}"),
                details: common(&done.added),
            };
            audit::append(&mut tx, &self.audit_key, &change).await?;
        }
        if !done.updated.is_empty() {
            let mut details = common(&done.updated);
            details["previous"] = serde_json::Value::Array(previous);
            let change = Change {
                actor,
                action: "list.update",
                target: format!("list:{list}"),
                details,
            };
            audit::append(&mut tx, &self.audit_key, &change).await?;
        }
        tx.commit().await?;
        Ok(done)
    }

    /// Remove one value; see [`Store::remove_list_entries`].
    pub async fn remove_list_entry(&self, list: &str, value: &str, actor: &Actor) -> Result<bool, ListError> {
        Ok(!self
            .remove_list_entries(list, &[value], actor)
            .await?
            .removed
            .is_empty())
    }

    /// Remove values from a list (audited as `list.remove`, if any was there). A value is
    /// put in canonical form first, so `10.0.0.1/32` removes `10.0.0.1`.
    pub async fn remove_list_entries<S: AsRef<str>>(
        &self,
        list: &str,
        values: &[S],
        actor: &Actor,
    ) -> Result<Removed, ListError> {
        let mut tx = self.writer.begin().await?;
        let (_, entry_type) = lock_list(&mut tx, list).await?;
        let values: BTreeSet<String> = values
            .iter()
            .map(|raw| {
                let raw = raw.as_ref();
                canonical_value(entry_type, raw).unwrap_or_else(|_| raw.trim().to_owned())
            })
            .collect();
        let mut done = Removed::default();
        for v in values {
            let gone = sqlx::query("DELETE FROM list_entries WHERE list = $1 AND value = $2")
                .bind(list)
                .bind(&v)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                > 0;
            if gone {
                done.removed.push(v);
            } else {
                done.missing.push(v);
            }
        }
        if done.removed.is_empty() {
            // Nothing changed: drop the transaction (and the touch of updated_at).
            return Ok(done);
        }
        let change = Change {
            actor,
            action: "list.remove",
            target: format!("list:{list}"),
            details: serde_json::json!({ "values": done.removed }),
        };
        audit::append(&mut tx, &self.audit_key, &change).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Remove every entry expired at `now`, one transaction, one `list.expire` entry per
    /// list naming the values removed. Returns the values removed, by list.
    pub async fn expire_list_entries(&self, now: i64, actor: &Actor) -> Result<Vec<(String, Vec<String>)>> {
        // A read first, so that the usual case (nothing expired) takes no write lock.
        let mut lists: Vec<String> =
            sqlx::query_scalar("SELECT DISTINCT list FROM list_entries WHERE expires_at <= $1")
                .bind(now)
                .fetch_all(&self.pool)
                .await?;
        if lists.is_empty() {
            return Ok(Vec::new());
        }
        lists.sort();
        let mut tx = self.writer.begin().await?;
        let mut done = Vec::new();
        for name in lists {
            let touched = sqlx::query("UPDATE lists SET updated_at = $1 WHERE name = $2")
                .bind(now_ms())
                .bind(&name)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if touched == 0 {
                continue;
            }
            let mut values: Vec<String> = sqlx::query_scalar(
                "DELETE FROM list_entries WHERE list = $1 AND expires_at <= $2 RETURNING value",
            )
            .bind(&name)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            if values.is_empty() {
                continue;
            }
            values.sort();
            let change = Change {
                actor,
                action: "list.expire",
                target: format!("list:{name}"),
                details: serde_json::json!({ "values": values }),
            };
            audit::append(&mut tx, &self.audit_key, &change).await?;
            done.push((name, values));
        }
        tx.commit().await?;
        Ok(done)
    }

    /// A list as served at `now` (live entries only), or `None` if there is no such list.
    pub async fn edl(&self, name: &str, now: i64) -> Result<Option<Edl>> {
        let exists: Option<String> = sqlx::query_scalar("SELECT name FROM lists WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let values: Vec<String> = sqlx::query_scalar(
            "SELECT value FROM list_entries WHERE list = $1 AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(name)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(Edl::render(values)))
    }
}

/// Take the list's row for this transaction (writers of one list queue here); its kind and
/// entry type.
async fn lock_list(conn: &mut sqlx::AnyConnection, name: &str) -> Result<(ListKind, EntryType), ListError> {
    let row: Option<KindRow> =
        sqlx::query_as("UPDATE lists SET updated_at = $1 WHERE name = $2 RETURNING kind, entry_type")
            .bind(now_ms())
            .bind(name)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(KindRow { kind, entry_type }) = row else {
        return Err(ListError::NoSuchList(name.to_owned()));
    };
    let corrupt = |what: String| ListError::Store(StoreError::Corrupt(format!("list {name}: {what}")));
    Ok((
        ListKind::from_name(&kind).ok_or_else(|| corrupt(format!("kind '{kind}'")))?,
        EntryType::from_name(&entry_type).ok_or_else(|| corrupt(format!("type '{entry_type}'")))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::both_dialects;

    const MAX: usize = 1000;

    fn why(entry_type: EntryType, raw: &str) -> String {
        canonical_value(entry_type, raw).unwrap_err().to_string()
    }

    #[test]
    fn lists_values_are_put_in_canonical_form() {
        let ip = |v: &str| canonical_value(EntryType::Ip, v).unwrap();
        assert_eq!(ip(" 192.0.2.1 "), "192.0.2.1");
        assert_eq!(ip("10.1.2.3/8"), "10.0.0.0/8");
        assert_eq!(ip("192.0.2.1/32"), "192.0.2.1");
        assert_eq!(ip("2001:DB8:0:0::1"), "2001:db8::1");
        assert_eq!(ip("2001:db8::1/128"), "2001:db8::1");
        assert_eq!(ip("2001:db8:ffff::/32"), "2001:db8::/32");
        let domain = |v: &str| canonical_value(EntryType::Domain, v).unwrap();
        assert_eq!(domain("Evil.Example."), "evil.example");
        assert_eq!(domain("*.Evil.example"), "*.evil.example");
        assert_eq!(domain("xn--bcher-kva.example"), "xn--bcher-kva.example");
        let url = |v: &str| canonical_value(EntryType::Url, v).unwrap();
        assert_eq!(
            url("HTTPS://Evil.Example/Login?x=1#top"),
            "evil.example/Login?x=1"
        );
        assert_eq!(url("http://evil.example:8080/a"), "evil.example:8080/a");
        assert_eq!(url("evil.example/"), "evil.example/");
        assert_eq!(url("*.evil.example/path"), "*.evil.example/path");
        assert_eq!(url("www.*.example/*"), "www.*.example/*");
        assert_eq!(url("https://192.0.2.1/x"), "192.0.2.1/x");
        assert_eq!(url("http://[2001:DB8::1]:81/x"), "[2001:db8::1]:81/x");
    }

    #[test]
    fn lists_bad_values_say_why() {
        assert!(why(EntryType::Ip, "10.0.0.300").contains("not an IP address or CIDR"));
        assert!(why(EntryType::Ip, "10.0.0.0/33").contains("not an IP address or CIDR"));
        assert!(why(EntryType::Ip, "evil.example").contains("not an IP address or CIDR"));
        assert!(why(EntryType::Ip, "").contains("empty"));
        assert!(why(EntryType::Domain, "192.0.2.1").contains("list of type ip"));
        assert!(why(EntryType::Domain, "evil.example/x").contains("list of type url"));
        assert!(why(EntryType::Domain, "ev il.example").contains("white space"));
        assert!(why(EntryType::Domain, "a..example").contains("empty label"));
        assert!(why(EntryType::Domain, "-a.example").contains("starts or ends with '-'"));
        assert!(why(EntryType::Domain, "a.*.example").contains("wildcard"));
        assert!(why(EntryType::Domain, "bücher.example").contains("punycode"));
        assert!(why(EntryType::Domain, &format!("{}.example", "a".repeat(64))).contains("63"));
        assert!(why(EntryType::Url, "ftp://evil.example/x").contains("http:// and https://"));
        assert!(why(EntryType::Url, "https://user@evil.example/").contains("user"));
        assert!(why(EntryType::Url, "evil.example:99999/").contains("port"));
        assert!(why(EntryType::Url, "https:///x").contains("no host"));
        assert!(why(EntryType::Url, "ev*l.example/").contains("wildcard"));
        // The longest value: 255 characters in canonical form.
        let path = "a".repeat(MAX_VALUE_LEN - "evil.example/".len());
        assert_eq!(
            canonical_value(EntryType::Url, &format!("https://evil.example/{path}"))
                .unwrap()
                .len(),
            MAX_VALUE_LEN
        );
        assert!(why(EntryType::Url, &format!("evil.example/{path}a")).contains("longer than 255"));
        assert!(why(EntryType::Url, &"a".repeat(5000)).contains("longer than 255"));
        assert!(validate_list_name("blocked-ips-2").is_ok());
        for bad in ["", "Blocked", "blocked_ips", "a/b", &"a".repeat(65)] {
            assert!(validate_list_name(bad).is_err(), "{bad}");
        }
    }

    async fn add(
        store: &Store,
        list: &str,
        values: &[&str],
        expires_at: Option<i64>,
    ) -> Result<Added, ListError> {
        let entry = NewEntry {
            reason: "test",
            expires_at,
            run_id: None,
        };
        store
            .add_list_entries(list, values, &entry, MAX, &Actor::system())
            .await
    }

    async fn served(store: &Store, list: &str, now: i64) -> Vec<String> {
        let edl = store.edl(list, now).await.unwrap().unwrap();
        edl.body.lines().map(str::to_owned).collect()
    }

    both_dialects!(lists_are_created_listed_and_deleted, |store| {
        let who = Actor::cli();
        store
            .create_list("blocked-ips", ListKind::Block, EntryType::Ip, "scanners", &who)
            .await
            .unwrap();
        let e = store
            .create_list("blocked-ips", ListKind::Allow, EntryType::Url, "", &who)
            .await
            .unwrap_err();
        assert!(matches!(e, ListError::Exists(_)), "{e}");
        let e = store
            .create_list("Bad Name", ListKind::Block, EntryType::Ip, "", &who)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("list name 'Bad Name' must be"), "{e}");
        store
            .create_list("allowed", ListKind::Allow, EntryType::Domain, "", &who)
            .await
            .unwrap();
        add(store, "blocked-ips", &["192.0.2.1", "10.0.0.0/8"], None)
            .await
            .unwrap();
        let lists = store.lists().await.unwrap();
        assert_eq!(
            lists
                .iter()
                .map(|l| (l.name.as_str(), l.entries))
                .collect::<Vec<_>>(),
            [("allowed", 0), ("blocked-ips", 2)]
        );
        let l = store.list("blocked-ips").await.unwrap().unwrap();
        assert_eq!(
            (l.kind, l.entry_type, l.description.as_str()),
            (ListKind::Block, EntryType::Ip, "scanners")
        );
        assert_eq!(store.delete_list("blocked-ips", &who).await.unwrap(), 2);
        assert!(store.list("blocked-ips").await.unwrap().is_none());
        assert!(store.edl("blocked-ips", now_ms()).await.unwrap().is_none());
        assert!(matches!(
            store.delete_list("blocked-ips", &who).await.unwrap_err(),
            ListError::NoSuchList(_)
        ));
        // The entries went with it: a new list of the same name starts empty.
        store
            .create_list("blocked-ips", ListKind::Block, EntryType::Ip, "", &who)
            .await
            .unwrap();
        assert!(store.list_entries("blocked-ips", true).await.unwrap().is_empty());
        let audit: Vec<(String, serde_json::Value)> = store
            .audit_entries(0, 100, Some("list."))
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.action, e.details))
            .collect();
        let actions: Vec<&str> = audit.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(
            actions,
            [
                "list.create",
                "list.create",
                "list.add",
                "list.delete",
                "list.create"
            ]
        );
        assert_eq!(audit[3].1["entries"], 2);
    });

    both_dialects!(lists_entries_are_added_updated_and_removed, |store| {
        let who = Actor::token("soc-playbooks");
        store
            .create_list("blocked-ips", ListKind::Block, EntryType::Ip, "", &who)
            .await
            .unwrap();
        let later = now_ms() + 3_600_000;
        let entry = NewEntry {
            reason: "C2 seen in alert a1",
            expires_at: Some(later),
            run_id: Some("r1"),
        };
        let done = store
            .add_list_entries(
                "blocked-ips",
                &["192.0.2.1/32", "10.1.2.3/8", "192.0.2.1"],
                &entry,
                MAX,
                &who,
            )
            .await
            .unwrap();
        assert_eq!(done.added, ["10.0.0.0/8", "192.0.2.1"]);
        assert!(done.updated.is_empty());
        // Again, with a new reason and no expiry: an update.
        let done = store
            .add_list_entry(
                "blocked-ips",
                "192.0.2.1",
                None,
                "confirmed",
                None,
                MAX,
                &Actor::cli(),
            )
            .await
            .unwrap();
        assert_eq!(
            (done.added.len(), done.updated.as_slice()),
            (0, &["192.0.2.1".to_string()][..])
        );
        let entries = store.list_entries("blocked-ips", false).await.unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            (
                entries[0].value.as_str(),
                entries[0].reason.as_str(),
                entries[0].expires_at,
                entries[0].run_id.as_deref()
            ),
            ("10.0.0.0/8", "C2 seen in alert a1", Some(later), Some("r1"))
        );
        assert_eq!(entries[0].added_by, "token:soc-playbooks");
        assert_eq!(
            (
                entries[1].reason.as_str(),
                entries[1].expires_at,
                entries[1].run_id.as_deref()
            ),
            ("confirmed", None, None)
        );
        assert_eq!(entries[1].added_by, Actor::cli().as_str());
        assert_eq!(
            served(store, "blocked-ips", now_ms()).await,
            ["10.0.0.0/8", "192.0.2.1"]
        );

        // A bad value names the value and the type, and nothing of the call is added.
        let e = add(store, "blocked-ips", &["198.51.100.7", "10.0.0.300"], None)
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("'10.0.0.300'") && msg.contains("ip entry"), "{msg}");
        assert_eq!(store.list_entries("blocked-ips", true).await.unwrap().len(), 2);
        let e = add(store, "nope", &["192.0.2.9"], None).await.unwrap_err();
        assert!(matches!(e, ListError::NoSuchList(_)), "{e}");
        let e = store
            .add_list_entry("blocked-ips", "192.0.2.9", None, "  ", None, MAX, &who)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("reason is empty"), "{e}");
        let e = add(store, "blocked-ips", &["192.0.2.9"], Some(now_ms() - 1))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("not in the future"), "{e}");

        let done = store
            .remove_list_entries("blocked-ips", &["192.0.2.1/32", "203.0.113.1"], &who)
            .await
            .unwrap();
        assert_eq!(done.removed, ["192.0.2.1"]);
        assert_eq!(done.missing, ["203.0.113.1"]);
        assert!(
            !store
                .remove_list_entry("blocked-ips", "203.0.113.1", &who)
                .await
                .unwrap()
        );
        assert_eq!(served(store, "blocked-ips", now_ms()).await, ["10.0.0.0/8"]);

        let audit = store.audit_entries(0, 100, Some("list.")).await.unwrap();
        let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["list.create", "list.add", "list.update", "list.remove"]);
        assert_eq!(audit[1].target, "list:blocked-ips");
        assert_eq!(
            audit[1].details["values"],
            serde_json::json!(["10.0.0.0/8", "192.0.2.1"])
        );
        assert_eq!(audit[1].details["run_id"], "r1");
        assert_eq!(audit[2].details["previous"][0]["reason"], "C2 seen in alert a1");
        assert_eq!(audit[2].details["previous"][0]["expires_at"], later);
        assert_eq!(audit[3].details["values"], serde_json::json!(["192.0.2.1"]));
        assert!(matches!(
            store.verify_audit().await.unwrap(),
            crate::store::audit::Verification::Intact { .. }
        ));
    });

    both_dialects!(
        lists_refuse_more_than_max_entries_and_keep_what_they_have,
        |store| {
            let who = Actor::cli();
            store
                .create_list("small", ListKind::Block, EntryType::Domain, "", &who)
                .await
                .unwrap();
            let entry = NewEntry {
                reason: "feed",
                expires_at: None,
                run_id: None,
            };
            store
                .add_list_entries("small", &["a.example", "b.example"], &entry, 3, &who)
                .await
                .unwrap();
            let e = store
                .add_list_entries("small", &["c.example", "d.example"], &entry, 3, &who)
                .await
                .unwrap_err();
            assert_eq!(
                e.to_string(),
                "list 'small' would hold 4 live entries; the most is 3 (lists.max_entries); nothing was added"
            );
            assert_eq!(served(store, "small", now_ms()).await, ["a.example", "b.example"]);
            // Updating values already there needs no room; filling the last place is fine.
            store
                .add_list_entries("small", &["a.example", "b.example", "c.example"], &entry, 3, &who)
                .await
                .unwrap();
            assert!(matches!(
                store
                    .add_list_entries("small", &["d.example"], &entry, 3, &who)
                    .await,
                Err(ListError::Full { would: 4, max: 3, .. })
            ));
            assert_eq!(
                served(store, "small", now_ms()).await,
                ["a.example", "b.example", "c.example"]
            );
            // An expired entry does not count: once it is past, there is room again.
            let soon = now_ms() + 200;
            store.remove_list_entry("small", "c.example", &who).await.unwrap();
            let short = NewEntry {
                expires_at: Some(soon),
                ..entry
            };
            store
                .add_list_entries("small", &["c.example"], &short, 3, &who)
                .await
                .unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            let done = store
                .add_list_entries("small", &["d.example"], &entry, 3, &who)
                .await
                .unwrap();
            assert_eq!(done.added, ["d.example"]);
            let actions: Vec<String> = store
                .audit_entries(0, 100, Some("list."))
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.action)
                .collect();
            assert_eq!(
                actions,
                [
                    "list.create",
                    "list.add",
                    "list.add",
                    "list.update",
                    "list.remove",
                    "list.add",
                    "list.add"
                ]
            );
        }
    );

    both_dialects!(
        lists_expiry_removes_only_expired_entries_and_audits_them,
        |store| {
            let who = Actor::cli();
            for name in ["a", "b", "c"] {
                store
                    .create_list(name, ListKind::Block, EntryType::Ip, "", &who)
                    .await
                    .unwrap();
            }
            let now = now_ms();
            let (hour, day) = (now + 3_600_000, now + 86_400_000);
            add(store, "a", &["192.0.2.1", "192.0.2.2"], Some(hour))
                .await
                .unwrap();
            add(store, "a", &["192.0.2.3"], Some(day)).await.unwrap();
            add(store, "a", &["192.0.2.4"], None).await.unwrap();
            add(store, "b", &["198.51.100.1"], Some(hour)).await.unwrap();
            add(store, "c", &["203.0.113.1"], Some(day)).await.unwrap();

            // Nothing is due now.
            assert!(
                store
                    .expire_list_entries(now, &Actor::system())
                    .await
                    .unwrap()
                    .is_empty()
            );
            // Two hours later: the hour entries are no longer served, even before the job runs.
            let later = now + 7_200_000;
            assert_eq!(served(store, "a", later).await, ["192.0.2.3", "192.0.2.4"]);
            assert!(served(store, "b", later).await.is_empty());
            let done = store.expire_list_entries(later, &Actor::system()).await.unwrap();
            assert_eq!(
                done,
                [
                    (
                        "a".to_string(),
                        vec!["192.0.2.1".to_string(), "192.0.2.2".to_string()]
                    ),
                    ("b".to_string(), vec!["198.51.100.1".to_string()])
                ]
            );
            let left: Vec<String> = store
                .list_entries("a", true)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.value)
                .collect();
            assert_eq!(left, ["192.0.2.3", "192.0.2.4"]);
            assert_eq!(store.list_entries("c", true).await.unwrap().len(), 1);
            assert!(
                store
                    .expire_list_entries(later, &Actor::system())
                    .await
                    .unwrap()
                    .is_empty()
            );

            let expired: Vec<_> = store.audit_entries(0, 100, Some("list.expire")).await.unwrap();
            assert_eq!(expired.len(), 2);
            assert_eq!(expired[0].actor, "system");
            assert_eq!(expired[0].target, "list:a");
            assert_eq!(
                expired[0].details["values"],
                serde_json::json!(["192.0.2.1", "192.0.2.2"])
            );
            assert_eq!(expired[1].target, "list:b");
        }
    );

    both_dialects!(lists_etag_changes_with_what_is_served_only, |store| {
        let who = Actor::cli();
        store
            .create_list("l", ListKind::Block, EntryType::Url, "", &who)
            .await
            .unwrap();
        let now = now_ms();
        let empty = store.edl("l", now).await.unwrap().unwrap();
        assert_eq!((empty.body.as_str(), empty.entries), ("", 0));
        assert!(empty.etag.starts_with('"') && empty.etag.ends_with('"'));
        add(
            store,
            "l",
            &["https://b.example/x", "a.example/"],
            Some(now + 3_600_000),
        )
        .await
        .unwrap();
        let two = store.edl("l", now).await.unwrap().unwrap();
        assert_eq!(two.body, "a.example/\nb.example/x\n");
        assert_ne!(two.etag, empty.etag);
        // Asking again, or a change that is not served (a new reason), keeps the ETag.
        assert_eq!(store.edl("l", now).await.unwrap().unwrap(), two);
        store
            .add_list_entry(
                "l",
                "a.example/",
                Some(now + 3_600_000),
                "new reason",
                None,
                MAX,
                &who,
            )
            .await
            .unwrap();
        assert_eq!(store.edl("l", now).await.unwrap().unwrap().etag, two.etag);
        // A removal changes it; adding the value back restores it.
        store.remove_list_entry("l", "a.example/", &who).await.unwrap();
        let one = store.edl("l", now).await.unwrap().unwrap();
        assert_ne!(one.etag, two.etag);
        add(store, "l", &["a.example/"], Some(now + 3_600_000))
            .await
            .unwrap();
        assert_eq!(store.edl("l", now).await.unwrap().unwrap().etag, two.etag);
        // Expiry changes it at once, before the job runs.
        assert_eq!(
            store.edl("l", now + 7_200_000).await.unwrap().unwrap().etag,
            empty.etag
        );
    });
}
