//! What the benches share (`mod common;` in each): the database they run on.
//!
//! By default a bench's App keeps its SQLite file in the bench's temporary data directory.
//! With `OSPREY_BENCH_DATABASE_URL=postgres://...` set, it runs on PostgreSQL instead: a fresh,
//! empty database created on that server for each bench process (by the e2e tests' own
//! `fresh_database`, so it is named `osprey_e2e_*`), left there afterwards. A throwaway server
//! is easiest; `scripts/lib/postgres.sh` starts one:
//!
//! ```sh
//! bash -c 'source scripts/lib/postgres.sh &&
//!   PG_TEST_OPTIONS="-c synchronous_commit=on" start_test_postgres &&
//!   OSPREY_BENCH_DATABASE_URL=$OSPREY_TEST_POSTGRES_URL cargo bench -p osprey --bench playbook_runs'
//! ```
//!
//! (`synchronous_commit=on` with the script's `fsync=off`: a commit is written to the OS before
//! the server answers, as Osprey's SQLite does with WAL and synchronous=NORMAL.)

use osprey::config::Config;

// The e2e tests' PostgreSQL helper; only `fresh_database` is used here.
#[allow(dead_code)]
#[path = "../../../tests/e2e/support/postgres.rs"]
mod postgres;

/// Point `config` at the bench's database: a fresh database on the server
/// `OSPREY_BENCH_DATABASE_URL` names, when set; else the default SQLite file in
/// `config.data_dir`. Returns what to print of it (never a password).
pub fn use_bench_database(config: &mut Config) -> String {
    match std::env::var("OSPREY_BENCH_DATABASE_URL") {
        Ok(server) if !server.is_empty() => {
            assert!(
                server.starts_with("postgres://") || server.starts_with("postgresql://"),
                "OSPREY_BENCH_DATABASE_URL must name a PostgreSQL server (postgres://...), got something else"
            );
            let url = postgres::fresh_database(&server);
            let shown = url::Url::parse(&url).map_or_else(
                |_| "a fresh database".to_owned(),
                |u| {
                    format!(
                        "database {} on {}:{}",
                        u.path().trim_start_matches('/'),
                        u.host_str().unwrap_or("?"),
                        u.port().unwrap_or(5432)
                    )
                },
            );
            config.database_url = Some(url);
            format!("PostgreSQL, {shown}")
        }
        _ => format!("SQLite in {}", config.data_dir.display()),
    }
}
