//! aws-ec2: EC2 instances through the Query API (`POST` of a form with
//! `Action=...&Version=2016-11-15`, XML answers), signed with SigV4 by AWS's `aws-sigv4`
//! crate (`sign.rs`) with the secrets `access-key-id`, `secret-access-key` and, for temporary
//! credentials, `session-token`; the endpoint is `https://ec2.{region}.amazonaws.com` from the
//! `region` setting, or the `endpoint` setting (`io.rs`).
//!
//! Failures are `<Response><Errors><Error><Code>`, each code mapped to a kind (`answer.rs`).
//! `run-instances` passes the call's idempotency key as RunInstances' `ClientToken`, so a
//! retried step launches once (`actions.rs`).

mod actions;
mod answer;
mod instance;
mod io;
mod query;
mod sign;

use osprey_sdk::prelude::*;

fn plugin() -> Plugin {
    Plugin::new(
        "aws-ec2",
        env!("CARGO_PKG_VERSION"),
        "AWS EC2 through the Query API, signed with SigV4: run, describe, tag and terminate \
         instances",
    )
    .action(
        "run-instances",
        "Launch 1 to 10 instances from an AMI (image_id, instance_type, optionally subnet_id \
         and tags); a retried step launches once (its idempotency key is the ClientToken).",
        actions::run_instances,
    )
    .action(
        "describe-instances",
        "Describe instances by id, by filters (such as instance-state-name or tag:KEY), or \
         all of them, a page at a time.",
        actions::describe_instances,
    )
    .action(
        "create-tags",
        "Add or overwrite tags on instances or other resources by id.",
        actions::create_tags,
    )
    .action(
        "terminate-instances",
        "Terminate instances by id: each one's previous and current state.",
        actions::terminate_instances,
    )
}

osprey_sdk::export_plugin!(plugin);
