//! The rules of each probe: what counts as blocked. Pure, over what the request gave (an
//! answer or a transport failure), so every rule is tested without a network.

use crate::eicar;
use crate::failure::Failure;
use osprey_sdk::prelude::*;

/// Which control a probe tests (the action's name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// The web filter or the proxy's anti-virus must stop a test file.
    Download,
    /// The firewall must refuse the port.
    Connect,
    /// The TLS policy must refuse a certificate that is not valid.
    Tls,
}

/// How the probe ended: the closed set a playbook reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum How {
    /// The connection was refused.
    Refused,
    /// The connection was cut.
    Reset,
    /// No answer in time (dropped).
    Timeout,
    /// No route to the address.
    Unreachable,
    /// The name did not resolve.
    Dns,
    /// The certificate was refused.
    TlsCertificate,
    /// The TLS handshake failed.
    TlsHandshake,
    /// A status other than 2xx came back (a block page, a redirect to one).
    BlockPage,
    /// A 2xx came back without the test file in it (a block page served as 200).
    NotTestFile,
    /// The test file came through.
    Delivered,
    /// The port answered with HTTP.
    Answered,
    /// The port accepted the connection and answered with something other than HTTP.
    OpenNotHttp,
}

/// What came of the request.
#[derive(Debug)]
pub enum Attempt<'a> {
    /// An answer: its status and body.
    Answer { status: u16, body: &'a [u8] },
    /// A transport failure.
    Failed(Failure),
}

/// A probe's verdict, before it is dressed with the probe's id and target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub blocked: bool,
    pub how: How,
    pub detail: String,
    pub eicar: bool,
}

/// The verdict of `check` on `attempt`; an error when the attempt says nothing about the
/// control (the TLS probe could not reach its host, the port probe's name did not resolve).
pub fn judge(check: Check, target: &str, attempt: &Attempt<'_>) -> Result<Verdict> {
    let blocked = |how: How, detail: String| Verdict {
        blocked: true,
        how,
        detail,
        eicar: false,
    };
    let untested = |why: &str| {
        Err(Error::unavailable(format!(
            "{target}: {why}, so the {} probe tested nothing; check the target",
            name(check)
        )))
    };
    match (check, attempt) {
        (_, Attempt::Failed(f)) => {
            let how = how_of(*f);
            match (check, f) {
                (Check::Download, _) => Ok(blocked(how, format!("the download was stopped: {}", said(*f)))),
                (Check::Connect, Failure::Dns) => untested("the name did not resolve"),
                // The TCP connection was made: whatever broke after it, the port is open.
                (Check::Connect, Failure::TlsCertificate | Failure::TlsHandshake | Failure::Protocol) => {
                    Ok(Verdict {
                        blocked: false,
                        how: How::OpenNotHttp,
                        detail: format!("the port accepted the connection ({})", said(*f)),
                        eicar: false,
                    })
                }
                (Check::Connect, _) => Ok(blocked(how, format!("the connection was stopped: {}", said(*f)))),
                (Check::Tls, Failure::TlsCertificate | Failure::TlsHandshake | Failure::Reset) => Ok(
                    blocked(how, format!("the TLS connection was refused: {}", said(*f))),
                ),
                (Check::Tls, Failure::Protocol) => untested("the host does not speak HTTPS"),
                (Check::Tls, _) => untested(&format!("the host could not be reached ({})", said(*f))),
            }
        }
        (Check::Download, Attempt::Answer { status, body }) => {
            let eicar = eicar::contains_test_string(body);
            Ok(if !(200..300).contains(status) {
                Verdict {
                    eicar,
                    ..blocked(
                        How::BlockPage,
                        format!("the download answered HTTP {status} (a block page)"),
                    )
                }
            } else if eicar {
                Verdict {
                    blocked: false,
                    how: How::Delivered,
                    detail: format!(
                        "the EICAR test file was delivered (HTTP {status}, {} bytes)",
                        body.len()
                    ),
                    eicar,
                }
            } else {
                blocked(
                    How::NotTestFile,
                    format!(
                        "HTTP {status} without the test file in it ({} bytes): a block page or a replaced file",
                        body.len()
                    ),
                )
            })
        }
        (Check::Connect, Attempt::Answer { status, .. }) => Ok(Verdict {
            blocked: false,
            how: How::Answered,
            detail: format!("the port is open: it answered HTTP {status}"),
            eicar: false,
        }),
        (Check::Tls, Attempt::Answer { status, .. }) => Ok(Verdict {
            blocked: false,
            how: How::Answered,
            detail: format!("the invalid certificate was accepted: the host answered HTTP {status}"),
            eicar: false,
        }),
    }
}

