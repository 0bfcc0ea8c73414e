//! Signing in to the web console: password hashes, session tokens and CSRF tokens. Pure
//! functions, no I/O (the store keeps the hashes and sessions; `server/web/` serves the
//! pages).
//!
//! - Passwords are hashed with argon2id (the crate's default parameters, a random salt) and
//!   stored as PHC strings, so parameters can change later without breaking old hashes.
//!   Checking a password for a user without one (unknown, disabled, never set) still runs a
//!   verification against a dummy hash, so the time taken does not tell which users exist.
//! - A session token is 32 random bytes, base64url; the cookie carries it and the store keeps
//!   only its SHA-256.
//! - Each session has a CSRF token that every form posted in it must carry, compared in
//!   constant time.
//! - Sign-in has no session yet, so no token: [`check_same_origin`] refuses a form a browser
//!   posted from another site (login CSRF) by its `Sec-Fetch-Site` and `Origin` headers.

use argon2::Argon2;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use secrecy::{ExposeSecret as _, SecretString};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;
use thiserror::Error;

/// The fewest characters a password may have.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The most bytes a password may have (longer is surely a mistake: a file piped by accident).
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "osprey_session";

/// Why a form was refused as posted from another site.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CrossSiteError {
    #[error("the browser says the form was sent from another site (Sec-Fetch-Site: {0})")]
    FetchSite(String),
    #[error("the form was sent from {origin}, not from this server ({here})")]
    Origin { origin: String, here: String },
}

/// Refuse a form that a browser posted from another site, for the forms that have no
/// session's CSRF token to check (signing in; signing out checks both).
///
/// - `Sec-Fetch-Site` (sent by every current browser, and not settable by a page), when
///   present, decides: `same-origin` (the form came from a page of this server) and `none`
///   (the user typed the address or used a bookmark) pass; `cross-site` and `same-site` are
///   refused. `same-site` is refused too because a sibling subdomain (another app of the
///   same organisation, a page users can upload to) is another origin that SameSite cookies
///   do not keep out, and this server's own forms are always `same-origin`.
/// - Otherwise `Origin`, when present, must name this server: its host and port (scheme
///   aside, so a TLS-terminating proxy in front still matches; 80 and 443 count as no port)
///   must be those of the request's `Host` or of `public_url` (the address people use, when
///   configured). `Origin: null` (a sandboxed frame, a privacy-preserving redirect) is
///   refused.
/// - A request with neither header (curl, scripts, old clients) passes: a browser posting
///   across sites always sends at least one of them.
pub fn check_same_origin(
    sec_fetch_site: Option<&str>,
    origin: Option<&str>,
    host: Option<&str>,
    public_url: Option<&str>,
) -> Result<(), CrossSiteError> {
    if let Some(site) = sec_fetch_site {
        let site = site.trim().to_ascii_lowercase();
        return match site.as_str() {
            "same-origin" | "none" => Ok(()),
            _ => Err(CrossSiteError::FetchSite(site.chars().take(40).collect())),
        };
    }
    let Some(origin) = origin else {
        return Ok(());
    };
    let from = url::Url::parse(origin.trim())
        .ok()
        .and_then(|u| authority(u.host_str()?, u.port()));
    let public = public_url
        .and_then(|p| url::Url::parse(p).ok())
        .and_then(|u| authority(u.host_str()?, u.port()));
    let host_header = host.and_then(|h| {
        let a = h.trim().parse::<http::uri::Authority>().ok()?;
        authority(a.host(), a.port_u16())
    });
    match from {
        Some(from) if Some(&from) == host_header.as_ref() || Some(&from) == public.as_ref() => Ok(()),
        _ => Err(CrossSiteError::Origin {
            origin: origin.chars().take(200).collect(),
            here: host
                .or(public_url)
                .unwrap_or("unknown")
                .chars()
                .take(200)
                .collect(),
        }),
    }
}

/// `host[:port]` lowercased, without the default ports 80 and 443, to compare origins by.
fn authority(host: &str, port: Option<u16>) -> Option<String> {
    if host.is_empty() {
        return None;
    }
    let host = host.to_ascii_lowercase();
    Some(match port {
        None | Some(80) | Some(443) => host,
        Some(p) => format!("{host}:{p}"),
    })
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum PasswordError {
    #[error(
        "the password is too short: it has {0} characters and needs at least {MIN_PASSWORD_CHARS} (a few words make a good one)"
    )]
    TooShort(usize),
    #[error("the password is too long: at most {MAX_PASSWORD_BYTES} bytes")]
    TooLong,
}

/// Whether `password` may be set as a new password.
pub fn check_new_password(password: &SecretString) -> Result<(), PasswordError> {
    let p = password.expose_secret();
    let chars = p.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort(chars));
    }
    if p.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordError::TooLong);
    }
    Ok(())
}

/// The argon2id PHC string of `password`, with a fresh random salt. Slow on purpose (tens of
/// milliseconds); call it off the async threads.
pub fn hash_password(password: &SecretString) -> String {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .expect("argon2id with default parameters and a generated salt does not fail")
        .to_string()
}

/// Whether `password` matches the PHC string `stored`. With no stored hash (unknown user,
/// disabled, no password) it verifies against a dummy hash and answers false, taking about as
/// long as a real check. An unreadable stored hash answers false.
pub fn verify_password(password: &SecretString, stored: Option<&str>) -> bool {
    let (phc, real) = match stored {
        Some(s) => (s, true),
        None => (dummy_hash(), false),
    };
    let Ok(parsed) = PasswordHash::new(phc) else {
        tracing::warn!("a stored password hash is not a PHC string; the sign-in is refused");
        return false;
    };
    let ok = Argon2::default()
        .verify_password(password.expose_secret().as_bytes(), &parsed)
        .is_ok();
    ok && real
}

