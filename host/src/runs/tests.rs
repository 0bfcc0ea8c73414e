//! The executor through the real store (SQLite file) and playbooks written to a folder: poison
//! runs, request forms, and the bundled request form from its form to the allow list.

mod requests {
    use super::support::*;
    use crate::playbook::InputType;
    use crate::runs::*;
    use crate::store::now_ms;
    use crate::store::runs::RunStatus;

    const FORM: &str = r#"
name = "allow"
description = "Allow a domain for a while"

[request]
title = "Allow a domain"
description = "Analysts approve it"
roles = ["staff"]

[inputs.domain]
type = "string"
description = "the domain to allow"

[inputs.days]
type = "integer"
description = "for how long"
default = 7

[inputs.note]
type = "string"
required = false
"#;

    #[tokio::test]
    async fn a_run_whose_replays_never_end_is_set_aside_as_dead() {
        let t = crate::store::testing::sqlite().await;
        let store = &t.store;
        let (executor, _dir) = executor(store, &[("pb", "name = \"pb\"\ndescription = \"d\"\n", "1")]);
        let id = executor.start("pb", &Default::default(), "test").await.unwrap();
        // Three claims whose replay never ended (the process died holding the lease,
        // which has run out).
        for _ in 0..3 {
            let claimed = store.claim_jobs("dead-node", now_ms() - 1, 1).await.unwrap();
            assert_eq!(claimed.len(), 1);
        }
        assert!(executor.work_on(&id).await.unwrap());
        let run = store.run(&id).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Dead);
        let error = run.error.unwrap();
        assert!(error.contains("did not end 3 times in a row"), "{error}");
        assert!(error.contains(&format!("osprey run restart {id}")), "{error}");

