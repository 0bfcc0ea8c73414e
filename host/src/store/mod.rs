//! The database. Only this module writes SQL.
//!
//! SQLite (WAL) is the embedded default; PostgreSQL is the alternative for scale-out, behind
//! the same `database_url` setting. Queries are runtime queries through sqlx's `Any` driver
//! with `$1` placeholders, which both dialects accept; the few statements that differ are
//! chosen by [`Dialect`] next to each other. Each dialect has its own migrations folder.
//! Times are stored as Unix milliseconds (`BIGINT`).

pub mod alerts;
pub mod audit;
pub(crate) mod audit_chain;
mod case_specs;
mod child_runs;
pub mod counts;
pub mod enrichment_cache;
pub mod incident_detail;
mod incident_opening;
pub mod incidents;
pub mod indicators;
mod json;
mod kv;
pub mod lists;
pub mod outbox;
pub mod page;
pub mod playbook_state;
pub mod plugin_mocks;
pub mod plugin_versions;
pub mod plugins;
pub mod points;
pub mod pollers;
pub mod questions;
pub mod rules;
mod run_steps;
pub mod runs;
mod secrets;
pub mod sessions;
pub mod sla;
pub mod slack_outbox;
pub mod stats;
pub mod tasks;
pub mod tokens;
pub mod triage;
pub mod trust;
pub mod users;
mod values;
mod writer;

pub use kv::KvError;

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Executor};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use thiserror::Error;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Which SQL dialect the store speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("unsupported database URL '{0}': use sqlite://PATH or postgres://USER@HOST/DB")]
    BadUrl(String),
    #[error("cannot create the folder for the SQLite database {path}: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error("cannot connect to the database at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(
        "the database is not migrated to this version of Osprey ({applied} of {known} migrations applied); start `osprey serve` once, or run a newer Osprey"
    )]
    NotMigrated { applied: usize, known: usize },
    /// A change the rules refuse (a bad custom field, closing without a required field, an
    /// unknown parent): the message says what was wrong.
    #[error("{0}")]
    Invalid(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("step {seq} of run {run_id} is already recorded (another worker has the run)")]
    StepTaken { run_id: String, seq: i64 },
    #[error("the database writer is unavailable: {0}")]
    Writer(String),
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A handle to the database; cheap to clone.
///
/// Writes go through `writer`: on SQLite a pool of one connection, so writers queue in the
/// process instead of colliding on SQLite's lock and sleeping in its busy handler; on
/// PostgreSQL the same pool as reads.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    writer: AnyPool,
    /// Group commit of the hot run writes (SQLite only; see `writer.rs`).
    batcher: Option<writer::Batcher>,
    dialect: Dialect,
    /// Incident types (SLA, team, custom fields), which the incident methods enforce.
    cases: std::sync::Arc<crate::cases::IncidentsConfig>,
    /// The key every audit entry is chained with (`audit_chain.rs`), from the vault.
    audit_key: crate::vault::AuditChainKey,
}