/// A hash of a random password, made once, to verify against when there is no real hash.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| hash_password(&SecretString::from(random_token())))
}

/// 32 random bytes, base64url without padding (43 characters): sessions, CSRF tokens, and
/// the ids of installs waiting for review.
pub fn random_token() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A new session token (for the cookie) and the hash to store.
pub fn new_session_token() -> (SecretString, String) {
    let token = random_token();
    let hash = session_token_hash(&token);
    (SecretString::from(token), hash)
}

/// The hash under which a session token is stored (SHA-256, hex).
pub fn session_token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A new CSRF token for a session (32 random bytes, base64url).
pub fn new_csrf_token() -> String {
    random_token()
}

/// Whether two CSRF tokens are equal, in time that depends only on their lengths.
pub fn csrf_matches(expected: &str, submitted: &str) -> bool {
    let (a, b) = (expected.as_bytes(), submitted.as_bytes());
    if a.len() != b.len() || a.is_empty() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    #[test]
    fn passwords_hash_with_argon2id_and_a_fresh_salt() {
        let pw = secret("correct horse battery staple");
        let a = hash_password(&pw);
        let b = hash_password(&pw);
        assert!(a.starts_with("$argon2id$"), "{a}");
        assert_ne!(a, b, "each hash has its own salt");
        assert!(verify_password(&pw, Some(&a)));
        assert!(verify_password(&pw, Some(&b)));
        assert!(!verify_password(&secret("correct horse battery stapl"), Some(&a)));
        assert!(!verify_password(&pw, None), "no hash: never a match");
        assert!(!verify_password(&pw, Some("not a phc string")));
    }

    #[test]
    fn new_passwords_need_twelve_characters() {
        let e = check_new_password(&secret("short")).unwrap_err().to_string();
        assert!(e.contains("too short") && e.contains("at least 12"), "{e}");
        assert!(
            check_new_password(&secret("ééééééééééé")).is_err(),
            "11 characters"
        );
        assert!(check_new_password(&secret("twelve chars")).is_ok());
        assert_eq!(
            check_new_password(&secret(&"x".repeat(MAX_PASSWORD_BYTES + 1))),
            Err(PasswordError::TooLong)
        );
    }

    #[test]
    fn tokens_are_random_and_only_their_hash_is_kept() {
        let (t1, h1) = new_session_token();
        let (t2, h2) = new_session_token();
        assert_eq!(t1.expose_secret().len(), 43);
        assert_ne!(t1.expose_secret(), t2.expose_secret());
        assert_ne!(h1, h2);
        assert_eq!(h1, session_token_hash(t1.expose_secret()));
        assert_eq!(h1.len(), 64);
        assert!(!h1.contains(t1.expose_secret()));
        assert_ne!(new_csrf_token(), new_csrf_token());
    }

    #[test]
    fn forms_from_other_sites_are_refused() {
        let host = Some("osprey.example:8080");
        // Sec-Fetch-Site decides when present, whatever Origin says.
        for ok in ["same-origin", "none", "Same-Origin"] {
            assert_eq!(
                check_same_origin(Some(ok), Some("https://evil.example"), host, None),
                Ok(())
            );
        }
        for bad in ["cross-site", "same-site", "whatever"] {
            let e = check_same_origin(Some(bad), Some("http://osprey.example:8080"), host, None).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
        // Else Origin must be this server, by host and port, whatever the scheme.
        for ok in [
            "http://osprey.example:8080",
            "https://OSPREY.example:8080",
            "http://osprey.example:8080/",
        ] {
            assert_eq!(check_same_origin(None, Some(ok), host, None), Ok(()), "{ok}");
        }
        for bad in [
            "https://evil.example",
            "http://osprey.example:8081",
            "http://osprey.example",
            "http://sub.osprey.example:8080",
            "null",
            "",
        ] {
            let e = check_same_origin(None, Some(bad), host, None).unwrap_err();
            assert!(e.to_string().contains("not from this server"), "{bad}: {e}");
        }
        // Default ports count as none; IPv6 hosts compare too.
        assert_eq!(
            check_same_origin(
                None,
                Some("https://osprey.example"),
                Some("osprey.example:443"),
                None
            ),
            Ok(())
        );
        assert_eq!(
            check_same_origin(None, Some("http://[::1]:3000"), Some("[::1]:3000"), None),
            Ok(())
        );
        // Behind a proxy that rewrites Host, the configured public address matches.
        let public = Some("https://soar.example.org/");
        assert_eq!(
            check_same_origin(
                None,
                Some("https://soar.example.org"),
                Some("127.0.0.1:8080"),
                public
            ),
            Ok(())
        );
        assert!(
            check_same_origin(None, Some("https://evil.example"), Some("127.0.0.1:8080"), public).is_err()
        );
        // Without either header (curl, old clients) the form passes.
        assert_eq!(check_same_origin(None, None, host, None), Ok(()));
        assert_eq!(check_same_origin(None, None, None, None), Ok(()));
    }

    #[test]
    fn csrf_tokens_compare_whole() {
        let t = new_csrf_token();
        assert!(csrf_matches(&t, &t.clone()));
        assert!(!csrf_matches(&t, &t[..t.len() - 1]));
        assert!(!csrf_matches(&t, ""));
        assert!(!csrf_matches("", ""), "an empty token never matches");
        let mut other = t.clone().into_bytes();
        other[0] ^= 1;
        assert!(!csrf_matches(&t, &String::from_utf8(other).unwrap()));
    }
}