        // A run whose replays end (here: waiting) is never set aside, however often claimed.
        let (napper, _dir2) =
            super::support::executor(store, &[("nap", "name = \"nap\"\ndescription = \"d\"\n", "2")]);
        let id = napper.start("nap", &Default::default(), "test").await.unwrap();
        for _ in 0..5 {
            store.claim_jobs("n", now_ms() - 1, 1).await.unwrap();
            store
                .reschedule_run(&id, RunStatus::Queued, 0, None)
                .await
                .unwrap();
        }
        assert!(napper.work_on(&id).await.unwrap());
        assert_eq!(
            store.run(&id).await.unwrap().unwrap().status,
            RunStatus::Completed
        );
    }

    #[tokio::test]
    async fn request_forms_list_the_playbooks_with_a_request_table() {
        let t = crate::store::testing::sqlite().await;
        let (executor, _dir) = executor(
            &t.store,
            &[
                ("allow", FORM, "requester.name"),
                ("plain", "name = \"plain\"\ndescription = \"d\"\n", "1"),
            ],
        );
        let forms = executor.request_forms();
        assert_eq!(forms.len(), 1, "{forms:?}");
        let f = &forms[0];
        assert_eq!(
            (f.playbook.as_str(), f.title.as_str(), f.description.as_str()),
            ("allow", "Allow a domain", "Analysts approve it")
        );
        assert_eq!(f.roles, vec!["staff"]);
        let fields: Vec<(&str, InputType, bool, Option<&Value>)> = f
            .fields
            .iter()
            .map(|x| (x.name.as_str(), x.kind, x.required, x.default.as_ref()))
            .collect();
        assert_eq!(
            fields,
            vec![
                ("domain", InputType::String, true, None),
                ("days", InputType::Integer, false, Some(&serde_json::json!(7))),
                ("note", InputType::String, false, None),
            ]
        );
        assert_eq!(f.fields[0].description, "the domain to allow");
        let shown = serde_json::to_value(f).unwrap();
        assert_eq!(shown["fields"][1]["type"], "integer");
        let alice = user(&t.store, "alice", None, &["staff"]).await;
        let bob = user(&t.store, "bob", None, &["requester"]).await;
        assert!(f.allows(&alice.roles, false) && !f.allows(&bob.roles, false));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn start_request_checks_the_form_the_user_and_the_input_then_runs_with_the_requester() {
        let t = crate::store::testing::sqlite().await;
        let store = &t.store;
        let (executor, _dir) = executor(
            store,
            &[
                (
                    "allow",
                    FORM,
                    "#{ who: requester.name, mail: requester.email, domain: input.domain, days: input.days }",
                ),
                ("plain", "name = \"plain\"\ndescription = \"d\"\n", "1"),
            ],
        );
        let alice = user(store, "alice", Some("alice@example.com"), &["staff"]).await;
        let bob = user(store, "bob", None, &["requester"]).await;
        let input = |v: Value| v.as_object().unwrap().clone();
        let domain = input(serde_json::json!({"domain": "example.com"}));

        let e = executor
            .start_request("plain", &domain, &alice)
            .await
            .unwrap_err();
        assert!(matches!(e, RequestError::NotARequest(_)), "{e}");
        assert!(e.to_string().contains("no [request] table"), "{e}");
        let e = executor.start_request("nope", &domain, &alice).await.unwrap_err();
        assert!(
            matches!(
                e,
                RequestError::Run(RunError::Playbook(
                    crate::playbook::PlaybookError::NotFound { .. }
                ))
            ),
            "{e}"
        );
        let e = executor.start_request("allow", &domain, &bob).await.unwrap_err();
        assert!(matches!(e, RequestError::Forbidden { .. }), "{e}");
        assert!(e.to_string().contains("open to the roles staff only"), "{e}");
        let e = executor
            .start_request("allow", &input(serde_json::json!({"days": 3})), &alice)
            .await
            .unwrap_err();
        assert!(matches!(e, RequestError::Run(RunError::Input { .. })), "{e}");
        assert!(e.to_string().contains("'domain' is required"), "{e}");
        let e = executor
            .start_request(
                "allow",
                &input(serde_json::json!({"domain": "x.com", "days": "3"})),
                &alice,
            )
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("input 'days' must be of type Integer"),
            "{e}"
        );
        user(store, "carol", None, &["staff"]).await;
        store
            .set_user_disabled("carol", true, &Actor::cli())
            .await
            .unwrap();
        let carol = store.user("carol").await.unwrap().unwrap();
        let e = executor
            .start_request("allow", &domain, &carol)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("the user is disabled"), "{e}");
        assert!(
            store.runs(None, None, 10).await.unwrap().is_empty(),
            "refusals start nothing"
        );

        let id = executor.start_request("allow", &domain, &alice).await.unwrap();
        let run = store.run(&id).await.unwrap().unwrap();
        assert_eq!(run.origin, "request:alice");
        assert_eq!(run.status, RunStatus::Queued);
        assert_eq!(run.input, serde_json::json!({"domain": "example.com", "days": 7}));
        assert_eq!(
            run.context,
            serde_json::json!({"requester": {"name": "alice", "email": "alice@example.com"}})
        );
        assert!(executor.work_on(&id).await.unwrap());
        let run = store.run(&id).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
        assert_eq!(
            run.output,
            Some(
                serde_json::json!({"who": "alice", "mail": "alice@example.com", "domain": "example.com", "days": 7})
            )
        );
    }
}

mod handing_over {
    use super::support::*;
    use crate::runs::*;
    use crate::store::runs::RunStatus;
    use std::time::{Duration, Instant};

    fn runs(executor: &Executor, n: usize) -> Vec<NewRun> {
        let pb = executor.playbooks().get("pb").unwrap();
        (0..n)
            .map(|_| executor.prepare_run(&pb, &Default::default(), "test").unwrap())
            .collect()
    }

