//! Compiling a script: the language Osprey's scripts speak, the prelude, and what can be read
//! from a script without running it.

use crate::playbook::api;
use crate::playbook::limits::ScriptLimits;
use rhai::{AST, Engine};

/// A compiled playbook script.
#[derive(Debug, Clone)]
pub struct Script {
    pub ast: AST,
    /// SHA-256 of the source, hex.
    pub hash: String,
}

/// Why a script does not compile: `line:column: message`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct CompileError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// The functions every script can use, written in Rhai.
const PRELUDE: &str = r#"
/// Call `f` up to `attempts` times while it throws a retryable plugin error, sleeping
/// `backoff` (seconds or "2s"), then twice that, and so on, between attempts; or, when the
/// plugin said how long to wait (`retry_after_ms`), that long (at most 24 hours).
fn retry(attempts, backoff, f) {
    let n = 0;
    loop {
        try {
            return f.call();
        } catch (e) {
            n += 1;
            if type_of(e) != "map" || !(e.retryable ?? false) || n >= attempts { throw e; }
            sleep(__backoff(backoff, n, e.retry_after_ms));
        }
    }
}
"#;

/// An engine with the language set up, but no effectful functions: for compiling, and as
/// the base of each replay's engine.
pub(in crate::playbook) fn base_engine(limits: &ScriptLimits) -> Engine {
    let mut engine = Engine::new_raw();
    for module in api::packages() {
        engine.register_global_module(module.clone());
    }
    engine.register_global_module(api::module());
    engine.disable_symbol("eval");
    set_limits(&mut engine, limits);
    engine.set_max_expr_depths(128, 64);
    engine.set_optimization_level(rhai::OptimizationLevel::Simple);
    engine
}

/// Give `engine` a script's limits (a replay's engine serves runs of several playbooks).
pub(super) fn set_limits(engine: &mut Engine, limits: &ScriptLimits) {
    engine.set_max_operations(limits.max_operations);
    engine.set_max_call_levels(limits.max_call_depth);
    engine.set_max_string_size(limits.max_string_bytes);
    engine.set_max_array_size(limits.max_array_len);
    engine.set_max_map_size(limits.max_map_len);
}

/// Compile a script (with the prelude).
pub fn compile(source: &str) -> Result<Script, CompileError> {
    use sha2::Digest;
    let engine = base_engine(&ScriptLimits::default());
    let prelude = engine.compile(PRELUDE).expect("the prelude compiles");
    let ast = engine.compile(source).map_err(|e| {
        let pos = e.1;
        CompileError {
            line: pos.line().unwrap_or(0),
            column: pos.position().unwrap_or(0),
            message: e.0.to_string(),
        }
    })?;
    Ok(Script {
        ast: prelude.merge(&ast),
        hash: hex::encode(sha2::Sha256::digest(source.as_bytes())),
    })
}

/// The plugins a script names literally in `invoke("NAME", ...)` and
/// `invoke_cached("NAME", ...)`, in its body and its functions, sorted. Calls with a computed
/// name are not seen (they are checked when they run).
pub fn literal_invokes(script: &Script) -> Vec<String> {
    let mut found = std::collections::BTreeSet::new();
    walk_invokes(script, |plugin, _| {
        found.insert(plugin.to_owned());
    });
    found.into_iter().collect()
}

/// The `(plugin, action)` pairs a script names literally in `invoke("NAME", "ACTION", ...)`
/// and `invoke_cached`, sorted, each once.
pub fn literal_invoke_actions(script: &Script) -> Vec<(String, String)> {
    let mut found = std::collections::BTreeSet::new();
    walk_invokes(script, |plugin, action| {
        if let Some(action) = action {
            found.insert((plugin.to_owned(), action.to_owned()));
        }
    });
    found.into_iter().collect()
}

/// Each call of `invoke` or `invoke_cached` whose plugin is a string literal, with its action
/// if that is one too.
fn walk_invokes(script: &Script, mut seen: impl FnMut(&str, Option<&str>)) {
    script.ast.walk(&mut |path: &[rhai::ASTNode]| {
        let call = match path.last() {
            Some(rhai::ASTNode::Expr(rhai::Expr::FnCall(call, _))) => Some(call),
            Some(rhai::ASTNode::Stmt(rhai::Stmt::FnCall(call, _))) => Some(call),
            _ => None,
        };
        if let Some(call) = call
            && (call.name == "invoke" || call.name == "invoke_cached")
            && let Some(rhai::Expr::StringConstant(name, _)) = call.args.first()
        {
            let action = match call.args.get(1) {
                Some(rhai::Expr::StringConstant(action, _)) => Some(action.as_str()),
                _ => None,
            };
            seen(name, action);
        }
        true
    });
}

/// Why a trigger's match expression does not compile.
#[derive(Debug, Clone, thiserror::Error)]
#[error(transparent)]
pub struct ExpressionError(#[from] rhai::ParseError);

/// Check that `expr` is a valid Rhai expression (for trigger match expressions).
pub fn check_expression(expr: &str) -> Result<(), ExpressionError> {
    base_engine(&ScriptLimits::default())
        .compile_expression(expr)
        .map(|_| ())
        .map_err(ExpressionError)
}
