//! The four actions: RunInstances (with the call's idempotency key as its ClientToken),
//! DescribeInstances, CreateTags and TerminateInstances.

use crate::answer::{child, items, text};
use crate::instance::Instance;
use crate::io::call;
use crate::query::Query;
use osprey_sdk::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// The most instances one `run-instances` launches.
const MAX_COUNT: u32 = 10;
/// EC2's limits: tags on a resource, ids in one request.
const MAX_TAGS: usize = 50;
const MAX_IDS: usize = 1000;

/// Launch instances from an AMI.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RunInput {
    /// The AMI, such as `ami-0abcdef1234567890`.
    image_id: String,
    /// Such as `t3.micro`.
    instance_type: String,
    /// The subnet to launch into; unset, the default VPC's default subnet.
    #[serde(default)]
    subnet_id: Option<String>,
    /// Tags for the instances (and nothing else), by key; applied at launch.
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// How many to launch (all or none), 1 to 10.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 10))]
    count: u32,
    /// The region to call, such as eu-west-1; unset, the `region` setting.
    #[serde(default)]
    region: Option<String>,
}

fn one() -> u32 {
    1
}

/// The launched instances.
#[derive(Serialize, JsonSchema)]
pub(crate) struct RunOutput {
    reservation_id: Option<String>,
    instances: Vec<Instance>,
}

/// EC2's ClientToken for an idempotency key: the key itself when it fits (64 ASCII
/// characters), else its SHA-256 in hex. The same key always gives the same token, so a
/// retried step launches once.
pub(crate) fn client_token(idempotency_key: &str) -> String {
    if idempotency_key.len() <= 64 && idempotency_key.bytes().all(|b| b.is_ascii_graphic()) {
        return idempotency_key.to_owned();
    }
    Sha256::digest(idempotency_key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn check_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    if tags.len() > MAX_TAGS {
        return Err(Error::invalid_input(format!(
            "{} tags given; EC2 keeps at most {MAX_TAGS} on a resource",
            tags.len()
        )));
    }
    if tags.keys().any(|k| k.trim().is_empty()) {
        return Err(Error::invalid_input("a tag key is empty"));
    }
    Ok(())
}

fn check_ids(what: &str, ids: &[String], required: bool) -> Result<()> {
    if required && ids.is_empty() {
        return Err(Error::invalid_input(format!(
            "'{what}' is empty: name at least one"
        )));
    }
    if ids.len() > MAX_IDS {
        return Err(Error::invalid_input(format!(
            "{} {what} given; one request takes at most {MAX_IDS}",
            ids.len()
        )));
    }
    Ok(())
}

/// The RunInstances request for `input`, with `token` as its ClientToken.
pub(crate) fn run_query(input: &RunInput, token: &str) -> Result<Query> {
    if !(1..=MAX_COUNT).contains(&input.count) {
        return Err(Error::invalid_input(format!(
            "count {} is out of range: launch 1 to {MAX_COUNT} instances at a time",
            input.count
        )));
    }
    check_tags(&input.tags)?;
    let count = input.count.to_string();
    let mut q = Query::new("RunInstances");
    q.set("ImageId", input.image_id.trim())
        .set("InstanceType", input.instance_type.trim())
        .set("MinCount", count.clone())
        .set("MaxCount", count)
        .set("ClientToken", token);
    if let Some(subnet) = input.subnet_id.as_deref().filter(|s| !s.trim().is_empty()) {
        q.set("SubnetId", subnet.trim());
    }
    if !input.tags.is_empty() {
        q.set("TagSpecification.1.ResourceType", "instance");
        q.tags("TagSpecification.1.Tag", &input.tags);
    }
    Ok(q)
}

pub(crate) fn run_instances(ctx: &Context, input: RunInput) -> Result<RunOutput> {
    let query = run_query(&input, &client_token(ctx.idempotency_key()))?;
    call(&query, input.region.as_deref(), |root| {
        Ok(RunOutput {
            reservation_id: text(root, "reservationId"),
            instances: Instance::all_in(root)?,
        })
    })
}

/// Describe instances: by id, by filter, or all of them, a page at a time.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DescribeInput {
    /// The instances to describe; unset, every instance the filters match.
    #[serde(default)]
    instance_ids: Vec<String>,
    /// Filters by name, each with the values any of which matches (`instance-state-name`:
    /// [`running`], `tag:Team`: [`soc`], ...).
    #[serde(default)]
    filters: BTreeMap<String, Vec<String>>,
    /// The page size (5 to 1000); not with `instance_ids`.
    #[serde(default)]
    #[schemars(range(min = 5, max = 1000))]
    max_results: Option<u32>,
    /// The `next_token` of the previous page.
    #[serde(default)]
    next_token: Option<String>,
    /// The region to call, such as eu-west-1; unset, the `region` setting.
    #[serde(default)]
    region: Option<String>,
}