    async fn wait_for(store: &Store, id: &str, status: RunStatus) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let now = store.run(id).await.unwrap().unwrap().status;
            if now == status {
                return;
            }
            assert!(Instant::now() < deadline, "run {id} is {now:?}, not {status:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_created_here_go_to_free_workers_claimed_and_the_rest_are_queued() {
        let t = crate::store::testing::sqlite().await;
        let store = &t.store;
        let (executor, _dir) = executor(store, &[("pb", "name = \"pb\"\ndescription = \"d\"\n", "1")]);
        let workers = RunsConfig::default().workers;

        // No workers running (a CLI, a test): every run is queued.
        let mut idle = runs(&executor, 3);
        drop(executor.reserve_workers(&mut idle));
        assert!(idle.iter().all(|r| r.lease.is_none()));
        let queued = executor.start("pb", &Default::default(), "test").await.unwrap();
        assert_eq!(
            store.run(&queued).await.unwrap().unwrap().status,
            RunStatus::Queued
        );

        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let loop_ = executor.spawn_workers(shutdown);
        wait_for(store, &queued, RunStatus::Completed).await;

        // As many leases as free workers, in order; the rest queued.
        let mut batch = runs(&executor, workers + 2);
        let reserved = executor.reserve_workers(&mut batch);
        assert!(batch[..workers].iter().all(|r| r.lease.is_some()));
        assert!(batch[workers..].iter().all(|r| r.lease.is_none()));
        // Every worker reserved: a run started now is queued, and runs once one is free.
        let waits = executor.start("pb", &Default::default(), "test").await.unwrap();
        assert_eq!(
            store.run(&waits).await.unwrap().unwrap().status,
            RunStatus::Queued
        );
        // Not created after all (the triage did not commit): the workers are free again.
        drop(reserved);
        wait_for(store, &waits, RunStatus::Completed).await;

        // Created claimed, the run is the worker's at once: running or done, never queued.
        let mut one = runs(&executor, 1);
        let reserved = executor.reserve_workers(&mut one);
        let lease = one[0].lease.clone().expect("a worker is free");
        store.create_run(&one[0]).await.unwrap();
        let stored = store.run(&one[0].id).await.unwrap().unwrap();
        assert_eq!(
            (stored.status, stored.wake_at),
            (RunStatus::Running, Some(lease.until))
        );
        executor.hand_over(&one, reserved);
        wait_for(store, &one[0].id, RunStatus::Completed).await;
        let started = executor.start("pb", &Default::default(), "test").await.unwrap();
        assert_ne!(
            store.run(&started).await.unwrap().unwrap().status,
            RunStatus::Queued
        );
        wait_for(store, &started, RunStatus::Completed).await;

        // Shutting down: queued again, nothing handed over.
        stop.send(true).unwrap();
        loop_.await.unwrap();
        let mut late = runs(&executor, 1);
        drop(executor.reserve_workers(&mut late));
        assert!(late[0].lease.is_none());
    }
}

mod support {
    use crate::runs::*;
    use crate::store::users::UserRecord;

    /// An executor over `store` with the playbooks written to a temporary folder.
    pub fn executor(
        store: &Store,
        playbooks: &[(&str, &str, &str)],
    ) -> (Arc<Executor>, [tempfile::TempDir; 2]) {
        let dir = tempfile::tempdir().unwrap();
        for (name, meta, script) in playbooks {
            let pb = dir.path().join("playbooks").join(name);
            std::fs::create_dir_all(&pb).unwrap();
            std::fs::write(pb.join("playbook.toml"), meta).unwrap();
            std::fs::write(pb.join("playbook.rhai"), script).unwrap();
        }
        let (loaded, errors) = Playbooks::load_dir(&dir.path().join("playbooks"));
        assert!(errors.is_empty(), "{errors:?}");
        let (executor, plugins) = executor_with(store, loaded);
        (executor, [dir, plugins])
    }

    /// An executor over `store` running `playbooks` (the temporary folder holds the plugin
    /// folders, empty).
    pub fn executor_with(store: &Store, loaded: Playbooks) -> (Arc<Executor>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let vault = crate::vault::Vault::from_key(&[7; 32]);
        let (link_key, _) = crate::vault::LinkKey::generate(&vault);
        let metrics = Arc::new(crate::metrics::Metrics::new());
        let runtime = Runtime::new(
            crate::plugin::RuntimeOptions {
                plugins_dir: dir.path().join("plugins"),
                cache_dir: dir.path().join("cache"),
                limits: Default::default(),
                max_instances: 2,
                max_memory_mib: 64,
                metrics,
            },
            store.clone(),
            Arc::new(vault),
        )
        .unwrap();
        let humans = Arc::new(crate::humans::Humans::new(
            Default::default(),
            std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            link_key,
            false,
            Default::default(),
        ));
        let executor = Executor::new(
            store.clone(),
            runtime,
            loaded,
            RunLimits::default(),
            RunsConfig::default(),
            1000,
            humans,
        );
        (executor, dir)
    }

