use crate::bindings::osprey::plugin::types as wit;
use std::fmt;
use std::time::Duration;

/// What went wrong, in terms a playbook can act on. See the WIT file for each kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input: not retryable.
    InvalidInput,
    /// The thing asked about does not exist at the vendor.
    NotFound,
    /// A capability was not granted, or the vendor said 401/403.
    Denied,
    /// The vendor is unreachable or answered 5xx.
    Unavailable,
    /// The vendor said "slow down".
    RateLimited,
    /// The vendor answered with something unusable.
    Upstream,
    /// Out of time.
    Timeout,
    /// A limit was hit (size, quota, count).
    LimitExceeded,
    /// A bug.
    Internal,
}

/// A typed error: kind, message, whether a retry may help, and how long to wait before it
/// when the vendor said so. Messages reach run timelines and logs: never put a secret in one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// What went wrong.
    pub kind: ErrorKind,
    /// For humans.
    pub message: String,
    /// Whether the same call may succeed later.
    pub retryable: bool,
    /// How long the vendor asked to wait before the call is made again (a `Retry-After`, a
    /// quota's reset time). A run that retries this call waits this long instead of its
    /// backoff (Osprey waits at most 24 hours). Meaningful only when `retryable`.
    pub retry_after: Option<Duration>,
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind`; retryable by default for `unavailable`, `rate-limited` and
    /// `timeout`, the kinds where waiting helps.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let retryable = matches!(
            kind,
            ErrorKind::Unavailable | ErrorKind::RateLimited | ErrorKind::Timeout
        );
        Error {
            kind,
            message: message.into(),
            retryable,
            retry_after: None,
        }
    }
    /// The input was wrong.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidInput, message)
    }
    /// Nothing by that name at the vendor.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }
    /// Refused.
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Denied, message)
    }
    /// The vendor is down or unreachable (retryable).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    /// The vendor asked us to slow down (retryable).
    pub fn rate_limited(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::RateLimited, message)
    }
    /// The vendor's answer was unusable.
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Upstream, message)
    }
    /// A bug.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }
    /// Override whether a retry may help.
    pub fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = retryable;
        self
    }
    /// Say how long to wait before the call is made again, when the vendor said (`None`
    /// leaves it unsaid): `Error::rate_limited(msg).retry_after(Duration::from_secs(3600))`,
    /// or `.retry_after(response.retry_after())` with an HTTP response's `Retry-After`.
    pub fn retry_after(mut self, wait: impl Into<Option<Duration>>) -> Self {
        self.retry_after = wait.into();
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::upstream(format!("JSON: {e}"))
    }
}

impl From<wit::ErrorKind> for ErrorKind {
    fn from(k: wit::ErrorKind) -> Self {
        match k {
            wit::ErrorKind::InvalidInput => ErrorKind::InvalidInput,
            wit::ErrorKind::NotFound => ErrorKind::NotFound,
            wit::ErrorKind::Denied => ErrorKind::Denied,
            wit::ErrorKind::Unavailable => ErrorKind::Unavailable,
            wit::ErrorKind::RateLimited => ErrorKind::RateLimited,
            wit::ErrorKind::Upstream => ErrorKind::Upstream,
            wit::ErrorKind::Timeout => ErrorKind::Timeout,
            wit::ErrorKind::LimitExceeded => ErrorKind::LimitExceeded,
            wit::ErrorKind::Internal => ErrorKind::Internal,
        }
    }
}

impl From<ErrorKind> for wit::ErrorKind {
    fn from(k: ErrorKind) -> Self {
        match k {
            ErrorKind::InvalidInput => wit::ErrorKind::InvalidInput,
            ErrorKind::NotFound => wit::ErrorKind::NotFound,
            ErrorKind::Denied => wit::ErrorKind::Denied,
            ErrorKind::Unavailable => wit::ErrorKind::Unavailable,
            ErrorKind::RateLimited => wit::ErrorKind::RateLimited,
            ErrorKind::Upstream => wit::ErrorKind::Upstream,
            ErrorKind::Timeout => wit::ErrorKind::Timeout,
            ErrorKind::LimitExceeded => wit::ErrorKind::LimitExceeded,
            ErrorKind::Internal => wit::ErrorKind::Internal,
        }
    }
}

impl From<wit::Error> for Error {
    fn from(e: wit::Error) -> Self {
        Error {
            kind: e.kind.into(),
            message: e.message,
            retryable: e.retryable,
            retry_after: e.retry_after.map(|ms| Duration::from_millis(u64::from(ms))),
        }
    }
}

impl From<Error> for wit::Error {
    fn from(e: Error) -> Self {
        wit::Error {
            kind: e.kind.into(),
            message: e.message,
            retryable: e.retryable,
            // In milliseconds; past u32 (49 days) is the same as the host's cap.
            retry_after: e
                .retry_after
                .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [ErrorKind; 9] = [
        ErrorKind::InvalidInput,
        ErrorKind::NotFound,
        ErrorKind::Denied,
        ErrorKind::Unavailable,
        ErrorKind::RateLimited,
        ErrorKind::Upstream,
        ErrorKind::Timeout,
        ErrorKind::LimitExceeded,
        ErrorKind::Internal,
    ];

    #[test]
    fn only_the_kinds_where_waiting_helps_are_retryable_by_default() {
        let retryable: Vec<ErrorKind> = KINDS
            .into_iter()
            .filter(|k| Error::new(*k, "x").retryable)
            .collect();
        assert_eq!(
            retryable,
            [ErrorKind::Unavailable, ErrorKind::RateLimited, ErrorKind::Timeout]
        );
        assert!(!Error::unavailable("down").retryable(false).retryable);
        assert!(Error::denied("no").retryable(true).retryable);
    }

    #[test]
    fn errors_cross_the_wit_boundary_unchanged() {
        for kind in KINDS {
            let e = Error::new(kind, format!("{kind:?} happened")).retryable(kind == ErrorKind::Internal);
            let back: Error = wit::Error::from(e.clone()).into();
            assert_eq!(back, e);
        }
        let e = Error::rate_limited("daily quota").retry_after(Duration::from_secs(3600));
        assert_eq!(wit::Error::from(e.clone()).retry_after, Some(3_600_000));
        assert_eq!(Error::from(wit::Error::from(e.clone())), e);
        let far = Error::rate_limited("x").retry_after(Duration::from_secs(u64::MAX));
        assert_eq!(wit::Error::from(far).retry_after, Some(u32::MAX));
        assert_eq!(e.retry_after(None).retry_after, None);
    }

    #[test]
    fn display_shows_the_kind_and_message_and_bad_json_is_upstream() {
        assert_eq!(
            Error::not_found("no such host").to_string(),
            "NotFound: no such host"
        );
        let e: Error = serde_json::from_str::<u8>("[").unwrap_err().into();
        assert_eq!(e.kind, ErrorKind::Upstream);
        assert!(e.message.starts_with("JSON: "), "{}", e.message);
    }
}
