//! Paths that could leave a granted path prefix on the vendor's side.
//!
//! The gate matches the path as the client sends it; a server (or a proxy in front of it)
//! that decodes `%2F`, reads `\` as `/`, or drops `;` parameters before resolving `..` may
//! serve `/v2/..%2Fadmin` from `/admin`. When a grant restricts the path, such paths are
//! refused. Pure: no I/O.

/// Why `path` could escape a path prefix on a server that decodes it, or `None`.
pub fn escape_risk(path: &str) -> Option<&'static str> {
    let lower = path.to_ascii_lowercase();
    if lower.contains('\\') {
        return Some("a backslash, which some servers read as '/'");
    }
    if lower.contains("%2f") {
        return Some("an encoded slash (%2F), which some servers decode into a path separator");
    }
    if lower.contains("%5c") {
        return Some("an encoded backslash (%5C), which some servers decode and read as '/'");
    }
    if ["%252f", "%255c", "%252e"].iter().any(|d| lower.contains(d)) {
        return Some("a double-encoded slash, backslash or dot (%252F, %255C, %252E)");
    }
    if lower.split('/').any(is_dot_segment) {
        return Some(
            "a dot segment ('.' or '..', also written %2E or followed by ';' parameters), which a server may resolve",
        );
    }
    None
}

/// `.`, `..`, `%2e.`, `..;x`: a segment a server may treat as a dot segment, once `%2e` is
/// decoded and `;` parameters are dropped.
fn is_dot_segment(segment: &str) -> bool {
    let decoded = segment.replace("%2e", ".");
    let name = decoded.split(';').next().unwrap_or_default();
    name == "." || name == ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tricks_that_leave_a_prefix_are_refused_with_a_reason() {
        for (path, why) in [
            ("/v2/..%2fadmin", "encoded slash"),
            ("/v2/..%2Fadmin", "encoded slash"),
            ("/v2/%2e%2e%5cadmin", "encoded backslash"),
            ("/v2/..%5Cadmin", "encoded backslash"),
            ("/v2/..\\admin", "backslash"),
            ("/v2/..;/admin", "dot segment"),
            ("/v2/.;x/admin", "dot segment"),
            ("/v2/%2e%2e;/admin", "dot segment"),
            ("/v2/.%2E/admin", "dot segment"),
            ("/v2/..", "dot segment"),
            ("/v2/./x", "dot segment"),
            ("/v2/..%252fadmin", "double-encoded"),
        ] {
            let got = escape_risk(path).unwrap_or_else(|| panic!("{path} must be refused"));
            assert!(got.contains(why), "{path}: {got}");
        }
    }

    #[test]
    fn ordinary_paths_pass() {
        for path in [
            "/v2/users",
            "/v2/users/42;version=1",
            "/v2/file.name",
            "/v2/...",
            "/v2/..x",
            "/v2/a%20b",
            "/v2/%2e%2e%2e",
            "/v2/users/",
            "/",
        ] {
            assert_eq!(escape_risk(path), None, "{path}");
        }
    }
}