impl Store {
    /// Connect to `url` (`sqlite://path/to/file.db` or `postgres://...`), chaining audit
    /// entries with `audit_key` (the vault's [`crate::vault::Vault::audit_chain_key`]). A
    /// SQLite file and its folder are created if missing, and put in WAL mode. Does not
    /// migrate.
    pub async fn connect(url: &str, audit_key: crate::vault::AuditChainKey) -> Result<Store> {
        install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres
        } else {
            return Err(StoreError::BadUrl(redact_url(url)));
        };
        let url = match dialect {
            Dialect::Sqlite => sqlite_url_with_create(url)?,
            Dialect::Postgres => url.to_owned(),
        };
        let url = &url;
        let connect = |max: u32, cache: &'static str| async move {
            let mut options = AnyPoolOptions::new()
                .acquire_timeout(Duration::from_secs(30))
                .max_connections(max);
            if dialect == Dialect::Sqlite {
                // sqlx pings a connection before lending it out, a round trip to the
                // connection's thread on every query. A SQLite connection is a file in this
                // process: there is no far end that could have hung up. (It is still pinged
                // when given back, which is where sqlx rolls back what a dropped query left.)
                // On PostgreSQL the ping is kept: it finds connections the server dropped.
                options = options
                    .test_before_acquire(false)
                    .after_connect(move |conn, _meta| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            conn.execute("PRAGMA busy_timeout = 10000").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            // Measured with scripts/bench-ingest.sh (BENCHMARKS.md, "Alert
                            // ingest"): with SQLite's defaults its thread spent most of its time
                            // in the kernel, re-reading index pages its 2 MiB cache had dropped,
                            // writing statement journals to a temporary file, and checkpointing
                            // every 1,000 pages. A larger cache (filled only as pages are used),
                            // reads through mmap, statement journals in memory, and a checkpoint
                            // every 8,000 pages (32 MiB of WAL) take most of that away.
                            conn.execute(sqlx::AssertSqlSafe(format!("PRAGMA cache_size = {cache}")))
                                .await?;
                            conn.execute("PRAGMA mmap_size = 1073741824").await?;
                            conn.execute("PRAGMA temp_store = MEMORY").await?;
                            conn.execute("PRAGMA wal_autocheckpoint = 8000").await?;
                            Ok(())
                        })
                    });
            }
            options.connect(url).await.map_err(|source| StoreError::Connect {
                url: redact_url(url),
                source,
            })
        };
        let (pool, writer) = match dialect {
            Dialect::Sqlite => {
                // The writer first: it creates the file and switches it to WAL.
                // Cache sizes in KiB (negative): the writer touches every index; readers less.
                let writer = connect(1, "-131072").await?;
                (connect(8, "-16384").await?, writer)
            }
            Dialect::Postgres => {
                let pool = connect(16, "").await?;
                (pool.clone(), pool)
            }
        };
        let batcher = (dialect == Dialect::Sqlite).then(|| writer::Batcher::start(writer.clone()));
        Ok(Store {
            pool,
            writer,
            batcher,
            dialect,
            cases: Default::default(),
            audit_key,
        })
    }

    /// Connect and apply any pending migrations.
    pub async fn open(url: &str, audit_key: crate::vault::AuditChainKey) -> Result<Store> {
        let store = Store::connect(url, audit_key).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Run one of the hot writes: grouped with others on SQLite, directly on PostgreSQL.
    async fn write(&self, write: writer::Write) -> Result<u64> {
        match &self.batcher {
            Some(b) => b.write(write).await,
            None => {
                let mut conn = self.writer.acquire().await?;
                write.execute(&mut conn).await
            }
        }
    }

    /// The same store, enforcing these incident types.
    pub fn with_incident_types(mut self, types: crate::cases::IncidentsConfig) -> Store {
        self.cases = std::sync::Arc::new(types);
        self
    }

    /// The incident types in force.
    pub fn incident_types(&self) -> &crate::cases::IncidentsConfig {
        &self.cases
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    fn migrator(&self) -> &'static Migrator {
        match self.dialect {
            Dialect::Sqlite => &SQLITE_MIGRATIONS,
            Dialect::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Apply pending migrations.
    pub async fn migrate(&self) -> Result<()> {
        self.migrator().run(&self.writer).await?;
        Ok(())
    }

    /// Ready to serve: the database answers and every migration is applied.
    pub async fn ready(&self) -> Result<()> {
        let known = self.migrator().iter().count();
        let applied: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_one(&self.pool)
            .await?;
        let applied = usize::try_from(applied).unwrap_or(0);
        if applied < known {
            return Err(StoreError::NotMigrated { applied, known });
        }
        Ok(())
    }

    /// Close the pools, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
        self.writer.close().await;
    }
}

/// A fresh id for a run, an alert or an incident: `prefix`, 11 hex digits of Unix ms, 6 of a
/// per-process sequence (so ids made in the same millisecond keep their order: the alerts of
/// one request, say), then 40 random bits.
pub fn new_id(prefix: char) -> String {
    use chacha20poly1305::aead::rand_core::RngCore;
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQUENCE: AtomicU32 = AtomicU32::new(0);
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed) & 0xff_ffff;
    let random = chacha20poly1305::aead::OsRng.next_u64() & 0xff_ffff_ffff;
    format!("{prefix}{:011x}{seq:06x}{random:010x}", now_ms())
}

