//! Replay semantics, limits and the data API, against in-memory effects.

use super::act::{Act, ActCall, ActError};
use super::engine::{
    self, Effects, FailureKind, JournalError, Outcome, PluginFailure, ScriptLimits, WaitError,
};
use super::journal::{RunContext, Step, StepKind};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct World {
    clock: i64,
    calls: Vec<(String, Value, String)>,
    answers: Vec<Result<Value, PluginFailure>>,
    recorded: usize,
    cancelled: bool,
    /// Questions asked (`act` question_ask) and how each stands.
    asked: Vec<Value>,
    question: Option<super::engine::QuestionWait>,
}

struct TestEffects(Arc<Mutex<World>>);

impl Effects for TestEffects {
    fn call_plugin(
        &mut self,
        plugin: &str,
        action: &str,
        input: &Value,
        _: &str,
        key: &str,
    ) -> Result<Value, PluginFailure> {
        let mut w = self.0.lock().unwrap();
        w.calls
            .push((format!("{plugin}.{action}"), input.clone(), key.to_owned()));
        if w.answers.is_empty() {
            Ok(json!({"echo": input}))
        } else {
            w.answers.remove(0)
        }
    }
    fn record(&mut self, _: &str, _: &Step) -> Result<(), JournalError> {
        self.0.lock().unwrap().recorded += 1;
        Ok(())
    }
    fn now_ms(&mut self) -> i64 {
        self.0.lock().unwrap().clock
    }
    fn random_u64(&mut self) -> u64 {
        42
    }
    fn cancelled(&mut self) -> bool {
        self.0.lock().unwrap().cancelled
    }
    fn act(&mut self, call: &ActCall, _: &str, _: &str) -> Result<Value, ActError> {
        if !matches!(call.act, Act::QuestionAsk { .. }) {
            return Err(ActError::Unavailable(call.act.name()));
        }
        let mut w = self.0.lock().unwrap();
        w.asked.push(call.args());
        Ok(json!({ "id": format!("q{}", w.asked.len()) }))
    }
    fn question_wait(&mut self, id: &str) -> Result<super::engine::QuestionWait, WaitError> {
        assert_eq!(id, "q1");
        Ok(self
            .0
            .lock()
            .unwrap()
            .question
            .clone()
            .expect("the test set the question's state"))
    }
}

fn run(source: &str, journal: Vec<Step>, world: &Arc<Mutex<World>>) -> (Outcome, Vec<Step>) {
    run_limited(source, journal, world, ScriptLimits::default())
}

fn run_limited(
    source: &str,
    journal: Vec<Step>,
    world: &Arc<Mutex<World>>,
    limits: ScriptLimits,
) -> (Outcome, Vec<Step>) {
    let script = engine::compile(source).unwrap_or_else(|e| panic!("compile: {e}"));
    let ctx = RunContext {
        run_id: "r1".into(),
        playbook: "pb".into(),
        input: json!({"ip": "1.2.3.4"}).as_object().unwrap().clone(),
        plugins: vec!["ipinfo".into(), "p".into()],
        ..Default::default()
    };
    let (o, _, j) = engine::replay(
        &script,
        limits,
        &ctx,
        journal,
        Box::new(TestEffects(world.clone())),
    );
    (o, j)
}

fn world() -> Arc<Mutex<World>> {
    Arc::new(Mutex::new(World {
        clock: 1_000_000,
        ..Default::default()
    }))
}

