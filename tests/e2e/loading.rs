//! Loading plugins from the plugins folder: broken folders are reported once and retried
//! only when they change; the others keep working.

use crate::support::{TestHost, dist};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_plugin_folders_are_reported_once_and_do_not_stop_the_others() {
    let host = TestHost::new().await;
    host.install("test-echo").await;
    let plugins = host.app.runtime.options().plugins_dir.clone();

    // A folder whose name is not the plugin's name.
    let misnamed = plugins.join("not-echo");
    std::fs::create_dir_all(&misnamed).unwrap();
    for f in std::fs::read_dir(dist().join("test-echo")).unwrap().flatten() {
        std::fs::copy(f.path(), misnamed.join(f.file_name())).unwrap();
    }
    // A folder with a manifest that does not parse.
    let broken = plugins.join("broken");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("plugin.toml"), "name = \"broken\"\nversion = 1\n").unwrap();

    let report = host.app.runtime.refresh().await;
    let failed: Vec<&str> = report.failed.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(failed, vec!["broken", "not-echo"], "{report:?}");
    let why = &report.failed.iter().find(|(n, _)| n == "not-echo").unwrap().1;
    assert!(why.contains("whose name must be the plugin's name"), "{why}");
    let why = &report.failed.iter().find(|(n, _)| n == "broken").unwrap().1;
    assert!(why.contains("plugin.toml"), "{why}");

    // Not retried (nor logged again) while nothing changes...
    assert!(host.app.runtime.refresh().await.failed.is_empty());
    // ...retried once the folder changes, and loaded when fixed.
    std::fs::remove_dir_all(&broken).unwrap();
    std::fs::rename(&misnamed, plugins.join("test-echo-copy")).unwrap();
    let report = host.app.runtime.refresh().await;
    assert_eq!(
        report.failed.len(),
        1,
        "still misnamed under its new folder: {report:?}"
    );

    // The well-formed plugin was never disturbed.
    host.assert_healthy().await;
    let names: Vec<String> = host
        .app
        .runtime
        .list()
        .iter()
        .map(|p| p.name().to_owned())
        .collect();
    assert_eq!(names, vec!["test-echo"]);
}
