//! `playbook(name, input)`: the replay of a parent against in-memory effects, and
//! `osprey playbook test`'s canned and offline-run children.

use super::engine::{self, Effects, FailureKind, JournalError, Outcome, QuestionWait, StartError, WaitError};
use super::journal::{RunContext, Step, StepKind};
use super::testing;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

/// What the parent's world did and will answer.
#[derive(Default)]
struct World {
    /// The starts asked for: `(name, input, seq)`.
    starts: Vec<(String, Value, u32)>,
    /// How starting fails, if it does.
    refuse: Option<fn() -> StartError>,
    /// The child's end, once it ended.
    ended: Option<Value>,
}

struct Parent(Arc<Mutex<World>>);

impl Effects for Parent {
    fn call_plugin(
        &mut self,
        _: &str,
        _: &str,
        _: &Value,
        _: &str,
        _: &str,
    ) -> Result<Value, engine::PluginFailure> {
        unreachable!("these scripts call no plugin")
    }
    fn record(&mut self, _: &str, _: &Step) -> Result<(), JournalError> {
        Ok(())
    }
    fn now_ms(&mut self) -> i64 {
        1_000
    }
    fn random_u64(&mut self) -> u64 {
        7
    }
    fn start_playbook(&mut self, name: &str, input: &Value, _: &str, seq: u32) -> Result<String, StartError> {
        let mut w = self.0.lock().unwrap();
        if let Some(refuse) = w.refuse {
            return Err(refuse());
        }
        w.starts.push((name.to_owned(), input.clone(), seq));
        Ok("r-child".into())
    }
    fn playbook_wait(&mut self, run: &str) -> Result<QuestionWait, WaitError> {
        assert_eq!(run, "r-child");
        Ok(match &self.0.lock().unwrap().ended {
            Some(end) => QuestionWait::Done(end.clone()),
            None => QuestionWait::Until(61_000),
        })
    }
}

fn replay(source: &str, journal: Vec<Step>, world: &Arc<Mutex<World>>) -> (Outcome, Vec<Step>) {
    let script = engine::compile(source).unwrap_or_else(|e| panic!("compile: {e}"));
    let ctx = RunContext {
        run_id: "r-parent".into(),
        playbook: "parent".into(),
        ..Default::default()
    };
    let (o, _, j) = engine::replay(
        &script,
        engine::ScriptLimits::default(),
        &ctx,
        journal,
        Box::new(Parent(world.clone())),
    );
    (o, j)
}

const CALLS_ENRICH: &str = r#"let r = playbook("enrich", #{ ip: "203.0.113.7" }); #{ got: r.verdict }"#;

#[test]
fn the_parent_waits_for_its_child_without_a_step_and_gets_its_result() {
    let w = Arc::new(Mutex::new(World::default()));
    let (o, journal) = replay(CALLS_ENRICH, vec![], &w);
    assert_eq!(o, Outcome::Waiting { wake_at: 61_000 });
    assert_eq!(
        journal.len(),
        1,
        "only the start is journaled while the child runs"
    );
    assert_eq!(journal[0].kind, StepKind::Playbook);
    assert_eq!(
        journal[0].request,
        json!({ "playbook": "enrich", "input": { "ip": "203.0.113.7" } })
    );
    assert_eq!(journal[0].outcome, json!({ "run": "r-child" }));
    assert_eq!(w.lock().unwrap().starts.len(), 1);

    // Replays while the child runs, then after it ended: the child is started once.
    let (o, journal) = replay(CALLS_ENRICH, journal, &w);
    assert_eq!(o, Outcome::Waiting { wake_at: 61_000 });
    w.lock().unwrap().ended = Some(json!({
        "run": "r-child", "playbook": "enrich", "status": "completed",
        "output": { "verdict": "bad" }, "error": null,
    }));
    let (o, journal) = replay(CALLS_ENRICH, journal, &w);
    assert_eq!(o, Outcome::Completed(json!({ "got": "bad" })));
    assert_eq!(journal.len(), 2);
    assert_eq!(
        journal[1].request,
        json!({ "run": "r-child", "playbook": "enrich" })
    );
    assert_eq!(
        w.lock().unwrap().starts,
        [("enrich".into(), json!({ "ip": "203.0.113.7" }), 1)]
    );
    // And a replay of the whole journal takes nothing new.
    w.lock().unwrap().ended = None;
    let (o, _) = replay(CALLS_ENRICH, journal, &w);
    assert_eq!(o, Outcome::Completed(json!({ "got": "bad" })));
    assert_eq!(w.lock().unwrap().starts.len(), 1);
}