/// The smallest id with `prefix` made at `at` (Unix ms): every id [`new_id`] makes later is
/// greater, every one made earlier smaller.
pub fn id_at(prefix: char, at: i64) -> String {
    format!("{prefix}{:011x}", at.max(0))
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A database URL with any password replaced, safe for logs and errors.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// `sqlite://path` with `mode=rwc`, after creating the file's folder.
fn sqlite_url_with_create(url: &str) -> Result<String> {
    let rest = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path != ":memory:"
        && !path.is_empty()
        && let Some(dir) = Path::new(path).parent().filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    Ok(match query {
        Some(q) if q.contains("mode=") => url.to_owned(),
        Some(q) => format!("sqlite://{path}?{q}&mode=rwc"),
        None => format!("sqlite://{path}?mode=rwc"),
    })
}

#[cfg(test)]
pub(crate) mod testing {
    //! Both dialects for store tests: a SQLite file in a temp folder, and a fresh database on
    //! the PostgreSQL server named by `OSPREY_TEST_POSTGRES_URL` (started by scripts/test.sh).

    use super::*;

    pub struct TestStore {
        pub store: Store,
        _dir: Option<tempfile::TempDir>,
    }

    /// A column of an audit entry a test rewrites.
    #[derive(Debug, Clone, Copy)]
    pub(crate) enum AuditColumn {
        Actor,
        Target,
    }

    /// Changes to the audit log made behind the store's back, as someone who can write the
    /// database would: what the audit tests must catch.
    impl Store {
        /// Set `column` of entry `seq` to `value`, leaving its MAC as it was.
        pub(crate) async fn tamper_audit_entry(&self, seq: i64, column: AuditColumn, value: &str) {
            let sql = match column {
                AuditColumn::Actor => "UPDATE audit_log SET actor = $1 WHERE seq = $2",
                AuditColumn::Target => "UPDATE audit_log SET target = $1 WHERE seq = $2",
            };
            sqlx::query(sql)
                .bind(value)
                .bind(seq)
                .execute(&self.writer)
                .await
                .unwrap();
        }

        /// Cut the entries after `seq` off and roll the head back to entry `seq`.
        pub(crate) async fn tamper_cut_audit_log(&self, seq: i64) {
            let hash = self.audit_entry(seq).await.unwrap().unwrap().hash;
            sqlx::query("DELETE FROM audit_log WHERE seq > $1")
                .bind(seq)
                .execute(&self.writer)
                .await
                .unwrap();
            sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                .bind(seq)
                .bind(&hash)
                .execute(&self.writer)
                .await
                .unwrap();
        }

        /// Recompute every entry's MAC with the store's audit key, and the head: a rewrite by
        /// someone who has the master key.
        pub(crate) async fn tamper_rechain_audit_log(&self) {
            let key = self.audit_key.clone();
            self.tamper_recompute_audit_chain(|prev, f| audit_chain::mac(&key, prev, f))
                .await;
        }

        /// Recompute every entry's `hash` and the head with `hash_of(prev, fields)`.
        pub(crate) async fn tamper_recompute_audit_chain(
            &self,
            hash_of: impl Fn(&str, &audit_chain::Fields<'_>) -> String,
        ) {
            let mut prev = audit::GENESIS.to_owned();
            for e in self.audit_entries(0, i64::MAX, None).await.unwrap() {
                let details = e.details.to_string();
                let fields = audit_chain::Fields {
                    seq: e.seq,
                    at: e.at,
                    actor: &e.actor,
                    action: &e.action,
                    target: &e.target,
                    details: &details,
                };
                let hash = hash_of(&prev, &fields);
                sqlx::query("UPDATE audit_log SET prev_hash = $1, hash = $2 WHERE seq = $3")
                    .bind(&prev)
                    .bind(&hash)
                    .bind(e.seq)
                    .execute(&self.writer)
                    .await
                    .unwrap();
                prev = hash;
            }
            sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
                .bind(&prev)
                .execute(&self.writer)
                .await
                .unwrap();
        }
    }

    /// The master key of test stores.
    pub const MASTER_KEY: [u8; 32] = [7; 32];

    /// The audit key of test stores (derived from [`MASTER_KEY`]).
    pub fn audit_key() -> crate::vault::AuditChainKey {
        crate::vault::Vault::from_key(&MASTER_KEY).audit_chain_key()
    }

    pub async fn sqlite() -> TestStore {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("osprey.db").display());
        TestStore {
            store: Store::open(&url, audit_key()).await.unwrap(),
            _dir: Some(dir),
        }
    }

    /// A new, empty database on the test PostgreSQL server, or `None` (with a notice on
    /// stderr) when no server was provided. With `CI` set, a missing server fails the test:
    /// a CI run must not pass with PostgreSQL never run.
    pub async fn postgres() -> Option<TestStore> {
        let Ok(base) = std::env::var("OSPREY_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "OSPREY_TEST_POSTGRES_URL is not set and CI is: run the tests with scripts/test.sh, which starts PostgreSQL"
            );
            eprintln!(
                "skipping the PostgreSQL half: OSPREY_TEST_POSTGRES_URL is not set (scripts/test.sh sets it)"
            );
            return None;
        };
        install_default_drivers();
        let admin = AnyPoolOptions::new()
            .max_connections(1)
            .connect(&base)
            .await
            .unwrap();
        let name = format!("osprey_test_{}", uuid_like());
        // The name is made of digits and underscores only.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let mut url = url::Url::parse(&base).unwrap();
        url.set_path(&name);
        Some(TestStore {
            store: Store::open(url.as_str(), audit_key()).await.unwrap(),
            _dir: None,
        })
    }

    fn uuid_like() -> String {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        format!(
            "{}_{}_{}",
            std::process::id(),
            now_ms(),
            N.fetch_add(1, Ordering::SeqCst)
        )
    }

    /// Run `f` against SQLite, then against PostgreSQL when available.
    macro_rules! both_dialects {
        ($name:ident, |$store:ident| $body:block) => {
            mod $name {
                #[allow(unused_imports)]
                use super::*;
                #[tokio::test]
                async fn sqlite() {
                    let t = $crate::store::testing::sqlite().await;
                    let $store = &t.store;
                    $body
                }
                #[tokio::test]
                async fn postgres() {
                    let Some(t) = $crate::store::testing::postgres().await else {
                        return;
                    };
                    let $store = &t.store;
                    $body
                }
            }
        };
    }
    pub(crate) use both_dialects;
}

#[cfg(test)]
mod tests {
    use super::testing::both_dialects;
    use super::*;

    both_dialects!(migrations_apply_and_ready_reports_it, |store| {
        store.ready().await.unwrap();
        // Migrating twice is harmless.
        store.migrate().await.unwrap();
        store.ready().await.unwrap();
    });

    #[tokio::test]
    async fn sqlite_runs_in_wal_mode() {
        let t = testing::sqlite().await;
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&t.store.pool)
            .await
            .unwrap();
        assert_eq!(mode.to_lowercase(), "wal");
    }

    #[tokio::test]
    async fn unmigrated_database_is_not_ready() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
        let store = Store::connect(&url, testing::audit_key()).await.unwrap();
        assert!(store.ready().await.is_err());
    }

    #[tokio::test]
    async fn bad_urls_say_what_is_expected() {
        let e = Store::connect("mysql://x", testing::audit_key())
            .await
            .unwrap_err()
            .to_string();
        assert!(e.contains("sqlite://") && e.contains("postgres://"), "{e}");
        assert_eq!(redact_url("postgres://u:hunter2@h/db"), "postgres://u:***@h/db");
    }
}
