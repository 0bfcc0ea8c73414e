//! The demo's trickle: the sample alerts of `demo/alerts.toml`, one every so often, sent to
//! the server's own intake API (`POST /api/v1/alerts`) with an intake token, as a sensor
//! would, so they take the real path: intake, pre-processing, incidents and playbooks.

use super::spec::{AlertSpec, TrickleSpec};
use secrecy::{ExposeSecret, SecretString};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The order the samples are sent in, one round: each sample `repeat` times, spread out
/// (the first turn of every sample, then the second turn of those that repeat, ...).
pub fn round(alerts: &[AlertSpec]) -> Vec<usize> {
    let most = alerts.iter().map(|a| a.repeat).max().unwrap_or(0);
    (0..most)
        .flat_map(|turn| {
            alerts
                .iter()
                .enumerate()
                .filter(move |(_, a)| a.repeat > turn)
                .map(|(i, _)| i)
        })
        .collect()
}

/// A body with `{now}` filled in.
pub fn fill(body: &str, now_secs: u64) -> String {
    body.replace("{now}", &now_secs.to_string())
}

/// Send the samples to the server listening at `addr`, one every `every`, until the task is
/// dropped. A refused or failed send is logged and the trickle goes on.
pub async fn run(addr: SocketAddr, token: SecretString, spec: TrickleSpec, every: Duration) {
    let order = round(&spec.alerts);
    if order.is_empty() {
        return;
    }
    // A server listening on every address is reached on loopback.
    let host = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let base = format!("http://{}/api/v1/alerts", SocketAddr::new(host, addr.port()));
    let client = reqwest::Client::new();
    let mut next_body = vec![0usize; spec.alerts.len()];
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for &i in order.iter().cycle() {
        tick.tick().await;
        let alert = &spec.alerts[i];
        let body = &alert.bodies[next_body[i] % alert.bodies.len()];
        next_body[i] += 1;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let mut query = vec![("format", alert.format.as_str())];
        if let Some(source) = &alert.source {
            query.push(("source", source));
        }
        let sent = client
            .post(&base)
            .query(&query)
            .bearer_auth(token.expose_secret())
            .body(fill(body, now))
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(alert = %alert.name, "demo alert sent")
            }
            Ok(r) => tracing::warn!(alert = %alert.name, status = %r.status(), "demo alert refused"),
            Err(e) => tracing::warn!(alert = %alert.name, error = %e, "demo alert not sent"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(name: &str, repeat: u32) -> AlertSpec {
        AlertSpec {
            name: name.into(),
            format: "json".into(),
            source: None,
            repeat,
            bodies: vec!["{}".into()],
        }
    }

    #[test]
    fn a_round_spreads_the_repeats_out() {
        let alerts = [alert("dns", 3), alert("ids", 1), alert("fw", 2), alert("off", 0)];
        assert_eq!(round(&alerts), vec![0, 1, 2, 0, 2, 0]);
    }

    #[test]
    fn now_is_filled_in() {
        assert_eq!(fill("{now}.5||10.0.0.1", 1_700_000_000), "1700000000.5||10.0.0.1");
    }
}
