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

/// Why an expression did not compile or gave no answer. Rhai's errors are kept as they are.
#[derive(Debug, thiserror::Error)]
pub enum ExprError {
    /// A variable that is not a script value (nested too deep).
    #[error(transparent)]
    Vars(Box<rhai::EvalAltResult>),
    #[error(transparent)]
    Compile(rhai::ParseError),
    #[error("`{expr}`: {error}")]
    Eval {
        expr: String,
        #[source]
        error: Box<rhai::EvalAltResult>,
    },
    /// What it gave instead (a type name).
    #[error("`{expr}` gave a {kind}, not true or false")]
    NotBool { expr: String, kind: &'static str },
    #[error("`{expr}` gave nothing for this alert")]
    NoKey { expr: String },
}

/// The variables expressions see (`alert`, or `incident` and `breach`), converted from JSON
/// once and shared by every expression evaluated over them (expressions cannot change them).
pub struct Vars(Scope<'static>);

impl Vars {
    pub fn new(vars: &[(&str, &Value)]) -> Result<Vars, ExprError> {
        let mut scope = Scope::new();
        for (name, value) in vars {
            scope.push_constant(
                name.to_string(),
                api::from_json_value(value).map_err(ExprError::Vars)?,
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
    pub fn compile(source: &str) -> Result<Expr, ExprError> {
        let ast = ENGINE.compile_expression(source).map_err(ExprError::Compile)?;
        Ok(Expr {
            source: source.to_owned(),
            ast,
        })
    }

    fn eval(&self, vars: &mut Vars) -> Result<Dynamic, ExprError> {
        ENGINE
            .eval_ast_with_scope::<Dynamic>(&mut vars.0, &self.ast)
            .map_err(|error| ExprError::Eval {
                expr: self.source.clone(),
                error,
            })
    }

    /// Whether `alert` matches. A missing field is `()`, which is not equal to anything, so
    /// `alert.data.x == 1` is simply false for alerts without `x`; a result that is not a
    /// boolean is an error.
    pub fn matches(&self, alert: &Value) -> Result<bool, ExprError> {
        self.matches_in(&mut Vars::new(&[("alert", alert)])?)
    }

    /// Whether the expression is true with these variables (`incident` and `breach` for an
    /// SLA trigger).
    pub fn matches_with(&self, vars: &[(&str, &Value)]) -> Result<bool, ExprError> {
        self.matches_in(&mut Vars::new(vars)?)
    }

    /// Whether the expression is true with variables prepared once for several expressions.
    pub fn matches_in(&self, vars: &mut Vars) -> Result<bool, ExprError> {
        let v = self.eval(vars)?;
        v.as_bool().map_err(|kind| ExprError::NotBool {
            expr: self.source.clone(),
            kind,
        })
    }

    /// The expression's value as a key (for deduplication and linking).
    pub fn key(&self, alert: &Value) -> Result<String, ExprError> {
        self.key_in(&mut Vars::new(&[("alert", alert)])?)
    }

    /// [`Expr::key`] with variables prepared once.
    pub fn key_in(&self, vars: &mut Vars) -> Result<String, ExprError> {
        let v = self.eval(vars)?;
        if v.is_unit() {
            return Err(ExprError::NoKey {
                expr: self.source.clone(),
            });
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
        let e = Expr::compile("alert.source ==").unwrap_err().to_string();
        assert!(e.contains("incomplete") && e.contains("position 16"), "{e}");
        let e = Expr::compile("alert.source")
            .unwrap()
            .matches(&json!({"source": "x"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not true or false"), "{e}");
        let e = Expr::compile("alert.nothing")
            .unwrap()
            .key(&json!({}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("gave nothing"), "{e}");
    }
}
