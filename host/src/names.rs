//! Names of what operators and authors create — plugins, playbooks, rules, lists, tokens —
//! follow one rule, so they read the same in commands, URLs (`/edl/NAME.txt`) and the audit
//! log: 1 to 64 lower-case letters, digits and dashes, starting with a letter.

/// A name that breaks the rule: what it names ("plugin", "list", ...) and the name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} name '{name}' must be 1-64 lower-case letters, digits and dashes, starting with a letter")]
pub struct NameError {
    pub what: String,
    pub name: String,
}

/// Check `name` as the name of a `what` ("plugin", "list", ...); the error says both.
pub fn check(what: &str, name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(NameError {
            what: what.to_owned(),
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_rule_for_every_name() {
        for good in ["ipinfo", "blocked-ips-2", "a", &"x".repeat(64)] {
            assert!(super::check("list", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Bad",
            "2fast",
            "has space",
            "under_score",
            "dot.ted",
            &"x".repeat(65),
        ] {
            let e = super::check("rule", bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("rule name '{bad}'")), "{e}");
        }
    }
}
