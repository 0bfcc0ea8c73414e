use crate::app::App;
use crate::config::Config;
use std::net::SocketAddr;
use std::sync::Arc;

#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  osprey serve                                   127.0.0.1:8080, data in ./data
  osprey serve --listen 0.0.0.0:8080 --data-dir /var/lib/osprey
  OSPREY_DATABASE_URL=postgres://osprey@db/osprey osprey serve

Stops cleanly on Ctrl-C or SIGTERM. Health: GET /healthz; readiness: GET /readyz.")]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080, or `listen` in the config].
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

pub async fn run(_args: ServeArgs, config: Config) -> anyhow::Result<i32> {
    let listen = config.listen;
    let app = App::open(config).await?;
    let listener = bind(listen).await?;
    serve(Arc::new(app), listener).await
}

/// Listen on `listen`.
pub(super) async fn bind(listen: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))
}

/// Serve `app` on `listener` until Ctrl-C or SIGTERM (`osprey serve` and `osprey demo`).
pub(super) async fn serve(app: Arc<App>, listener: tokio::net::TcpListener) -> anyhow::Result<i32> {
    for (name, error) in &app.load_report.failed {
        tracing::error!(plugin = %name, %error, "plugin not loaded");
    }
    if app.store.admins_who_can_sign_in().await?.is_empty() {
        tracing::warn!(
            "no administrator can sign in to the console: `osprey user first-admin` makes one and prints its password"
        );
    }
    crate::server::run(listener, app, shutdown_signal()).await?;
    tracing::info!("osprey stopped");
    Ok(0)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutting down");
}
