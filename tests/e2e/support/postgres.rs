//! PostgreSQL for the end-to-end tests: a fresh, empty database per test on the throwaway
//! server scripts/test.sh starts (scripts/lib/postgres.sh), so no two tests share one.
//!
//! Two variables name a server: `OSPREY_TEST_POSTGRES_URL` (the store tests' and the cluster
//! test's) and `OSPREY_E2E_POSTGRES_URL` (set for the suite's second run: then every [`Cli`]
//! gets a database of its own there instead of its SQLite file).
//!
//! [`Cli`]: super::Cli

/// The server the whole suite runs on, when `OSPREY_E2E_POSTGRES_URL` is set.
pub fn suite_server() -> Option<String> {
    std::env::var("OSPREY_E2E_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// The server a test that needs PostgreSQL runs against: `OSPREY_TEST_POSTGRES_URL` (or the
/// suite's). Without one the test fails when `CI` is set (a CI run must not pass with the
/// test never run), and otherwise is skipped with a loud notice naming `test`.
pub fn required_server(test: &str) -> Option<String> {
    let server = std::env::var("OSPREY_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(suite_server);
    if server.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{test} needs PostgreSQL: OSPREY_TEST_POSTGRES_URL is not set and CI is; run the tests with scripts/test.sh, which starts PostgreSQL"
        );
        eprintln!(
            "\n*** SKIPPING {test}: it needs PostgreSQL and OSPREY_TEST_POSTGRES_URL is not set \
             (scripts/test.sh starts one and sets it; with CI set this fails) ***\n"
        );
    }
    server
}

/// Create a new, empty database on `server` (a `postgres://` URL); its URL. Callable from
/// synchronous code inside a test's runtime: the database is made on a thread of its own.
pub fn fresh_database(server: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    // Digits and underscores only: the name is written into the statement as it is.
    let name = format!(
        "osprey_e2e_{}_{nanos}_{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    );
    let server = server.to_owned();
    let statement = format!("CREATE DATABASE {name}");
    let created = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            sqlx::any::install_default_drivers();
            let admin = sqlx::any::AnyPoolOptions::new()
                .max_connections(1)
                .connect(&server)
                .await
                .map_err(|e| format!("connecting to {server}: {e}"))?;
            sqlx::query(sqlx::AssertSqlSafe(statement))
                .execute(&admin)
                .await
                .map_err(|e| format!("creating a database on {server}: {e}"))?;
            admin.close().await;
            Ok::<String, String>(server)
        })
    })
    .join()
    .unwrap();
    let server = created.unwrap_or_else(|e| panic!("{e}"));
    let mut url = url::Url::parse(&server).expect("a postgres:// URL");
    url.set_path(&name);
    url.to_string()
}
