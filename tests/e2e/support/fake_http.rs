//! A plain HTTP server on loopback that counts what reaches it: the target of the hostile
//! plugin's requests. A refused request must leave its count at zero.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Hits(Arc<Mutex<HashMap<String, usize>>>);

impl Hits {
    fn hit(&self, path: &str) {
        *self.0.lock().unwrap().entry(path.to_owned()).or_default() += 1;
    }
}

pub struct FakeHttp {
    pub addr: SocketAddr,
    hits: Hits,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeHttp {
    /// Start on 127.0.0.1 with a free port.
    pub async fn start() -> FakeHttp {
        Self::start_on("127.0.0.1:0").await.expect("binding 127.0.0.1")
    }

    /// Start on `addr` (for example "[::1]:0"); `None` if that address is unavailable here.
    pub async fn start_on(addr: &str) -> Option<FakeHttp> {
        let listener = tokio::net::TcpListener::bind(addr).await.ok()?;
        let addr = listener.local_addr().unwrap();
        let hits = Hits::default();
        let app = Router::new()
            .route(
                "/ok",
                get(|State(h): State<Hits>| async move {
                    h.hit("/ok");
                    "hello from the fake"
                }),
            )
            .route(
                "/redirect",
                get(|State(h): State<Hits>| async move {
                    h.hit("/redirect");
                    (StatusCode::FOUND, [(header::LOCATION, "/ok")], "moved")
                }),
            )
            .route(
                "/big/{mib}",
                get(|State(h): State<Hits>, Path(mib): Path<usize>| async move {
                    h.hit("/big");
                    vec![b'b'; mib * 1024 * 1024]
                }),
            )
            .route(
                "/upload",
                post(|State(h): State<Hits>, body: Bytes| async move {
                    h.hit("/upload");
                    format!("got {} bytes", body.len())
                }),
            )
            .fallback(|State(h): State<Hits>, uri: axum::http::Uri| async move {
                h.hit(uri.path());
                (StatusCode::NOT_FOUND, "no such path").into_response()
            })
            .with_state(hits.clone());
        let stop = serve(listener, app);
        Some(FakeHttp {
            addr,
            hits,
            _stop: stop,
        })
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests reached `path`.
    pub fn hits(&self, path: &str) -> usize {
        self.hits.0.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// How many requests reached the server at all.
    pub fn total_hits(&self) -> usize {
        self.hits.0.lock().unwrap().values().sum()
    }
}

/// Serve `app` on `listener` in the background until the returned sender is dropped (the
/// fake vendors keep it as a field, so a fake stops with its test).
pub fn serve(listener: tokio::net::TcpListener, app: axum::Router) -> tokio::sync::oneshot::Sender<()> {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    stop
}
