//! probe: defence validation (seed 004). Each action tries something a control must stop
//! and answers whether it was stopped:
//!
//! - `download`: GET a test file (the EICAR string) the web filter or the proxy's
//!   anti-virus must stop;
//! - `connect`: reach a host and port the firewall must refuse. Plugins have no sockets, so
//!   the attempt is an HTTP(S) request to `url`: a refused, reset, dropped (timed out) or
//!   unroutable connection is blocked; any answer, even one that is not HTTP, means the
//!   connection was made and the port is open;
//! - `tls`: fetch from a host whose certificate is not valid: blocked when the TLS
//!   handshake is refused (Osprey's outbound client checks certificates against the
//!   system's trust store, as the proxy in front of it should).
//!
//! Every answer is `{ probe, check, url, blocked, how, detail, status, eicar }`. A request
//! Osprey itself refuses (not in the plugin's grant) is an error, never "blocked": the probe
//! did not test the control. So is an attempt that says nothing about it (a TLS host that
//! cannot be reached at all).
//!
//! The probe's id goes with each request as the `x-osprey-probe` header, and replaces
//! `{probe}` in the URL, so the log line a blocked request leaves in the SIEM carries it and
//! the alert it raises can be matched to the probe.

mod eicar;
mod failure;
mod verdict;

use osprey_sdk::prelude::*;
use std::time::Duration;
use verdict::{Attempt, Check, How};

/// What to probe.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ProbeInput {
    /// The probe's id, a marker to find again in the SIEM's alerts: sent as the
    /// `x-osprey-probe` header and put in the URL where it says `{probe}`.
    #[schemars(length(min = 1, max = 100), regex(pattern = r"^[A-Za-z0-9._:-]+$"))]
    probe: String,
    /// The target: `http(s)://host[:port]/path`. It must be in the plugin's grant.
    url: String,
    /// How long to wait for the connection and for each part of the answer (default 10).
    #[serde(default)]
    #[schemars(range(min = 1, max = 25))]
    timeout_seconds: Option<u32>,
}

/// A probe's verdict.
#[derive(Serialize, JsonSchema)]
struct ProbeOutput {
    /// The probe's id, as given.
    probe: String,
    /// Which control was tested.
    check: Check,
    /// The URL requested (without its query).
    url: String,
    /// Whether the control stopped the attempt: the probe passes when this is true.
    blocked: bool,
    /// How it ended.
    how: How,
    /// For humans: what happened.
    detail: String,
    /// The HTTP status, when an answer came back.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    /// Whether the answer held the EICAR test string.
    eicar: bool,
}

fn download(_ctx: &Context, input: ProbeInput) -> Result<ProbeOutput> {
    probe(Check::Download, input)
}

fn connect(_ctx: &Context, input: ProbeInput) -> Result<ProbeOutput> {
    probe(Check::Connect, input)
}

fn tls(_ctx: &Context, input: ProbeInput) -> Result<ProbeOutput> {
    probe(Check::Tls, input)
}

/// The one probe: send, read what came of it, judge it by `check`'s rules.
fn probe(check: Check, input: ProbeInput) -> Result<ProbeOutput> {
    let url = target_url(&input.url, &input.probe);
    let timeout = Duration::from_secs(input.timeout_seconds.unwrap_or(10).into());
    let sent = http::Request::get(&url)
        .header("x-osprey-probe", input.probe.clone())
        .timeout(timeout)
        .send();
    let shown = url.split('?').next().unwrap_or_default().to_owned();
    let (status, v) = match &sent {
        Ok(response) => {
            let attempt = Attempt::Answer {
                status: response.status,
                body: &response.body,
            };
            (Some(response.status), verdict::judge(check, &shown, &attempt)?)
        }
        Err(e) => match failure::read(e) {
            Some(f) => (None, verdict::judge(check, &shown, &Attempt::Failed(f))?),
            // Osprey's grant, a bad URL, a limit: the control was not tested.
            None => return Err(e.clone()),
        },
    };
    log::info(
        "probe",
        &[
            ("probe", &input.probe),
            ("url", &shown),
            ("blocked", if v.blocked { "true" } else { "false" }),
        ],
    );
    Ok(ProbeOutput {
        probe: input.probe,
        check,
        url: shown,
        blocked: v.blocked,
        how: v.how,
        detail: v.detail,
        status,
        eicar: v.eicar,
    })
}

/// `url` with `{probe}` replaced by the probe's id (which the input schema keeps to
/// characters a URL takes as they are).
fn target_url(url: &str, probe: &str) -> String {
    url.replace("{probe}", probe)
}

fn plugin() -> Plugin {
    Plugin::new(
        "probe",
        env!("CARGO_PKG_VERSION"),
        "Defence validation probes: a download the web filter must block, a port the firewall must refuse, a TLS server with an invalid certificate",
    )
    .action(
        "download",
        "Download a test file (EICAR) the web filter must block; blocked unless the file comes through",
        download,
    )
    .action(
        "connect",
        "Reach host:port over HTTP(S) where the firewall must refuse it; blocked unless a connection is made",
        connect,
    )
    .action(
        "tls",
        "Fetch from a host whose certificate is not valid; blocked when the TLS handshake is refused",
        tls,
    )
}

osprey_sdk::export_plugin!(plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_id_goes_where_the_url_asks_for_it() {
        assert_eq!(
            target_url("http://proxy.test/eicar.com?probe={probe}", "p-1"),
            "http://proxy.test/eicar.com?probe=p-1"
        );
        assert_eq!(
            target_url("http://proxy.test/eicar.com", "p-1"),
            "http://proxy.test/eicar.com"
        );
    }

    #[test]
    fn the_answer_names_the_check_and_how_in_kebab_case() {
        let out = ProbeOutput {
            probe: "p-1".into(),
            check: Check::Tls,
            url: "https://bad.test/".into(),
            blocked: true,
            how: How::TlsCertificate,
            detail: "x".into(),
            status: None,
            eicar: false,
        };
        let v = serde_json::to_value(&out).unwrap();
        assert_eq!(
            v,
            json!({"probe": "p-1", "check": "tls", "url": "https://bad.test/", "blocked": true,
                   "how": "tls-certificate", "detail": "x", "eicar": false})
        );
    }
}
