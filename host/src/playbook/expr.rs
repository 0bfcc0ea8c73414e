//! Rhai expressions over an alert: the matches of pre-processing rules and of playbooks'
//! alert triggers, and deduplication keys; also SLA triggers' matches, over an incident and
//! a breach. Compiled once, evaluated with the data functions of the playbook API (regex,
//! split, ...), no effects, and tight limits.

use super::api;
use super::engine::{ScriptLimits, base_engine};
use rhai::{AST, Dynamic, Engine, Scope};
use serde_json::Value;
use std::sync::LazyLock;

/// The engine every expression runs in: shared, since it holds no state.
static ENGINE: LazyLock<Engine> = LazyLock::new(|| {
    let limits = ScriptLimits {
        max_operations: 100_000,
        max_call_depth: 16,
        ..ScriptLimits::default()
    };
    base_engine(&limits)
});

/// The variables expressions see (`alert`, or `incident` and `breach`), converted from JSON
/// once and shared by every expression evaluated over them (expressions cannot change them).
pub struct Vars(Scope<'static>);

impl Vars {
    pub fn new(vars: &[(&str, &Value)]) -> Result<Vars, String> {
        let mut scope = Scope::new();
        for (name, value) in vars {
            scope.push_constant(
                name.to_string(),
                api::from_json_value(value).map_err(|e| e.to_string())?,
            );
        }
        Ok(Vars(scope))
    }
}

/// A compiled expression over `alert`.
#[derive(Debug, Clone)]
pub struct Expr {
    source: String,
    ast: AST,
}

impl Expr {
    /// Compile `source`; the error says what is wrong and where.
    pub fn compile(source: &str) -> Result<Expr, String> {
        let ast = ENGINE.compile_expression(source).map_err(|e| e.to_string())?;
        Ok(Expr {
            source: source.to_owned(),
            ast,
        })
    }

    fn eval(&self, vars: &mut Vars) -> Result<Dynamic, String> {
        ENGINE
            .eval_ast_with_scope::<Dynamic>(&mut vars.0, &self.ast)
            .map_err(|e| format!("`{}`: {e}", self.source))
    }

    /// Whether `alert` matches. A missing field is `()`, which is not equal to anything, so
    /// `alert.data.x == 1` is simply false for alerts without `x`; a result that is not a
    /// boolean is an error.
    pub fn matches(&self, alert: &Value) -> Result<bool, String> {
        self.matches_in(&mut Vars::new(&[("alert", alert)])?)
    }

    /// Whether the expression is true with these variables (`incident` and `breach` for an
    /// SLA trigger).
    pub fn matches_with(&self, vars: &[(&str, &Value)]) -> Result<bool, String> {
        self.matches_in(&mut Vars::new(vars)?)
    }

    /// Whether the expression is true with variables prepared once for several expressions.
    pub fn matches_in(&self, vars: &mut Vars) -> Result<bool, String> {
        let v = self.eval(vars)?;
        v.as_bool()
            .map_err(|t| format!("`{}` gave a {t}, not true or false", self.source))
    }

    /// The expression's value as a key (for deduplication and linking).
    pub fn key(&self, alert: &Value) -> Result<String, String> {
        self.key_in(&mut Vars::new(&[("alert", alert)])?)
    }

    /// [`Expr::key`] with variables prepared once.
    pub fn key_in(&self, vars: &mut Vars) -> Result<String, String> {
        let v = self.eval(vars)?;
        if v.is_unit() {
            return Err(format!("`{}` gave nothing for this alert", self.source));
        }
        Ok(v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn matches_and_keys_over_an_alert() {
        let alert = json!({
            "source": "passivedns",
            "severity": "info",
            "data": { "query": "www.netflix.com", "client": "10.1.1.5" },
            "observables": { "domains": ["www.netflix.com"] }
        });
        let m = Expr::compile(r#"alert.source == "passivedns" && alert.data.query.ends_with("netflix.com")"#)
            .unwrap();
        assert!(m.matches(&alert).unwrap());
        let m = Expr::compile(r#"alert.data.missing == 1"#).unwrap();
        assert!(!m.matches(&alert).unwrap());
        let m = Expr::compile(r#"regex_match(alert.data.query, "(^|\\.)netflix\\.com$")"#).unwrap();
        assert!(m.matches(&alert).unwrap());
        let k = Expr::compile(r#"alert.data.client + "|" + alert.observables.domains[0]"#).unwrap();
        assert_eq!(k.key(&alert).unwrap(), "10.1.1.5|www.netflix.com");
    }

    #[test]
    fn mistakes_are_clear() {
        let e = Expr::compile("alert.source ==").unwrap_err();
        assert!(e.contains("incomplete") && e.contains("position 16"), "{e}");
        let e = Expr::compile("alert.source")
            .unwrap()
            .matches(&json!({"source": "x"}))
            .unwrap_err();
        assert!(e.contains("not true or false"), "{e}");
        let e = Expr::compile("alert.nothing")
            .unwrap()
            .key(&json!({}))
            .unwrap_err();
        assert!(e.contains("gave nothing"), "{e}");
    }
}