/// The instances described.
#[derive(Serialize, JsonSchema)]
pub(crate) struct DescribeOutput {
    instances: Vec<Instance>,
    /// Pass it as `next_token` for the next page; absent on the last page.
    next_token: Option<String>,
}

pub(crate) fn describe_query(input: &DescribeInput) -> Result<Query> {
    check_ids("instance_ids", &input.instance_ids, false)?;
    let mut q = Query::new("DescribeInstances");
    q.list("InstanceId", &input.instance_ids).filters(&input.filters);
    if let Some(max) = input.max_results {
        if !input.instance_ids.is_empty() {
            return Err(Error::invalid_input(
                "'max_results' cannot be used with 'instance_ids' (EC2 pages only a search)",
            ));
        }
        q.set("MaxResults", max.to_string());
    }
    if let Some(token) = input.next_token.as_deref().filter(|t| !t.is_empty()) {
        q.set("NextToken", token);
    }
    Ok(q)
}

pub(crate) fn describe_instances(_ctx: &Context, input: DescribeInput) -> Result<DescribeOutput> {
    call(&describe_query(&input)?, input.region.as_deref(), |root| {
        let mut instances = Vec::new();
        for reservation in items(root, "reservationSet") {
            instances.extend(Instance::all_in(reservation)?);
        }
        Ok(DescribeOutput {
            instances,
            next_token: text(root, "nextToken"),
        })
    })
}

/// Add or overwrite tags on resources (instances, volumes, ...).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TagInput {
    /// The resources' ids.
    resource_ids: Vec<String>,
    /// The tags, by key; an existing tag with the same key gets the new value.
    tags: BTreeMap<String, String>,
    /// The region to call, such as eu-west-1; unset, the `region` setting.
    #[serde(default)]
    region: Option<String>,
}

/// What was tagged.
#[derive(Serialize, JsonSchema)]
pub(crate) struct TagOutput {
    resource_ids: Vec<String>,
    tags: BTreeMap<String, String>,
}

pub(crate) fn tag_query(input: &TagInput) -> Result<Query> {
    check_ids("resource_ids", &input.resource_ids, true)?;
    check_tags(&input.tags)?;
    if input.tags.is_empty() {
        return Err(Error::invalid_input("'tags' is empty: name at least one tag"));
    }
    let mut q = Query::new("CreateTags");
    q.list("ResourceId", &input.resource_ids).tags("Tag", &input.tags);
    Ok(q)
}

pub(crate) fn create_tags(_ctx: &Context, input: TagInput) -> Result<TagOutput> {
    call(&tag_query(&input)?, input.region.as_deref(), |root| {
        match text(root, "return").as_deref() {
            Some("true") => Ok(()),
            other => Err(Error::upstream(format!(
                "EC2 answered CreateTags with return {other:?}, not true"
            ))),
        }
    })?;
    Ok(TagOutput {
        resource_ids: input.resource_ids,
        tags: input.tags,
    })
}

/// Terminate instances (shut them down and delete them; this cannot be undone).
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TerminateInput {
    /// The instances' ids.
    instance_ids: Vec<String>,
    /// The region to call, such as eu-west-1; unset, the `region` setting.
    #[serde(default)]
    region: Option<String>,
}

/// Each instance's change of state.
#[derive(Serialize, JsonSchema)]
pub(crate) struct TerminateOutput {
    instances: Vec<StateChange>,
}

#[derive(Serialize, JsonSchema)]
struct StateChange {
    instance_id: String,
    previous_state: Option<String>,
    /// shutting-down, or terminated.
    current_state: Option<String>,
}