#[test]
fn a_child_that_did_not_complete_is_a_catchable_error_naming_it() {
    let script = r#"
        let r = ();
        try { r = playbook("enrich"); } catch (e) {
            r = #{ kind: e.kind, status: e.status, run: e.run, playbook: e.playbook, message: e.message };
        }
        r
    "#;
    for status in ["failed", "cancelled", "dead"] {
        let w = Arc::new(Mutex::new(World {
            ended: Some(json!({
                "run": "r-child", "playbook": "enrich", "status": status,
                "output": null, "error": "ipinfo/lookup failed (unavailable): down",
            })),
            ..Default::default()
        }));
        let (o, _) = replay(script, vec![], &w);
        assert_eq!(
            o,
            Outcome::Completed(json!({
                "kind": "playbook", "status": status, "run": "r-child", "playbook": "enrich",
                "message": format!("playbook 'enrich' (run r-child) ended {status}: ipinfo/lookup failed (unavailable): down"),
            }))
        );
    }
    // Not caught, it fails the parent with the child's reason.
    let w = Arc::new(Mutex::new(World {
        ended: Some(
            json!({ "run": "r-child", "playbook": "enrich", "status": "failed", "output": null, "error": "boom" }),
        ),
        ..Default::default()
    }));
    let (o, _) = replay(CALLS_ENRICH, vec![], &w);
    let Outcome::Failed(f) = o else { panic!("{o:?}") };
    assert_eq!(f.kind, FailureKind::Script);
    assert!(
        f.message
            .contains("playbook 'enrich' (run r-child) ended failed: boom"),
        "{}",
        f.message
    );
}

#[test]
fn an_unknown_playbook_is_a_journaled_catchable_error() {
    let w = Arc::new(Mutex::new(World {
        refuse: Some(|| StartError::Unknown("no playbook named 'nope' (loaded: parent)".into())),
        ..Default::default()
    }));
    let (o, journal) = replay(
        r#"let r = (); try { playbook("nope", #{}); } catch (e) { r = e.kind + ": " + e.message; } r"#,
        vec![],
        &w,
    );
    assert_eq!(
        o,
        Outcome::Completed(json!(
            "invalid-input: playbook('nope'): no playbook named 'nope' (loaded: parent)"
        ))
    );
    assert_eq!(journal.len(), 1);
    assert!(!journal[0].ok);
}

#[test]
fn too_deep_stops_the_run_at_its_limit_and_a_store_failure_retries_it() {
    let w = Arc::new(Mutex::new(World {
        refuse: Some(|| StartError::TooDeep {
            playbook: "loop".into(),
            depth: 8,
            max: super::limits::MAX_PLAYBOOK_DEPTH,
        }),
        ..Default::default()
    }));
    // try/catch cannot keep a recursion going.
    let (o, journal) = replay(
        r#"try { playbook("loop"); } catch { return "caught"; } 1"#,
        vec![],
        &w,
    );
    let Outcome::Failed(f) = o else { panic!("{o:?}") };
    assert_eq!(
        f.kind,
        FailureKind::Limit {
            limit: "max_playbook_depth".into()
        }
    );
    assert!(
        f.message
            .contains("limit max_playbook_depth (8) reached: this run is 8 playbooks deep and may not start playbook 'loop'"),
        "{}",
        f.message
    );
    assert!(journal.is_empty(), "nothing is journaled");

    w.lock().unwrap().refuse = Some(|| StartError::Store("the database is down".into()));
    let (o, journal) = replay(
        r#"try { playbook("x"); } catch { return "caught"; } 1"#,
        vec![],
        &w,
    );
    let Outcome::Failed(f) = o else { panic!("{o:?}") };
    assert!(
        f.retryable() && f.message.contains("the database is down"),
        "{f:?}"
    );
    assert!(journal.is_empty());
}

/// A folder with playbooks `parent` and `child` (each `(toml extra, script)`), and a case.
fn offline(parent: (&str, &str), child: (&str, &str), case: &str) -> testing::CaseReport {
    let dir = tempfile::tempdir().unwrap();
    for (name, (extra, script)) in [("parent", parent), ("child", child)] {
        let folder = dir.path().join(name);
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join("playbook.toml"),
            format!("name = \"{name}\"\ndescription = \"x\"\n{extra}"),
        )
        .unwrap();
        std::fs::write(folder.join("playbook.rhai"), script).unwrap();
    }
    let pb = super::Playbook::load(&dir.path().join("parent")).unwrap();
    let case: testing::Case = toml::from_str(case).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("parent/tests/case.toml");
    testing::run_case(&pb, &file, &case, &super::RunLimits::default(), None)
}