    pub async fn user(store: &Store, name: &str, email: Option<&str>, roles: &[&str]) -> UserRecord {
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        store
            .create_user(name, email, &roles, &Actor::cli())
            .await
            .unwrap();
        store.user(name).await.unwrap().unwrap()
    }
}

mod bundled_request {
    //! The bundled request form `allow-domain-request`, through the real executor and store:
    //! started for a user, approved from the inbox, and the domain on the allow list.

    use super::support::*;
    use crate::runs::*;
    use crate::store::lists::{EntryType, ListKind};
    use crate::store::questions::{Answerer, QuestionStatus};
    use crate::store::runs::RunStatus;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn allow_domain_request_goes_from_the_form_to_the_allow_list() {
        let t = crate::store::testing::sqlite().await;
        let store = &t.store;
        let bundled = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../playbooks");
        let (playbooks, errors) = Playbooks::load_dir(&bundled);
        assert!(errors.is_empty(), "{errors:?}");
        let (executor, _dir) = executor_with(store, playbooks);
        assert!(
            executor
                .request_forms()
                .iter()
                .any(|f| f.playbook == "allow-domain-request" && f.title == "Allow a domain")
        );
        let alice = user(store, "alice", Some("alice@example.com"), &["requester"]).await;
        user(store, "bob", None, &["analyst"]).await;
        let input = serde_json::json!({"domain": "Example.com", "days": 3, "reason": "a webinar"});
        let id = executor
            .start_request("allow-domain-request", input.as_object().unwrap(), &alice)
            .await
            .unwrap();

        // The analysts are asked, and the run waits.
        assert!(executor.work_on(&id).await.unwrap());
        assert_eq!(store.run(&id).await.unwrap().unwrap().status, RunStatus::Waiting);
        let asked = store
            .questions(Some(QuestionStatus::Open), Some("bob"), 10)
            .await
            .unwrap();
        assert_eq!(asked.len(), 1);
        assert_eq!(asked[0].title, "alice asks to allow example.com for 3 days");
        let who = Answerer::User {
            name: "bob",
            from: None,
            agent: None,
        };
        let answer = serde_json::json!({"value": true, "comment": "ok"});
        store.answer_question(&asked[0].id, &answer, &who).await.unwrap();

        // Approved, but the list does not exist yet: the run fails and says what to do.
        assert!(executor.work_on(&id).await.unwrap());
        let run = store.run(&id).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Failed);
        let error = run.error.unwrap_or_default();
        assert!(
            error.contains("osprey list create allowed-domains --kind allow --type domain"),
            "{error}"
        );

        // The operator creates it and restarts the run from its list_add step.
        store
            .create_list(
                "allowed-domains",
                ListKind::Allow,
                EntryType::Domain,
                "",
                &Actor::cli(),
            )
            .await
            .unwrap();
        let steps = store.steps(&id).await.unwrap();
        let list_add = steps
            .iter()
            .find(|s| s.request["action"] == "list_add")
            .map(|s| s.seq)
            .expect("a list_add step");
        executor.restart(&id, list_add, &Actor::cli()).await.unwrap();
        assert!(executor.work_on(&id).await.unwrap());
        let run = store.run(&id).await.unwrap().unwrap();
        assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
        let output = run.output.unwrap();
        assert_eq!(output["approved"], true);
        assert_eq!(output["domain"], "example.com");
        assert_eq!(output["by"], "user:bob");
        assert_eq!(output["mailed"], false, "mail is not configured here");
        let entries = store.list_entries("allowed-domains", false).await.unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].value, "example.com");
        assert_eq!(
            entries[0].reason,
            "requested by alice: a webinar (approved by user:bob)"
        );
        let expires_in = entries[0].expires_at.unwrap() - crate::store::now_ms();
        assert!(
            (3 * 86_400_000 - 60_000..=3 * 86_400_000).contains(&expires_in),
            "{expires_in}"
        );
    }
}