fn failure(o: &Outcome) -> &engine::Failure {
    match o {
        Outcome::Failed(f) => f,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn a_run_completes_and_every_effect_is_a_journaled_step() {
    let w = world();
    let (o, journal) = run(
        r#"
        let info = invoke("ipinfo", "lookup", #{ ip: input.ip });
        log("looked up " + input.ip);
        let t = now();
        #{ country: info.echo.ip, at: t }
        "#,
        vec![],
        &w,
    );
    assert_eq!(
        o,
        Outcome::Completed(json!({"country": "1.2.3.4", "at": 1_000_000}))
    );
    let kinds: Vec<&str> = journal.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, vec!["invoke", "log", "now"]);
    assert_eq!(
        journal[0].request,
        json!({"plugin": "ipinfo", "action": "lookup", "input": {"ip": "1.2.3.4"}})
    );
    let w = w.lock().unwrap();
    assert_eq!(w.recorded, 3, "each step recorded as it happened");
    assert_eq!(w.calls[0].2, "r1:1", "the idempotency key is run id + step");
}

#[test]
fn a_replay_returns_recorded_outcomes_without_redoing_effects() {
    let source = r#"
        let a = invoke("p", "a", #{});
        let b = invoke("p", "b", #{});
        let t = now();
        [a, b, t]
    "#;
    let w = world();
    let (first, journal) = run(source, vec![], &w);
    assert_eq!(w.lock().unwrap().calls.len(), 2);
    w.lock().unwrap().clock = 9_999_999;
    let (again, journal2) = run(source, journal.clone(), &w);
    assert_eq!(first, again, "same outcome, including the recorded time");
    assert_eq!(journal, journal2);
    assert_eq!(w.lock().unwrap().calls.len(), 2, "no plugin was called again");

    // A crash after step 1 was recorded: the replay takes step 1 from the journal and
    // performs step 2 for real.
    let w = world();
    let (_, _) = run(source, journal[..1].to_vec(), &w);
    let calls: Vec<String> = w.lock().unwrap().calls.iter().map(|c| c.0.clone()).collect();
    assert_eq!(calls, vec!["p.b"]);
}

#[test]
fn sleep_unwinds_and_the_next_replay_goes_on_after_the_wake_up_time() {
    let source = r#"
        invoke("p", "before", #{});
        try { sleep("10m"); } catch (e) { return "the wait was swallowed"; }
        invoke("p", "after", #{});
        "done"
    "#;
    let w = world();
    let (o, journal) = run(source, vec![], &w);
    assert_eq!(
        o,
        Outcome::Waiting {
            wake_at: 1_000_000 + 600_000
        },
        "try/catch cannot swallow a wait"
    );
    assert_eq!(journal.len(), 2);
    // Woken too early (a spurious replay): still waiting, nothing redone.
    w.lock().unwrap().clock += 1000;
    let (o, journal) = run(source, journal, &w);
    assert!(matches!(o, Outcome::Waiting { .. }));
    w.lock().unwrap().clock += 600_000;
    let (o, journal) = run(source, journal, &w);
    assert_eq!(o, Outcome::Completed(json!("done")));
    assert_eq!(journal.len(), 3);
    let calls: Vec<String> = w.lock().unwrap().calls.iter().map(|c| c.0.clone()).collect();
    assert_eq!(calls, vec!["p.before", "p.after"]);
}

#[test]
fn a_changed_request_is_a_non_determinism_error_that_shows_both() {
    let w = world();
    let (_, journal) = run(r#"invoke("ipinfo", "lookup", #{ ip: "8.8.8.8" })"#, vec![], &w);
    let (o, _) = run(r#"invoke("ipinfo", "lookup", #{ ip: "1.1.1.1" })"#, journal, &w);
    let f = failure(&o);
    assert_eq!(f.kind, FailureKind::NonDeterminism);
    assert_eq!(f.step, Some(1));
    assert!(
        f.message.contains("8.8.8.8") && f.message.contains("1.1.1.1"),
        "{}",
        f.message
    );
    assert!(f.message.contains("restart it from step 1"), "{}", f.message);
}

#[test]
fn plugin_errors_are_catchable_values_with_kind_and_retryable() {
    let w = world();
    w.lock().unwrap().answers = vec![Err(PluginFailure {
        kind: "rate-limited".into(),
        message: "slow down".into(),
        retryable: true,
        retry_after_ms: None,
    })];
    let (o, journal) = run(
        r#"
        let r = ();
        try { invoke("ipinfo", "lookup", #{}); }
        catch (e) { r = #{ kind: e.kind, retryable: e.retryable, plugin: e.plugin, message: e.message }; }
        r
        "#,
        vec![],
        &w,
    );
    assert_eq!(
        o,
        Outcome::Completed(
            json!({"kind": "rate-limited", "retryable": true, "plugin": "ipinfo", "message": "slow down"})
        )
    );
    assert!(!journal[0].ok, "the error is journaled as the step's outcome");

    let w = world();
    w.lock().unwrap().answers = vec![Err(PluginFailure {
        kind: "unavailable".into(),
        message: "down".into(),
        retryable: true,
        retry_after_ms: None,
    })];
    let (o, _) = run(r#"invoke("ipinfo", "lookup", #{})"#, vec![], &w);
    let f = failure(&o);
    assert_eq!(
        f.kind,
        FailureKind::Plugin {
            retryable: true,
            retry_after_ms: None
        }
    );
    assert!(
        f.message.contains("ipinfo/lookup failed (unavailable): down"),
        "{}",
        f.message
    );
    assert!(f.retryable());
}

#[test]
fn retry_is_a_one_liner_with_journaled_backoff() {
    let source = r#"retry(3, "2s", || invoke("ipinfo", "lookup", #{ ip: "8.8.8.8" }))"#;
    let w = world();
    w.lock().unwrap().answers = vec![
        Err(PluginFailure {
            kind: "unavailable".into(),
            message: "down".into(),
            retryable: true,
            retry_after_ms: None,
        }),
        Ok(json!({"country": "US"})),
    ];
    let (o, journal) = run(source, vec![], &w);
    let Outcome::Waiting { wake_at } = o else {
        panic!("the backoff waits: {o:?}")
    };
    assert_eq!(wake_at, 1_000_000 + 2000);
    w.lock().unwrap().clock = wake_at;
    let (o, journal) = run(source, journal, &w);
    assert_eq!(o, Outcome::Completed(json!({"country": "US"})));
    let kinds: Vec<&str> = journal.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, vec!["invoke", "sleep", "invoke"]);

    // Not retryable: thrown at once.
    let w = world();
    w.lock().unwrap().answers = vec![Err(PluginFailure {
        kind: "denied".into(),
        message: "no".into(),
        retryable: false,
        retry_after_ms: None,
    })];
    let (o, journal) = run(source, vec![], &w);
    assert_eq!(
        failure(&o).kind,
        FailureKind::Plugin {
            retryable: false,
            retry_after_ms: None
        }
    );
    assert_eq!(journal.len(), 1);
}

#[test]
fn retry_waits_as_long_as_the_plugin_said_at_most_a_day_and_the_failure_carries_it() {
    let source = r#"retry(3, "2s", || invoke("ipinfo", "lookup", #{ ip: "8.8.8.8" }))"#;
    let quota = |ms: u64| PluginFailure {
        kind: "rate-limited".into(),
        message: "daily quota".into(),
        retryable: true,
        retry_after_ms: Some(ms),
    };
    let w = world();
    w.lock().unwrap().answers = vec![Err(quota(90_000)), Err(quota(u64::from(u32::MAX)))];
    let (o, journal) = run(source, vec![], &w);
    assert_eq!(
        o,
        Outcome::Waiting {
            wake_at: 1_000_000 + 90_000
        },
        "not the 2 s backoff"
    );
    assert_eq!(journal[0].outcome["retry_after_ms"], 90_000);
    w.lock().unwrap().clock = 1_090_000;
    let (o, _) = run(source, journal, &w);
    assert_eq!(
        o,
        Outcome::Waiting {
            wake_at: 1_090_000 + 24 * 3_600_000
        },
        "capped at a day"
    );

    // Not caught: the run's failure carries it, for the executor's retry.
    let w = world();
    w.lock().unwrap().answers = vec![Err(quota(60_000))];
    let (o, _) = run(r#"invoke("ipinfo", "lookup", #{ ip: "8.8.8.8" })"#, vec![], &w);
    assert_eq!(
        failure(&o).kind,
        FailureKind::Plugin {
            retryable: true,
            retry_after_ms: Some(60_000)
        }
    );
    // A journal written before retry-after existed reads back without it.
    let old: PluginFailure =
        serde_json::from_value(json!({"kind": "unavailable", "message": "down", "retryable": true})).unwrap();
    assert_eq!(old.retry_after_ms, None);
    assert!(
        serde_json::to_value(&old)
            .unwrap()
            .get("retry_after_ms")
            .is_none()
    );
}

#[test]
fn every_limit_fails_the_run_and_names_itself() {
    let small = ScriptLimits {
        max_operations: 10_000,
        max_call_depth: 8,
        max_string_bytes: 100,
        max_array_len: 10,
        max_map_len: 10,
        max_steps: 5,
        wall_time: std::time::Duration::from_millis(200),
        ..ScriptLimits::default()
    };
    let cases = [
        ("loop { }", "max_operations"),
        ("fn f(n) { f(n + 1) } f(0)", "max_call_depth"),
        (r#"let s = ""; loop { s += "xxxxxxxxxx"; }"#, "max_string_bytes"),
        ("let a = []; loop { a.push(1); }", "max_array_len"),
        // (Rhai checks a map's size when maps are merged or built, not on `m[k] = v`.)
        (
            "let m = #{}; let i = 0; loop { let x = #{}; x[`k${i}`] = i; m.mixin(x); i += 1; }",
            "max_map_len",
        ),
        // `m[k] = v` grows a map without Rhai's check: the map is checked as it is used.
        (
            "let m = #{}; let i = 0; loop { m[`k${i}`] = i; i += 1; }",
            "max_map_len",
        ),
        (r#"loop { log("again"); }"#, "max_steps"),
        // Functions that build big values check before they build.
        (
            r#"let s = "xxxxxxxxxx"; [s, s, s, s, s, s, s, s, s, s, s].join("")"#,
            "max_string_bytes",
        ),
        (r#"let s = "xxxxxxxxxx"; s.replace("", s); s"#, "max_string_bytes"),
        (
            r#"let s = "xxxxxxxxxx"; regex_replace(s, "", s)"#,
            "max_string_bytes",
        ),
        (r#"lines("a\nb\nc\nd\ne\nf\ng\nh\ni\nj\nk\nl")"#, "max_array_len"),
        (r#"regex_find_all("aaaaaaaaaaaaaaa", "a")"#, "max_array_len"),
        (
            r#"base64_encode("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")"#,
            "max_string_bytes",
        ),
    ];
    for (source, limit) in cases {
        let (o, _) = run_limited(source, vec![], &world(), small);
        let f = failure(&o);
        assert_eq!(
            f.kind,
            FailureKind::Limit { limit: limit.into() },
            "{source}: {}",
            f.message
        );
        assert!(
            f.message.contains(&format!("limit {limit}")),
            "{source}: {}",
            f.message
        );
    }
    // Wall time: a busy script under a high operations limit.
    let slow = ScriptLimits {
        max_operations: u64::MAX,
        wall_time: std::time::Duration::from_millis(100),
        ..small
    };
    let (o, _) = run_limited("let x = 0; loop { x += 1; }", vec![], &world(), slow);
    assert_eq!(
        failure(&o).kind,
        FailureKind::Limit {
            limit: "wall_time".into()
        }
    );
    // Limits cannot be caught.
    let (o, _) = run_limited("try { loop { } } catch { 1 }", vec![], &world(), small);
    assert_eq!(
        failure(&o).kind,
        FailureKind::Limit {
            limit: "max_operations".into()
        }
    );
}

#[test]
fn a_cancelled_run_stops_at_its_next_step() {
    let w = world();
    w.lock().unwrap().cancelled = true;
    let (o, journal) = run(r#"invoke("p", "a", #{})"#, vec![], &w);
    assert_eq!(failure(&o).kind, FailureKind::Cancelled);
    assert!(journal.is_empty());
    assert!(w.lock().unwrap().calls.is_empty());
}

#[test]
fn script_errors_say_where() {
    let (o, _) = run("let x = #{}; x.missing.deeper", vec![], &world());
    assert_eq!(failure(&o).kind, FailureKind::Script);
    let (o, _) = run(r#"throw "bad input""#, vec![], &world());
    assert!(
        failure(&o).message.contains("bad input"),
        "{}",
        failure(&o).message
    );
    let e = engine::compile("let = 5;").unwrap_err();
    assert_eq!(e.line, 1);
    // No clock of its own: `timestamp()` would make replays diverge.
    let (o, _) = run("timestamp()", vec![], &world());
    assert!(
        failure(&o).message.contains("timestamp"),
        "{}",
        failure(&o).message
    );
    let e = engine::compile(r#"eval("1 + 1")"#).unwrap_err();
    assert!(e.message.contains("eval"), "{}", e.message);
}

#[test]
fn the_data_api_covers_the_soar_cheatsheet() {
    let (o, _) = run(
        r##"
        let doc = parse_json(`{"a": {"b": [10, 20]}, "s": "x"}`);
        let ips = regex_find_all("src=10.0.0.1 dst=8.8.8.8", `\d+\.\d+\.\d+\.\d+`);
        let caps = regex_captures("user=alice id=7", `user=(\w+) id=(\d+)`);
        #{
            json: to_json(#{ k: [1, 2] }),
            path: get_path(doc, "a.b.1", 0),
            missing: get_path(doc, "a.c", "default"),
            coalesce: doc.nope ?? "fallback",
            split: "a,b,c".split(","),
            joined: join(["a", 1, true], "-"),
            matches: regex_match("evil.example.com", `\.example\.com$`),
            ips: ips,
            user: caps[1],
            replaced: regex_replace("a1b22c", `\d+`, "#"),
            b64: base64_encode("hello"),
            plain: base64_decode("aGVsbG8="),
            iso: to_iso(1795132800000),
            parsed: parse_iso("2026-11-20T00:00:00Z"),
            day: format_time(1795132800000, "%Y-%m-%d %H:%M", "Europe/Paris"),
            custom: parse_time("2026-11-20 13:45", "%Y-%m-%d %H:%M"),
            week: parse_duration("7d"),
            hash: sha256("abc"),
            upper: "MiXed".to_upper(),
        }
        "##,
        vec![],
        &world(),
    );
    let Outcome::Completed(v) = o else { panic!("{o:?}") };
    assert_eq!(v["json"], r#"{"k":[1,2]}"#);
    assert_eq!(v["path"], 20);
    assert_eq!(v["missing"], "default");
    assert_eq!(v["coalesce"], "fallback");
    assert_eq!(v["split"], json!(["a", "b", "c"]));
    assert_eq!(v["joined"], "a-1-true");
    assert_eq!(v["matches"], true);
    assert_eq!(v["ips"], json!(["10.0.0.1", "8.8.8.8"]));
    assert_eq!(v["user"], "alice");
    assert_eq!(v["replaced"], "a#b#c");
    assert_eq!(v["b64"], "aGVsbG8=");
    assert_eq!(v["plain"], "hello");
    assert_eq!(v["iso"], "2026-11-20T00:00:00.000Z");
    assert_eq!(v["parsed"], 1795132800000i64);
    assert_eq!(v["day"], "2026-11-20 01:00");
    assert_eq!(v["custom"], 1795132800000i64 + (13 * 60 + 45) * 60_000);
    assert_eq!(v["week"], 7 * 86_400_000i64);
    assert_eq!(
        v["hash"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(v["upper"], "MIXED");
}

#[test]
fn random_values_are_journaled_so_replays_agree() {
    let source = "[random(), random_int(1, 6), uuid()]";
    let (o, journal) = run(source, vec![], &world());
    let (again, _) = run(source, journal.clone(), &world());
    assert_eq!(o, again);
    let Outcome::Completed(v) = o else { panic!() };
    let n = v[1].as_i64().unwrap();
    assert!((1..=6).contains(&n));
    assert_eq!(v[2].as_str().unwrap().len(), 36);
    assert_eq!(journal.len(), 3);
}

#[test]
fn the_examples_in_playbooks_md_compile() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../PLAYBOOKS.md")).unwrap();
    let blocks: Vec<&str> = doc
        .split("```rhai\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(blocks.len() >= 4, "found {} examples", blocks.len());
    for b in blocks {
        engine::compile(b).unwrap_or_else(|e| panic!("PLAYBOOKS.md example does not compile ({e}):\n{b}"));
    }
}

#[test]
fn incident_actions_need_an_incident_and_their_failures_are_catchable() {
    let w = world();
    // This run has no incident: the script is told so, and can catch it.
    let (o, steps) = run(
        r#"let r = "closed"; try { incident_close("done"); } catch (e) { r = e.message; } r"#,
        vec![],
        &w,
    );
    match o {
        Outcome::Completed(v) => assert!(v.to_string().contains("this run has no incident"), "{v}"),
        other => panic!("{other:?}"),
    }
    assert!(steps.is_empty(), "nothing was journaled: {steps:?}");
    // An action the effects refuse is a journaled step with ok = false, and a catchable error.
    let (o, steps) = run(
        r#"let r = "added"; try { list_add("blocked", "1.2.3.4", #{ ttl: "1h" }); } catch (e) { r = e.message; } r"#,
        vec![],
        &w,
    );
    assert_eq!(o, Outcome::Completed(json!("list_add is not available here")));
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].kind, StepKind::Act);
    assert!(!steps[0].ok);
    assert_eq!(
        steps[0].request["args"],
        json!({"list": "blocked", "value": "1.2.3.4", "ttl": "1h"})
    );
}

/// Effects with an enrichment cache keyed by plugin, action and input, counting calls.
#[derive(Default)]
struct CacheWorld {
    calls: usize,
    lookups: usize,
    cache: std::collections::HashMap<String, (Value, std::time::Duration)>,
    fail: Option<PluginFailure>,
    acts: Vec<(String, Value)>,
}

struct CachingEffects(Arc<Mutex<CacheWorld>>);

fn cache_key(plugin: &str, action: &str, input: &Value) -> String {
    format!("{plugin}.{action} {input}")
}

impl Effects for CachingEffects {
    fn call_plugin(
        &mut self,
        _: &str,
        _: &str,
        input: &Value,
        _: &str,
        _: &str,
    ) -> Result<Value, PluginFailure> {
        let mut w = self.0.lock().unwrap();
        w.calls += 1;
        match &w.fail {
            Some(f) => Err(f.clone()),
            None => Ok(json!({ "verdict": "malicious", "asked": input, "call": w.calls })),
        }
    }
    fn record(&mut self, _: &str, _: &Step) -> Result<(), JournalError> {
        Ok(())
    }
    fn now_ms(&mut self) -> i64 {
        1_000_000
    }
    fn random_u64(&mut self) -> u64 {
        7
    }
    fn act(&mut self, call: &ActCall, _: &str, _: &str) -> Result<Value, ActError> {
        let args = call.args();
        self.0
            .lock()
            .unwrap()
            .acts
            .push((call.act.name().to_owned(), args.clone()));
        match call.act.name() {
            "indicator_get" => Ok(Value::Null),
            "indicator_set" if args["verdict"] == "evil" => Err(ActError::Invalid {
                action: "indicator_set",
                message: "verdict 'evil' is not one of unknown, benign, suspicious, malicious".into(),
            }),
            _ => Ok(json!({ "kind": args["kind"], "value": args["value"], "verdict": args["verdict"] })),
        }
    }
    fn cached_output(&mut self, plugin: &str, action: &str, input: &Value) -> Option<Value> {
        let mut w = self.0.lock().unwrap();
        w.lookups += 1;
        w.cache
            .get(&cache_key(plugin, action, input))
            .map(|(v, _)| v.clone())
    }
    fn cache_output(
        &mut self,
        plugin: &str,
        action: &str,
        input: &Value,
        output: &Value,
        ttl: std::time::Duration,
    ) {
        self.0
            .lock()
            .unwrap()
            .cache
            .insert(cache_key(plugin, action, input), (output.clone(), ttl));
    }
}

/// Plugin calls and cache lookups so far.
fn counts(w: &Arc<Mutex<CacheWorld>>) -> (usize, usize) {
    let w = w.lock().unwrap();
    (w.calls, w.lookups)
}

fn run_cached(source: &str, journal: Vec<Step>, world: &Arc<Mutex<CacheWorld>>) -> (Outcome, Vec<Step>) {
    let script = engine::compile(source).unwrap_or_else(|e| panic!("compile: {e}"));
    let ctx = RunContext {
        run_id: "r1".into(),
        playbook: "pb".into(),
        plugins: vec!["autofocus".into()],
        ..Default::default()
    };
    let (o, _, j) = engine::replay(
        &script,
        ScriptLimits::default(),
        &ctx,
        journal,
        Box::new(CachingEffects(world.clone())),
    );
    (o, j)
}

#[test]
fn invoke_cached_uses_the_cache_once_and_replays_from_the_journal() {
    let w: Arc<Mutex<CacheWorld>> = Arc::default();
    let script = r#"invoke_cached("autofocus", "ip-reputation", #{ ip: "203.0.113.66" }, "1h")"#;
    // First run: a miss, the plugin is called and its output kept for an hour.
    let (o, first) = run_cached(script, vec![], &w);
    let want = json!({ "verdict": "malicious", "asked": { "ip": "203.0.113.66" }, "call": 1 });
    assert_eq!(o, Outcome::Completed(want.clone()));
    assert_eq!(first.len(), 1);
    assert_eq!(
        first[0].kind,
        StepKind::Invoke,
        "the same kind as invoke: retries and labels apply"
    );
    assert_eq!(
        first[0].request,
        json!({ "plugin": "autofocus", "action": "ip-reputation", "input": { "ip": "203.0.113.66" }, "cache_ttl_ms": 3_600_000 })
    );
    assert_eq!(first[0].outcome, json!({ "output": want, "cached": false }));
    {
        let w = w.lock().unwrap();
        assert_eq!((w.calls, w.lookups, w.cache.len()), (1, 1, 1));
        assert_eq!(
            w.cache.values().next().unwrap().1,
            std::time::Duration::from_secs(3600)
        );
    }
    // Another run: a hit, no call; the step says so.
    let (o, second) = run_cached(script, vec![], &w);
    assert_eq!(o, Outcome::Completed(want.clone()));
    assert_eq!(second[0].outcome["cached"], true);
    assert_eq!(counts(&w), (1, 2));
    // A replay of the first run, with the cache gone: the journaled outcome, no lookup, no call.
    w.lock().unwrap().cache.clear();
    let (o, replayed) = run_cached(script, first.clone(), &w);
    assert_eq!(o, Outcome::Completed(want));
    assert_eq!(replayed, first);
    assert_eq!(counts(&w), (1, 2));
    // A different TTL is a different request: non-determinism on replay.
    let (o, _) = run_cached(
        r#"invoke_cached("autofocus", "ip-reputation", #{ ip: "203.0.113.66" }, "2h")"#,
        first,
        &w,
    );
    assert_eq!(failure(&o).kind, FailureKind::NonDeterminism);
}

#[test]
fn invoke_cached_failures_are_catchable_like_invoke_and_never_cached() {
    let w: Arc<Mutex<CacheWorld>> = Arc::default();
    w.lock().unwrap().fail = Some(PluginFailure {
        kind: "rate-limited".into(),
        message: "Minute Bucket Exceeded".into(),
        retryable: true,
        retry_after_ms: None,
    });
    let (o, steps) = run_cached(
        r#"let r = (); try { r = invoke_cached("autofocus", "ip-reputation", #{ ip: "192.0.2.1" }, "30m"); } catch (e) { r = e; } r"#,
        vec![],
        &w,
    );
    assert_eq!(
        o,
        Outcome::Completed(json!({
            "kind": "rate-limited", "message": "Minute Bucket Exceeded", "retryable": true,
            "plugin": "autofocus", "action": "ip-reputation"
        }))
    );
    assert!(!steps[0].ok);
    assert!(w.lock().unwrap().cache.is_empty(), "a failure is not cached");
    // Uncaught, it fails the run as a retryable plugin error, as invoke's would.
    let (o, _) = run_cached(
        r#"invoke_cached("autofocus", "ip-reputation", #{ ip: "192.0.2.1" }, "30m")"#,
        vec![],
        &w,
    );
    assert_eq!(
        failure(&o).kind,
        FailureKind::Plugin {
            retryable: true,
            retry_after_ms: None
        }
    );
    // A TTL that is not a duration is a script error, before any step.
    for (ttl, want) in [("soon", "'soon' is not a duration"), ("0s", "longer than 0s")] {
        let (o, steps) = run_cached(
            &format!(r#"invoke_cached("autofocus", "ip-reputation", #{{ ip: "192.0.2.1" }}, "{ttl}")"#),
            vec![],
            &w,
        );
        let f = failure(&o);
        assert!(f.kind == FailureKind::Script && f.message.contains(want), "{f:?}");
        assert!(steps.is_empty());
    }
}

#[test]
fn indicator_calls_are_journaled_acts() {
    let w: Arc<Mutex<CacheWorld>> = Arc::default();
    let (o, steps) = run_cached(
        r#"
        let before = indicator("ip", "203.0.113.66");
        let after = indicator_set("ip", "203.0.113.66", #{ verdict: "malicious", score: 90, source: "autofocus" });
        let refused = "";
        try { indicator_set("ip", "203.0.113.66", #{ verdict: "evil" }); } catch (e) { refused = e.message; }
        #{ before: before, after: after.verdict, refused: refused }
        "#,
        vec![],
        &w,
    );
    assert_eq!(
        o,
        Outcome::Completed(json!({
            "before": null, "after": "malicious",
            "refused": "indicator_set: verdict 'evil' is not one of unknown, benign, suspicious, malicious"
        }))
    );
    let actions: Vec<&str> = steps
        .iter()
        .map(|s| s.request["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["indicator_get", "indicator_set", "indicator_set"]);
    assert!(steps.iter().all(|s| s.kind == StepKind::Act));
    assert_eq!(
        steps[1].request["args"],
        json!({ "kind": "ip", "value": "203.0.113.66", "verdict": "malicious", "score": 90, "source": "autofocus" })
    );
    assert!(!steps[2].ok);
    // A replay takes them from the journal.
    let before = w.lock().unwrap().acts.len();
    let (o2, _) = run_cached(
        r#"
        let before = indicator("ip", "203.0.113.66");
        let after = indicator_set("ip", "203.0.113.66", #{ verdict: "malicious", score: 90, source: "autofocus" });
        let refused = "";
        try { indicator_set("ip", "203.0.113.66", #{ verdict: "evil" }); } catch (e) { refused = e.message; }
        #{ before: before, after: after.verdict, refused: refused }
        "#,
        steps,
        &w,
    );
    assert_eq!(o2, o);
    assert_eq!(w.lock().unwrap().acts.len(), before);
}

#[test]
fn a_question_waits_without_recording_and_resumes_with_the_answer() {
    use super::engine::QuestionWait;
    let source = r#"
        let a = ask(#{ user: "owner", title: "Block?", options: ["block", "allow"], due: "1h" });
        #{ answer: a.answer, by: a.by }
    "#;
    let w = world();
    w.lock().unwrap().question = Some(QuestionWait::Until(5_000_000));
    let (o, journal) = run(source, vec![], &w);
    assert_eq!(o, Outcome::Waiting { wake_at: 5_000_000 });
    // The question was asked (one act step); the wait recorded nothing.
    assert_eq!(journal.len(), 1, "{journal:?}");
    assert_eq!(journal[0].kind, StepKind::Act);
    assert_eq!(journal[0].request["args"]["kind"], "ask");
    // Woken before the answer came: it waits again, and asks nothing new.
    let (o, journal) = run(source, journal, &w);
    assert_eq!(o, Outcome::Waiting { wake_at: 5_000_000 });
    assert_eq!(w.lock().unwrap().asked.len(), 1);
    // Answered: the answer is journaled and the script goes on.
    w.lock().unwrap().question = Some(QuestionWait::Done(
        json!({ "question": "q1", "answer": "allow", "by": "user:owner", "status": "answered" }),
    ));
    let (o, journal) = run(source, journal, &w);
    assert_eq!(
        o,
        Outcome::Completed(json!({ "answer": "allow", "by": "user:owner" }))
    );
    assert_eq!(journal[1].kind, StepKind::Question);
    // A replay takes the answer from the journal, whatever the world says now.
    w.lock().unwrap().question = None;
    let (o, _) = run(source, journal, &w);
    assert_eq!(
        o,
        Outcome::Completed(json!({ "answer": "allow", "by": "user:owner" }))
    );
}

#[test]
fn a_question_that_times_out_without_a_default_is_a_catchable_error() {
    use super::engine::QuestionWait;
    let w = world();
    w.lock().unwrap().question = Some(QuestionWait::Done(
        json!({ "question": "q1", "answer": null, "status": "timed_out", "timed_out": true }),
    ));
    let (o, _) = run(
        r#"
        let r = "answered";
        try {
            approve(#{ role: "managers", title: "OK?", due: "1m" });
        } catch (e) {
            r = `${e.kind}: ${e.message}`;
        }
        r
        "#,
        vec![],
        &w,
    );
    assert_eq!(
        o,
        Outcome::Completed(json!(
            "timeout: approve: question q1 was not answered in time and has no default"
        ))
    );
}

#[test]
fn a_stored_run_gives_the_script_its_context_requester_included() {
    let context = json!({"requester": {"name": "alice", "email": "alice@example.com"}});
    let input = json!({"domain": "example.com"});
    let ctx = RunContext::of_stored("r9", "pb", &input, &context);
    assert_eq!(ctx.run_id, "r9");
    assert_eq!(ctx.requester["name"], "alice");
    assert!(ctx.alert.is_null() && ctx.incident.is_null() && ctx.breach.is_null());
    let script = engine::compile(
        r#"#{ who: requester.name, mail: requester.email, domain: input.domain, alert: alert == () }"#,
    )
    .unwrap();
    let (o, _, _) = engine::replay(
        &script,
        ScriptLimits::default(),
        &ctx,
        Vec::new(),
        Box::new(TestEffects(world())),
    );
    let Outcome::Completed(v) = o else { panic!("{o:?}") };
    assert_eq!(
        v,
        json!({"who": "alice", "mail": "alice@example.com", "domain": "example.com", "alert": true})
    );
    // Runs that nobody requested see `()`.
    let ctx = RunContext::of_stored("r9", "pb", &input, &Value::Null);
    let script = engine::compile("requester == ()").unwrap();
    let (o, _, _) = engine::replay(
        &script,
        ScriptLimits::default(),
        &ctx,
        Vec::new(),
        Box::new(TestEffects(world())),
    );
    assert!(matches!(o, Outcome::Completed(Value::Bool(true))), "{o:?}");
}

/// A script building an array `depth` deep, then doing `then` with it (`a`).
fn deep(depth: usize, then: &str) -> String {
    format!("let a = []; for i in 0..{depth} {{ a = [a]; }} {then}")
}

#[test]
fn values_nested_thousands_deep_are_a_clear_failure_not_a_crash() {
    // Building the value costs time (Rhai copies `a` into `[a]`): room for a debug build.
    let limits = ScriptLimits {
        wall_time: std::time::Duration::from_secs(300),
        ..ScriptLimits::default()
    };
    for depth in [2_000, 5_000] {
        for then in [
            "to_json(a)",
            "a",
            "log(a)",
            "invoke(\"p\", \"a\", #{ x: a })",
            "`${a}`",
            "a == a",
        ] {
            let (o, _) = run_limited(&deep(depth, then), vec![], &world(), limits);
            match (&o, then) {
                // Comparing is not converting: Rhai does it on the replay's big stack.
                (Outcome::Completed(_), "a == a") => {}
                // Shown as a note: a string can hold only so much.
                (Outcome::Completed(Value::String(s)), "`${a}`") => {
                    assert!(
                        s.contains("too big to show: the value is nested more than 64"),
                        "{s}"
                    )
                }
                (Outcome::Failed(f), _) => {
                    assert!(
                        f.message.contains("nested more than 64 levels"),
                        "{then} at {depth}: {}",
                        f.message
                    )
                }
                _ => panic!("{then} at {depth}: {o:?}"),
            }
        }
    }
    // At the limit, a value converts.
    let (o, _) = run(&deep(63, "to_json(a).len()"), vec![], &world());
    assert_eq!(o, Outcome::Completed(json!(128)));
    // Deep JSON text is refused before it is parsed.
    let (o, _) = run(
        r#"let s = "["; s.pad(100, "["); let e = "]"; e.pad(100, "]"); parse_json(s + e)"#,
        vec![],
        &world(),
    );
    assert!(
        failure(&o).message.contains("parse_json: the JSON is nested"),
        "{o:?}"
    );
}

#[test]
fn many_references_to_one_big_string_are_refused_before_they_are_shown() {
    let limits = ScriptLimits {
        max_string_bytes: 1 << 20,
        ..ScriptLimits::default()
    };
    // 10,000 references to a 1 MB string: 10 GB if shown. Refused as the map or the
    // array is used, before anything shows it.
    let map = r#"let s = "x"; s.pad(1000000, "x"); let m = #{}; for i in 0..10000 { m[`${i}`] = s; } THEN"#;
    let array = r#"let s = "x"; s.pad(1000000, "x"); let m = []; m.pad(10000, 0); for i in 0..10000 { m[i] = s; } THEN"#;
    let thens = [
        "to_json(m)",
        "log(m)",
        "`${m}`",
        "m.to_string()",
        "[m].join(\",\")",
        "print(m)",
        "\"\" + m",
    ];
    for script in thens
        .iter()
        .flat_map(|t| [map.replace("THEN", t), array.replace("THEN", t)])
    {
        let then = &script;
        let (o, _) = run_limited(&script, vec![], &world(), limits);
        match &o {
            Outcome::Completed(Value::String(s)) => assert!(s.contains("too big to show"), "{then}: {s}"),
            _ => {
                let f = failure(&o);
                assert!(
                    f.message.contains("larger than") || f.message.contains("limit max_string_bytes"),
                    "{then}: {}",
                    f.message
                )
            }
        }
    }
}

#[test]
fn a_step_and_the_journal_are_bounded() {
    let limits = ScriptLimits {
        max_step_bytes: 10_000,
        max_journal_bytes: 50_000,
        ..ScriptLimits::default()
    };
    let (o, journal) = run_limited(
        r#"let s = ""; s.pad(20000, "x"); log(s)"#,
        vec![],
        &world(),
        limits,
    );
    let f = failure(&o);
    assert_eq!(
        f.kind,
        FailureKind::Limit {
            limit: "max_step_bytes".into()
        },
        "{}",
        f.message
    );
    assert!(journal.is_empty());
    let (o, journal) = run_limited(
        r#"let s = ""; s.pad(9000, "x"); loop { log(s); }"#,
        vec![],
        &world(),
        limits,
    );
    let f = failure(&o);
    assert_eq!(
        f.kind,
        FailureKind::Limit {
            limit: "max_journal_bytes".into()
        },
        "{}",
        f.message
    );
    assert_eq!(journal.len(), 5);
    // The output too.
    let (o, _) = run_limited(r#"let s = ""; s.pad(20000, "x"); s"#, vec![], &world(), limits);
    assert!(failure(&o).message.contains("larger than 10000 bytes"), "{o:?}");
}

#[test]
fn memory_the_script_holds_is_limited() {
    let limits = ScriptLimits {
        max_memory_mib: 16,
        max_string_bytes: 64 << 20,
        ..ScriptLimits::default()
    };
    // A string within the string limit, over the memory limit.
    let (o, _) = run_limited(
        r#"let s = ""; s.pad(40000000, "x"); s.len()"#,
        vec![],
        &world(),
        limits,
    );
    let f = failure(&o);
    assert_eq!(
        f.kind,
        FailureKind::Limit {
            limit: "max_memory_mib".into()
        },
        "{}",
        f.message
    );
    // A script that frees what it builds goes on.
    let (o, _) = run_limited(
        r#"for i in 0..20 { let s = `${i}`; s.pad(10000000, "x"); } 1"#,
        vec![],
        &world(),
        limits,
    );
    assert_eq!(o, Outcome::Completed(json!(1)));
}

#[test]
fn absurd_sleeps_and_random_ranges_are_clear_errors() {
    for source in ["sleep(1.0e300)", "sleep(-1)", "sleep(40000000)"] {
        let (o, _) = run(source, vec![], &world());
        assert!(
            failure(&o).message.contains("sleep needs a duration from 0 to"),
            "{source}: {o:?}"
        );
    }
    let (o, _) = run(
        "random_int(-9223372036854775807 - 1, 9223372036854775807)",
        vec![],
        &world(),
    );
    assert!(matches!(o, Outcome::Completed(Value::Number(_))), "{o:?}");
    let (o, _) = run("random_int(5, 5)", vec![], &world());
    assert_eq!(o, Outcome::Completed(json!(5)));
}

#[test]
fn a_playbook_calls_only_the_plugins_it_declares() {
    let w = world();
    let (o, journal) = run(r#"invoke("test-echo", "echo", #{})"#, vec![], &w);
    let f = failure(&o);
    assert_eq!(
        f.kind,
        FailureKind::Undeclared {
            plugin: "test-echo".into()
        }
    );
    assert!(
        f.message
            .contains("may not call plugin 'test-echo': it declares ipinfo, p"),
        "{}",
        f.message
    );
    assert!(journal.is_empty() && w.lock().unwrap().calls.is_empty());
    // Not catchable.
    let (o, _) = run(
        r#"try { invoke("test-echo", "echo", #{}) } catch { 1 }"#,
        vec![],
        &w,
    );
    assert!(matches!(failure(&o).kind, FailureKind::Undeclared { .. }));
    let script = engine::compile(
        r#"fn f() { invoke_cached("b", "x", #{}, "1h") } invoke("a", "x", #{}); let p = "c"; invoke(p, "x", #{})"#,
    )
    .unwrap();
    assert_eq!(engine::literal_invokes(&script), ["a", "b"]);
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter().map(|(p, a)| (p.to_string(), a.to_string())).collect()
    };
    assert_eq!(
        engine::literal_invoke_actions(&script),
        pairs(&[("a", "x"), ("b", "x")])
    );
    let script =
        engine::compile(r#"let a = "y"; invoke("a", a, #{}); invoke("a", "z", #{}); invoke("a", "z", #{})"#)
            .unwrap();
    assert_eq!(engine::literal_invoke_actions(&script), pairs(&[("a", "z")]));
}

#[test]
fn an_interrupt_stops_a_spinning_replay() {
    for (cancel, expected) in [(true, "cancelled"), (false, "interrupted")] {
        let script = engine::compile("let x = 0; loop { x += 1; }").unwrap();
        let ctx = RunContext::default();
        // Set before the replay starts: the loop is stopped at the first look, after its
        // first operations, as it would be mid-way.
        if cancel {
            ctx.interrupt.cancel()
        } else {
            ctx.interrupt.shut_down()
        }
        let limits = ScriptLimits {
            max_operations: u64::MAX / 2,
            wall_time: std::time::Duration::from_secs(600),
            ..ScriptLimits::default()
        };
        let (o, _, _) = engine::replay(&script, limits, &ctx, vec![], Box::new(TestEffects(world())));
        let got = match &o {
            Outcome::Failed(f) if f.kind == FailureKind::Cancelled => "cancelled",
            Outcome::Interrupted => "interrupted",
            other => panic!("{other:?}"),
        };
        assert_eq!(got, expected);
    }
}

#[test]
fn a_call_check_refuses_before_the_mock_answers_and_fails_the_case_whatever_it_expects() {
    use super::testing::{self, CallCheck};
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("playbook.toml"),
        "name = \"checked\"\ndescription = \"x\"\nplugins = [\"p\", \"q\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("playbook.rhai"),
        r#"invoke("q", "any", #{}); invoke("p", "gone", #{ x: 1 }); "done""#,
    )
    .unwrap();
    let pb = super::Playbook::load(dir.path()).unwrap();
    let case = |status: &str| -> testing::Case {
        toml::from_str(&format!(
            "[[mock]]\nplugin = \"q\"\naction = \"any\"\n[[mock]]\nplugin = \"p\"\naction = \"gone\"\n[expect]\nstatus = \"{status}\"\n"
        ))
        .unwrap()
    };
    let seen = Arc::new(Mutex::new(Vec::new()));
    let check: CallCheck = {
        let seen = seen.clone();
        Arc::new(move |plugin: &str, action: &str, input: &Value| {
            seen.lock().unwrap().push(format!("{plugin}.{action}"));
            if plugin == "p" {
                return Err(PluginFailure {
                    kind: "invalid-input".into(),
                    message: format!("plugin 'p' has no action '{action}' (input {input})"),
                    retryable: false,
                    retry_after_ms: None,
                });
            }
            Ok(())
        })
    };
    let (limits, file) = (super::RunLimits::default(), dir.path().join("tests/case.toml"));
    assert!(testing::run_case(&pb, &file, &case("completed"), &limits, None).passed());
    let refused = testing::run_case(&pb, &file, &case("completed"), &limits, Some(&check));
    assert_eq!(
        refused.refused,
        [r#"p.gone {"x":1}: plugin 'p' has no action 'gone' (input {"x":1})"#]
    );
    assert!(
        refused.problems[0].contains("it ended Failed")
            && refused.problems[0].contains("has no action 'gone'"),
        "{:?}",
        refused.problems
    );
    // Expecting the failure does not hide that the contract refused a call.
    let expected = testing::run_case(&pb, &file, &case("failed"), &limits, Some(&check));
    assert!(!expected.passed(), "{:?}", expected.problems);
    assert_eq!(*seen.lock().unwrap(), ["q.any", "p.gone", "q.any", "p.gone"]);
}

/// A playbook folder with `toml_extra` in its metadata and `script`.
fn playbook_in(dir: &std::path::Path, toml_extra: &str, script: &str) -> super::Playbook {
    std::fs::write(
        dir.join("playbook.toml"),
        format!("name = \"charted\"\ndescription = \"x\"\n{toml_extra}"),
    )
    .unwrap();
    std::fs::write(dir.join("playbook.rhai"), script).unwrap();
    super::Playbook::load(dir).unwrap()
}

#[test]
fn record_is_a_journaled_act_that_refuses_bad_points_and_tests_assert_on() {
    use super::testing;
    let dir = tempfile::tempdir().unwrap();
    let pb = playbook_in(
        dir.path(),
        "",
        r#"
        record("gifts", #{ to: "ann", points: 10 });
        let refused = [];
        try { record("Bad Name", #{ points: 1 }); } catch (e) { refused.push(e.message); }
        try { record("gifts", #{ a: #{ b: #{ c: #{ d: #{ e: 1 } } } } }); } catch (e) { refused.push(e.message); }
        let big = "";
        for i in 0..5000 { big += "x"; }
        try { record("gifts", #{ text: big }); } catch (e) { refused.push(e.message); }
        #{ refused: refused }
        "#,
    );
    let file = dir.path().join("tests/case.toml");
    // The refusals are catchable, say what was wrong, and are not steps.
    let case = |expect: &str| -> testing::Case {
        toml::from_str(&format!(
            r#"start = "2027-01-01T10:00:00Z"
[expect]
status = "completed"
steps = ["record"]
output = {{ refused = [
  "record: series name 'Bad Name' must be 1-64 lower-case letters, digits and dashes, starting with a letter",
  "record: the point is nested more than 4 levels deep (arrays and objects inside each other); at most 4",
  "record: the value is larger than 4096 bytes as JSON",
] }}
{expect}"#
        ))
        .unwrap()
    };
    let limits = super::RunLimits::default();
    let report = testing::run_case(
        &pb,
        &file,
        &case(
            "[[expect.record]]\nseries = \"gifts\"\npoint = { to = \"ann\" }\n[[expect.act]]\naction = \"record\"\nargs = { series = \"gifts\" }\n",
        ),
        &limits,
        None,
    );
    assert!(report.passed(), "{:?}", report.problems);
    assert_eq!(
        report.records,
        [json!({"series": "gifts", "point": {"to": "ann", "points": 10}, "at": 1_798_797_600_000_i64})]
    );
    let missing = testing::run_case(
        &pb,
        &file,
        &case("[[expect.record]]\nseries = \"gifts\"\npoint = { to = \"bob\" }\n"),
        &limits,
        None,
    );
    assert_eq!(
        missing.problems,
        [
            r#"expected a recorded point containing {"point":{"to":"bob"},"series":"gifts"}; the points were: {"at":1798797600000,"point":{"points":10,"to":"ann"},"series":"gifts"}"#
        ]
    );
}

#[test]
fn a_run_records_at_most_its_limit_of_points() {
    use super::testing;
    let dir = tempfile::tempdir().unwrap();
    let pb = playbook_in(
        dir.path(),
        "[limits]\nmax_steps = 20000\nmax_operations = 10000000\n",
        r#"
        let n = 0;
        loop {
            try { record("ticks", #{ n: n }); n += 1; }
            catch (e) { return #{ recorded: n, error: e.message }; }
        }
        "#,
    );
    let case: testing::Case = toml::from_str(
        "[expect]\nstatus = \"completed\"\noutput = { recorded = 10000, error = \"record: this run already recorded 10000 points, the most one run may\" }\n",
    )
    .unwrap();
    // Twice on this thread, whose replay engine serves both runs: each counts its own.
    for _ in 0..2 {
        let report = testing::run_case(
            &pb,
            &dir.path().join("tests/case.toml"),
            &case,
            &super::RunLimits::default(),
            None,
        );
        assert!(report.passed(), "{:?}", report.problems);
        assert_eq!(report.records.len(), super::chart::MAX_POINTS_PER_RUN);
    }
}

#[test]
fn the_engine_a_thread_keeps_for_its_replays_takes_each_replays_own_limits() {
    // The replays below run on this thread, one engine serving them in turn.
    let busy = "let x = 0; while x < 5000 { x += 1; } x";
    let small = ScriptLimits {
        max_operations: 1000,
        ..ScriptLimits::default()
    };
    let over = FailureKind::Limit {
        limit: "max_operations".into(),
    };
    let (o, _) = run_limited(busy, vec![], &world(), small);
    assert_eq!(failure(&o).kind, over);
    let (o, _) = run_limited(busy, vec![], &world(), ScriptLimits::default());
    assert_eq!(o, Outcome::Completed(json!(5000)));
    let (o, _) = run_limited(busy, vec![], &world(), small);
    assert_eq!(failure(&o).kind, over);
}

#[test]
fn state_is_kept_between_runs_through_journaled_steps_and_refuses_bad_keys_and_values() {
    use super::testing;
    let dir = tempfile::tempdir().unwrap();
    let pb = playbook_in(
        dir.path(),
        "",
        r#"
        let before = state_get("turn");
        state_set("turn", before + 1);
        state_set("gone", ());
        let refused = [];
        try { state_set("Bad Key", 1); } catch (e) { refused.push(e.message); }
        try { state_get(""); } catch (e) { refused.push(e.message); }
        let big = "";
        for i in 0..17000 { big += "x"; }
        try { state_set("big", big); } catch (e) { refused.push(e.message); }
        #{ before: before, after: state_get("turn"), gone: state_get("gone") == (), refused: refused }
        "#,
    );
    let file = dir.path().join("tests/case.toml");
    let case: testing::Case = toml::from_str(
        r#"
[state]
turn = 4
gone = "x"

[expect]
status = "completed"
steps = ["state_get", "state_set", "state_set", "state_get", "state_get"]
output = { before = 4, after = 5, gone = true, refused = [
  "state_set: state key name 'Bad Key' must be 1-64 lower-case letters, digits and dashes, starting with a letter",
  "state_get: state key name '' must be 1-64 lower-case letters, digits and dashes, starting with a letter",
  "state_set: the value of 'big': the value is larger than 16384 bytes as JSON",
] }

[[expect.act]]
action = "state_set"
args = { key = "turn", value = 5 }

[expect.state]
turn = 5
"#,
    )
    .unwrap();
    let report = testing::run_case(&pb, &file, &case, &super::RunLimits::default(), None);
    assert!(report.passed(), "{:?}", report.problems);
}