const PARENT: &str = r#"
    let r = ();
    try { r = playbook("child", #{ ip: input.ip }); } catch (e) { r = #{ failed: e.message, status: e.status }; }
    r
"#;
const CHILD: (&str, &str) = (
    "plugins = [\"ipinfo\"]\n[inputs.ip]\ntype = \"string\"\n",
    r#"let c = invoke("ipinfo", "lookup", #{ ip: input.ip }); #{ country: c.country }"#,
);

#[test]
fn a_test_answers_a_child_from_its_canned_result_or_error() {
    let parent = ("[inputs.ip]\ntype = \"string\"\n", PARENT);
    let report = offline(
        parent,
        CHILD,
        r#"
        input = { ip = "203.0.113.7" }
        [[playbook]]
        name = "child"
        when = { ip = "203.0.113.7" }
        result = { country = "NL" }
        [expect]
        status = "completed"
        output = { country = "NL" }
        steps = ["playbook child", "wait child"]
        "#,
    );
    assert!(report.passed(), "{:?}", report.problems);

    let report = offline(
        parent,
        CHILD,
        r#"
        input = { ip = "203.0.113.7" }
        [[playbook]]
        name = "child"
        error = "the child broke"
        status = "dead"
        [expect]
        status = "completed"
        output = { status = "dead", failed = "playbook 'child' (run child-1) ended dead: the child broke" }
        "#,
    );
    assert!(report.passed(), "{:?}", report.problems);

    // No canned answer: the case says what to add.
    let report = offline(
        parent,
        CHILD,
        "input = { ip = \"203.0.113.7\" }\n[expect]\nstatus = \"completed\"\n",
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains(r#"no canned response for playbook child {"ip":"203.0.113.7"}"#)),
        "{:?}",
        report.problems
    );
    // An entry that gives two answers is refused.
    let report = offline(
        parent,
        CHILD,
        "[[playbook]]\nname = \"child\"\nresult = 1\nrun = true\n[expect]\nstatus = \"completed\"\n",
    );
    assert_eq!(
        report.problems,
        ["[[playbook]] 'child' may give only one of result, error and run"]
    );
}

#[test]
fn a_test_runs_a_child_offline_with_the_cases_mocks() {
    let parent = ("[inputs.ip]\ntype = \"string\"\n", PARENT);
    let report = offline(
        parent,
        CHILD,
        r#"
        input = { ip = "203.0.113.7" }
        [[playbook]]
        name = "child"
        run = true
        [[mock]]
        plugin = "ipinfo"
        action = "lookup"
        when = { ip = "203.0.113.7" }
        output = { country = "NL" }
        [expect]
        status = "completed"
        output = { country = "NL" }
        "#,
    );
    assert!(report.passed(), "{:?}", report.problems);

    // The child's failure reaches the parent as its catchable error.
    let report = offline(
        parent,
        CHILD,
        r#"
        input = { ip = "203.0.113.7" }
        [[playbook]]
        name = "child"
        run = true
        [[mock]]
        plugin = "ipinfo"
        action = "lookup"
        error = { kind = "unavailable", message = "down", retryable = false }
        [expect]
        status = "completed"
        output = { status = "failed" }
        "#,
    );
    assert!(report.passed(), "{:?}", report.problems);
}

#[test]
fn a_test_of_a_playbook_that_starts_itself_stops_at_the_depth_limit() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("again");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(
        folder.join("playbook.toml"),
        "name = \"again\"\ndescription = \"x\"\n",
    )
    .unwrap();
    std::fs::write(folder.join("playbook.rhai"), r#"playbook("again", #{})"#).unwrap();
    let pb = super::Playbook::load(&folder).unwrap();
    let case: testing::Case = toml::from_str(
        "[[playbook]]\nname = \"again\"\nrun = true\n[expect]\nstatus = \"failed\"\nerror = \"ended failed\"\n",
    )
    .unwrap();
    let report = testing::run_case(
        &pb,
        &folder.join("tests/c.toml"),
        &case,
        &super::RunLimits::default(),
        None,
    );
    assert!(report.passed(), "{:?}", report.problems);
}
