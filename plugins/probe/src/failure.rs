//! How a request failed, read from the SDK's typed error: the part of a probe's answer that
//! says which control stopped it. The host (`plugin/outbound.rs`) reports each transport
//! failure as a `wasi:http` error code and the SDK's client turns the code into an error
//! kind and a message naming the code; this is the one place that reads them back, and its
//! tests read the errors the SDK really makes from each code.

use osprey_sdk::{Error, ErrorKind};

/// A transport failure a probe can name. A refusal by Osprey itself (the plugin's grant) is
/// none of these: it is a configuration error, passed on as an error, never a "blocked".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The connection was refused (a closed port, or a firewall that answers with a reset
    /// to the SYN).
    Refused,
    /// The connection was cut after it was made (a firewall or proxy reset).
    Reset,
    /// No answer in time (a firewall that drops).
    Timeout,
    /// No route to the address.
    Unreachable,
    /// The name did not resolve (a DNS filter, or a wrong name).
    Dns,
    /// The server's certificate was not trusted.
    TlsCertificate,
    /// The TLS handshake failed for another reason (a protocol version, an alert).
    TlsHandshake,
    /// Something answered, but not with HTTP.
    Protocol,
}

/// The transport failure `error` reports, or `None` when it is not one (Osprey's grant,
/// a bad URL, a limit).
pub fn read(error: &Error) -> Option<Failure> {
    let m = error.message.as_str();
    match error.kind {
        ErrorKind::Timeout => Some(Failure::Timeout),
        ErrorKind::Unavailable if m.contains("DNS lookup failed") => Some(Failure::Dns),
        ErrorKind::Unavailable if m.ends_with("ConnectionRefused") => Some(Failure::Refused),
        ErrorKind::Unavailable if m.ends_with("ConnectionTerminated") => Some(Failure::Reset),
        ErrorKind::Unavailable
            if m.ends_with("DestinationUnavailable") || m.ends_with("DestinationIpUnroutable") =>
        {
            Some(Failure::Unreachable)
        }
        ErrorKind::Upstream if m.contains("(TLS certificate error)") => Some(Failure::TlsCertificate),
        ErrorKind::Upstream if m.contains("the TLS handshake failed") => Some(Failure::TlsHandshake),
        ErrorKind::Upstream if m.ends_with("HttpProtocolError") => Some(Failure::Protocol),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use osprey_sdk::bindings::wasi::http::types::{ErrorCode, TlsAlertReceivedPayload};
    use osprey_sdk::http::error_from_code;

    const URL: &str = "https://probe.example/eicar.com.txt";

    fn failure_of(code: ErrorCode) -> Option<Failure> {
        read(&error_from_code(URL, &code))
    }

    #[test]
    fn each_transport_failure_is_named_from_the_sdks_own_error() {
        let cases = [
            (ErrorCode::ConnectionRefused, Failure::Refused),
            (ErrorCode::ConnectionTerminated, Failure::Reset),
            (ErrorCode::ConnectionTimeout, Failure::Timeout),
            (ErrorCode::ConnectionReadTimeout, Failure::Timeout),
            (ErrorCode::HttpResponseTimeout, Failure::Timeout),
            (ErrorCode::DestinationUnavailable, Failure::Unreachable),
            (ErrorCode::DestinationIpUnroutable, Failure::Unreachable),
            (ErrorCode::DestinationNotFound, Failure::Dns),
            (ErrorCode::TlsCertificateError, Failure::TlsCertificate),
            (ErrorCode::TlsProtocolError, Failure::TlsHandshake),
            (
                ErrorCode::TlsAlertReceived(TlsAlertReceivedPayload {
                    alert_id: Some(42),
                    alert_message: Some("bad certificate".into()),
                }),
                Failure::TlsHandshake,
            ),
            (ErrorCode::HttpProtocolError, Failure::Protocol),
        ];
        for (code, want) in cases {
            let shown = format!("{code:?}");
            assert_eq!(failure_of(code), Some(want), "{shown}");
        }
    }

    #[test]
    fn osprey_refusing_the_request_is_not_a_control_blocking_it() {
        assert_eq!(failure_of(ErrorCode::HttpRequestDenied), None);
        assert_eq!(failure_of(ErrorCode::DestinationIpProhibited), None);
        assert_eq!(failure_of(ErrorCode::HttpResponseBodySize(Some(10))), None);
        assert_eq!(read(&Error::invalid_input("'x' is not a usable URL")), None);
    }
}