pub(crate) fn terminate_instances(_ctx: &Context, input: TerminateInput) -> Result<TerminateOutput> {
    check_ids("instance_ids", &input.instance_ids, true)?;
    let mut q = Query::new("TerminateInstances");
    q.list("InstanceId", &input.instance_ids);
    call(&q, input.region.as_deref(), |root| {
        let instances = items(root, "instancesSet")
            .into_iter()
            .map(|item| StateChange {
                instance_id: text(item, "instanceId").unwrap_or_default(),
                previous_state: child(item, "previousState").and_then(|s| text(s, "name")),
                current_state: child(item, "currentState").and_then(|s| text(s, "name")),
            })
            .collect();
        Ok(TerminateOutput { instances })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(value: Value) -> RunInput {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn the_idempotency_key_is_the_client_token_or_its_hash() {
        assert_eq!(client_token("run-7f3a:2"), "run-7f3a:2");
        let long = "r".repeat(65);
        let token = client_token(&long);
        assert_eq!(token.len(), 64);
        assert_eq!(token, client_token(&long), "the same key, the same token");
        assert_ne!(token, client_token(&"r".repeat(66)));
        assert_eq!(client_token("ключ").len(), 64);
    }

    #[test]
    fn run_instances_names_the_ami_type_count_subnet_token_and_tags() {
        let q = run_query(
            &run(
                json!({"image_id": "ami-1", "instance_type": "t3.micro", "subnet_id": "subnet-9",
                         "tags": {"Name": "forensics", "Case": "INC0010001"}, "count": 2}),
            ),
            "run-1:1",
        )
        .unwrap();
        assert_eq!(
            q.body(),
            "Action=RunInstances&Version=2016-11-15&ImageId=ami-1&InstanceType=t3.micro\
             &MinCount=2&MaxCount=2&ClientToken=run-1%3A1&SubnetId=subnet-9\
             &TagSpecification.1.ResourceType=instance\
             &TagSpecification.1.Tag.1.Key=Case&TagSpecification.1.Tag.1.Value=INC0010001\
             &TagSpecification.1.Tag.2.Key=Name&TagSpecification.1.Tag.2.Value=forensics"
        );
        let q = run_query(
            &run(json!({"image_id": "ami-1", "instance_type": "t3.micro"})),
            "k",
        )
        .unwrap();
        assert!(
            q.body().contains("&MinCount=1&MaxCount=1&ClientToken=k"),
            "{}",
            q.body()
        );
        assert!(!q.body().contains("TagSpecification") && !q.body().contains("SubnetId"));
        for count in [0, 11] {
            let e = run_query(
                &run(json!({"image_id": "ami-1", "instance_type": "t3.micro", "count": count})),
                "k",
            )
            .unwrap_err();
            assert!(e.message.contains("launch 1 to 10"), "{}", e.message);
        }
        let many: BTreeMap<String, String> = (0..51).map(|i| (format!("k{i}"), "v".into())).collect();
        let e = run_query(
            &run(json!({"image_id": "ami-1", "instance_type": "t3.micro", "tags": many})),
            "k",
        )
        .unwrap_err();
        assert!(e.message.contains("at most 50"), "{}", e.message);
    }

    #[test]
    fn describe_pages_a_search_but_not_a_list_of_ids() {
        let input: DescribeInput = serde_json::from_value(json!({
            "filters": {"instance-state-name": ["running"]}, "max_results": 5, "next_token": "abc"}))
        .unwrap();
        assert_eq!(
            describe_query(&input).unwrap().body(),
            "Action=DescribeInstances&Version=2016-11-15&Filter.1.Name=instance-state-name\
             &Filter.1.Value.1=running&MaxResults=5&NextToken=abc"
        );
        let input: DescribeInput =
            serde_json::from_value(json!({"instance_ids": ["i-1"], "max_results": 5})).unwrap();
        assert_eq!(describe_query(&input).unwrap_err().kind, ErrorKind::InvalidInput);
    }

    #[test]
    fn tags_and_terminations_need_something_to_act_on() {
        let tag = |v: Value| tag_query(&serde_json::from_value(v).unwrap());
        assert_eq!(
            tag(json!({"resource_ids": ["i-1", "vol-2"], "tags": {"quarantine": "yes"}}))
                .unwrap()
                .body(),
            "Action=CreateTags&Version=2016-11-15&ResourceId.1=i-1&ResourceId.2=vol-2\
             &Tag.1.Key=quarantine&Tag.1.Value=yes"
        );
        let e = tag(json!({"resource_ids": [], "tags": {"a": "b"}})).unwrap_err();
        assert!(e.message.contains("'resource_ids' is empty"), "{}", e.message);
        let e = tag(json!({"resource_ids": ["i-1"], "tags": {}})).unwrap_err();
        assert!(e.message.contains("'tags' is empty"), "{}", e.message);
        let e = tag(json!({"resource_ids": ["i-1"], "tags": {" ": "x"}})).unwrap_err();
        assert!(e.message.contains("tag key is empty"), "{}", e.message);
    }
}