fn name(check: Check) -> &'static str {
    match check {
        Check::Download => "download",
        Check::Connect => "connect",
        Check::Tls => "tls",
    }
}

fn how_of(f: Failure) -> How {
    match f {
        Failure::Refused => How::Refused,
        Failure::Reset => How::Reset,
        Failure::Timeout => How::Timeout,
        Failure::Unreachable => How::Unreachable,
        Failure::Dns => How::Dns,
        Failure::TlsCertificate => How::TlsCertificate,
        Failure::TlsHandshake => How::TlsHandshake,
        Failure::Protocol => How::OpenNotHttp,
    }
}

fn said(f: Failure) -> &'static str {
    match f {
        Failure::Refused => "connection refused",
        Failure::Reset => "connection reset",
        Failure::Timeout => "no answer in time",
        Failure::Unreachable => "no route to the host",
        Failure::Dns => "the name did not resolve",
        Failure::TlsCertificate => "the certificate is not trusted",
        Failure::TlsHandshake => "the TLS handshake failed",
        Failure::Protocol => "the answer was not HTTP",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "http://127.0.0.1:9/x";

    fn answer(status: u16, body: &[u8]) -> Attempt<'_> {
        Attempt::Answer { status, body }
    }

    #[test]
    fn a_download_is_blocked_unless_the_test_file_comes_through() {
        let file = eicar::test_string();
        let v = judge(Check::Download, T, &answer(200, file.as_bytes())).unwrap();
        assert_eq!((v.blocked, v.how, v.eicar), (false, How::Delivered, true));
        let v = judge(Check::Download, T, &answer(403, b"<h1>Blocked</h1>")).unwrap();
        assert_eq!((v.blocked, v.how, v.eicar), (true, How::BlockPage, false));
        assert!(v.detail.contains("HTTP 403"), "{}", v.detail);
        let v = judge(
            Check::Download,
            T,
            &answer(200, b"<h1>Access denied by policy</h1>"),
        )
        .unwrap();
        assert_eq!((v.blocked, v.how), (true, How::NotTestFile));
        let v = judge(Check::Download, T, &answer(302, b"")).unwrap();
        assert_eq!((v.blocked, v.how), (true, How::BlockPage));
        for f in [
            Failure::Refused,
            Failure::Reset,
            Failure::Timeout,
            Failure::Dns,
            Failure::TlsCertificate,
        ] {
            let v = judge(Check::Download, T, &Attempt::Failed(f)).unwrap();
            assert!(v.blocked, "{f:?}");
        }
    }

    #[test]
    fn a_port_is_blocked_when_no_connection_is_made() {
        for (f, how) in [
            (Failure::Refused, How::Refused),
            (Failure::Reset, How::Reset),
            (Failure::Timeout, How::Timeout),
            (Failure::Unreachable, How::Unreachable),
        ] {
            let v = judge(Check::Connect, T, &Attempt::Failed(f)).unwrap();
            assert_eq!((v.blocked, v.how), (true, how), "{f:?}");
        }
        let v = judge(Check::Connect, T, &answer(404, b"")).unwrap();
        assert_eq!((v.blocked, v.how), (false, How::Answered));
        for f in [Failure::Protocol, Failure::TlsCertificate, Failure::TlsHandshake] {
            let v = judge(Check::Connect, T, &Attempt::Failed(f)).unwrap();
            assert_eq!((v.blocked, v.how), (false, How::OpenNotHttp), "{f:?}");
        }
        let e = judge(Check::Connect, T, &Attempt::Failed(Failure::Dns)).unwrap_err();
        assert!(e.message.contains("did not resolve"), "{}", e.message);
    }

    #[test]
    fn tls_is_blocked_only_by_a_refused_handshake() {
        let v = judge(Check::Tls, T, &Attempt::Failed(Failure::TlsCertificate)).unwrap();
        assert_eq!((v.blocked, v.how), (true, How::TlsCertificate));
        let v = judge(Check::Tls, T, &Attempt::Failed(Failure::TlsHandshake)).unwrap();
        assert_eq!((v.blocked, v.how), (true, How::TlsHandshake));
        let v = judge(Check::Tls, T, &answer(200, b"hello")).unwrap();
        assert_eq!((v.blocked, v.how), (false, How::Answered));
        assert!(v.detail.contains("accepted"), "{}", v.detail);
        for f in [
            Failure::Refused,
            Failure::Timeout,
            Failure::Dns,
            Failure::Protocol,
        ] {
            let e = judge(Check::Tls, T, &Attempt::Failed(f)).unwrap_err();
            assert_eq!(e.kind, ErrorKind::Unavailable, "{f:?}");
            assert!(e.message.contains("tested nothing"), "{}", e.message);
        }
    }
}
