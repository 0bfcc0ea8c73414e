//! Text rendering shared by CLI commands.

use crate::capability::{Capabilities, Limits};
use std::time::{Duration, UNIX_EPOCH};

/// Unix milliseconds as an RFC 3339 UTC time.
pub fn time(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Requested and granted capabilities side by side, one row per item, and the limits that
/// are in force. This is what an operator reviews before granting and an auditor reads.
pub fn capabilities(
    requested: &Capabilities,
    granted: &Capabilities,
    granted_at_all: bool,
    limits: &Limits,
) -> String {
    let mut rows: Vec<(String, String, bool, bool)> = Vec::new();
    let mut push = |kind: &str, item: String, req: bool, gr: bool| {
        if !rows.iter().any(|(k, i, _, _)| k == kind && *i == item) {
            rows.push((kind.to_owned(), item, req, gr));
        }
    };
    for p in requested.http.iter().chain(&granted.http) {
        push(
            "http",
            p.to_string(),
            requested.http.contains(p),
            granted.http.contains(p),
        );
    }
    for r in requested.private_ranges.iter().chain(&granted.private_ranges) {
        push(
            "private range",
            r.to_string(),
            requested.private_ranges.contains(r),
            granted.private_ranges.contains(r),
        );
    }
    for s in requested.secrets.iter().chain(&granted.secrets) {
        push(
            "secret",
            s.clone(),
            requested.secrets.contains(s),
            granted.secrets.contains(s),
        );
    }
    if requested.webhooks || granted.webhooks {
        push(
            "webhooks",
            "/hooks/NAME/... (the plugin checks signatures)".to_owned(),
            requested.webhooks,
            granted.webhooks,
        );
    }
    let mut out = String::new();
    out.push_str(&format!(
        "  {:<14} {:<44} {:<10} {}\n",
        "CAPABILITY", "ITEM", "REQUESTED", "GRANTED"
    ));
    if rows.is_empty() {
        out.push_str("  (no outbound HTTP, private ranges, secrets or webhooks requested or granted)\n");
    }
    for (kind, item, req, gr) in rows {
        let req = if req { "yes" } else { "-" };
        let gr = if gr {
            "yes"
        } else if granted_at_all {
            "NO"
        } else {
            "no (nothing granted)"
        };
        out.push_str(&format!("  {kind:<14} {item:<44} {req:<10} {gr}\n"));
    }
    let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    let r = &requested.limits;
    let g = &granted.limits;
    let dur = |d: Option<Duration>| d.map(|d| humantime::format_duration(d).to_string());
    let lines = [
        (
            "timeout",
            dur(r.timeout),
            dur(g.timeout),
            humantime::format_duration(limits.timeout).to_string(),
        ),
        (
            "memory",
            r.memory_mib.map(|m| format!("{m} MiB")),
            g.memory_mib.map(|m| format!("{m} MiB")),
            format!("{} MiB", limits.memory_mib),
        ),
        (
            "kv quota",
            requested.kv_quota_bytes.map(bytes),
            granted.kv_quota_bytes.map(bytes),
            bytes(limits.kv_quota_bytes),
        ),
        (
            "response body",
            r.max_response_bytes.map(bytes),
            g.max_response_bytes.map(bytes),
            bytes(limits.max_response_bytes),
        ),
        (
            "requests/call",
            r.max_requests.map(|n| n.to_string()),
            g.max_requests.map(|n| n.to_string()),
            limits.max_requests.to_string(),
        ),
        (
            "output",
            r.max_output_bytes.map(bytes),
            g.max_output_bytes.map(bytes),
            bytes(limits.max_output_bytes),
        ),
    ];
    out.push_str(&format!(
        "\n  {:<14} {:<14} {:<14} {}\n",
        "LIMIT", "REQUESTED", "GRANTED", "IN FORCE"
    ));
    for (name, req, gr, now) in lines {
        out.push_str(&format!("  {name:<14} {:<14} {:<14} {now}\n", opt(req), opt(gr)));
    }
    out
}

fn bytes(n: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} B")
    }
}

/// One step of a run's timeline on one line: number, what, the request, the outcome, time.
pub fn step_line(s: &crate::store::runs::StepRecord) -> String {
    let what = match s.kind.as_str() {
        "invoke" => format!(
            "invoke {}.{}{}",
            s.request["plugin"].as_str().unwrap_or("?"),
            s.request["action"].as_str().unwrap_or("?"),
            // Answered by the plugin's mock (mock mode).
            if s.request["mocked"] == true { " MOCK" } else { "" }
        ),
        other => other.to_owned(),
    };
    let request = match s.kind.as_str() {
        "invoke" => s.request["input"].to_string(),
        "log" => s.request["message"].as_str().unwrap_or_default().to_owned(),
        _ if s.request.is_null() => String::new(),
        _ => s.request.to_string(),
    };
    let outcome = if s.ok {
        match s.kind.as_str() {
            "log" => String::new(),
            "sleep" => format!("→ until {}", time(s.outcome["wake_at"].as_i64().unwrap_or(0))),
            _ => format!("→ {}", s.outcome),
        }
    } else {
        format!(
            "→ ERROR {}: {}",
            s.outcome["kind"].as_str().unwrap_or("?"),
            s.outcome["message"].as_str().unwrap_or("")
        )
    };
    let mut line = format!("#{:<3} {what:<28} {}  {outcome}", s.seq, shorten(&request, 80));
    if s.duration_ms > 0 {
        line.push_str(&format!("  ({} ms)", s.duration_ms));
    }
    shorten(&line, 400)
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}
