//! Signing in to the web console: password hashes, session tokens and CSRF tokens. Pure
//! functions, no I/O (the store keeps the hashes and sessions; `server/web.rs` serves the
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

/// 32 random bytes, base64url without padding (43 characters).
fn random_token() -> String {
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
