//! The EICAR anti-virus test file: 68 harmless bytes every anti-virus product detects as if
//! they were a virus (<https://www.eicar.org/download-anti-malware-testfile/>). It is put
//! together from parts at run time so that neither this source nor the built component holds
//! the whole string, and scanners on the machines that build or keep them stay quiet.

use std::hint::black_box;

/// The EICAR test string, assembled from parts.
pub fn test_string() -> String {
    // One literal with a separator between the parts: the bytes kept in the component are
    // never the whole string (separate literals end up side by side once linked).
    const PARTS: &str = "X5O!P%@AP[4\\PZX54(P^)7CC)7}$|EICAR-STANDARD-|ANTIVIRUS-TEST-|FILE!$H+H*";
    // `black_box` keeps the optimiser from folding the parts back into one constant.
    black_box(PARTS).split('|').collect()
}

/// Whether `body` holds the EICAR test string anywhere (a file may pad it, as the standard
/// allows trailing whitespace, or wrap it in more text).
pub fn contains_test_string(body: &[u8]) -> bool {
    let needle = test_string().into_bytes();
    body.windows(needle.len()).any(|w| w == needle.as_slice())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_string_is_the_standard_one() {
        let s = test_string();
        assert_eq!(s.len(), 68);
        assert!(s.starts_with("X5O!P%@AP"));
        assert!(s.ends_with("$H+H*"));
        assert!(s.contains("-STANDARD-ANTIVIRUS-TEST-FILE!"));
    }

    #[test]
    fn it_is_found_anywhere_in_a_body_and_only_whole() {
        let s = test_string();
        assert!(contains_test_string(s.as_bytes()));
        assert!(contains_test_string(format!("<pre>{s}\r\n</pre>").as_bytes()));
        assert!(!contains_test_string(&s.as_bytes()[..67]));
        assert!(!contains_test_string(b"<html>Blocked by policy</html>"));
        assert!(!contains_test_string(b""));
    }
}
