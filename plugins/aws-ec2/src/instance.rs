//! An instance as EC2 describes it (an `<item>` of an `instancesSet`), and as the actions
//! return it.

use crate::answer::{child, items, text};
use osprey_sdk::prelude::*;
use roxmltree::Node;
use std::collections::BTreeMap;

/// An EC2 instance.
#[derive(Serialize, JsonSchema, Debug, PartialEq)]
pub(crate) struct Instance {
    /// Its id, such as `i-0abcd1234efgh5678`.
    pub(crate) instance_id: String,
    /// pending, running, shutting-down, terminated, stopping or stopped.
    pub(crate) state: Option<String>,
    /// Such as t3.micro.
    pub(crate) instance_type: Option<String>,
    /// The AMI it was launched from.
    pub(crate) image_id: Option<String>,
    /// When it was launched (ISO 8601, UTC).
    pub(crate) launch_time: Option<String>,
    pub(crate) subnet_id: Option<String>,
    pub(crate) vpc_id: Option<String>,
    pub(crate) private_ip: Option<String>,
    /// The public IPv4 address, if it has one.
    pub(crate) public_ip: Option<String>,
    pub(crate) availability_zone: Option<String>,
    /// Its tags, by key.
    pub(crate) tags: BTreeMap<String, String>,
}

/// `<item>`s of a `<tagSet>` as a map.
fn tags(node: Node) -> BTreeMap<String, String> {
    items(node, "tagSet")
        .into_iter()
        .filter_map(|t| Some((text(t, "key")?, text(t, "value").unwrap_or_default())))
        .collect()
}

impl Instance {
    /// An instance from its `<item>`; `upstream` without an `instanceId`.
    pub(crate) fn from_item(item: Node) -> Result<Instance> {
        let instance_id = text(item, "instanceId")
            .ok_or_else(|| Error::upstream("EC2 described an instance without an instanceId"))?;
        Ok(Instance {
            instance_id,
            state: child(item, "instanceState").and_then(|s| text(s, "name")),
            instance_type: text(item, "instanceType"),
            image_id: text(item, "imageId"),
            launch_time: text(item, "launchTime"),
            subnet_id: text(item, "subnetId"),
            vpc_id: text(item, "vpcId"),
            private_ip: text(item, "privateIpAddress"),
            public_ip: text(item, "ipAddress"),
            availability_zone: child(item, "placement").and_then(|p| text(p, "availabilityZone")),
            tags: tags(item),
        })
    }

    /// Every instance of the `instancesSet` under `node`.
    pub(crate) fn all_in(node: Node) -> Result<Vec<Instance>> {
        items(node, "instancesSet")
            .into_iter()
            .map(Instance::from_item)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_item_is_read_with_its_state_addresses_and_tags() {
        let xml = r#"<item xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
            <instanceId>i-0598c7d356eba48d7</instanceId><imageId>ami-0abcdef1234567890</imageId>
            <instanceState><code>16</code><name>running</name></instanceState>
            <instanceType>t3.micro</instanceType><launchTime>2026-12-07T06:00:00.000Z</launchTime>
            <placement><availabilityZone>eu-west-1a</availabilityZone><tenancy>default</tenancy></placement>
            <subnetId>subnet-0bb1c79de3EXAMPLE</subnetId><vpcId>vpc-0dc3EXAMPLE</vpcId>
            <privateIpAddress>10.0.1.12</privateIpAddress><ipAddress>203.0.113.7</ipAddress>
            <groupSet><item><groupId>sg-1</groupId></item></groupSet>
            <tagSet><item><key>Name</key><value>quarantine</value></item><item><key>empty</key><value/></item></tagSet>
        </item>"#;
        let doc = roxmltree::Document::parse(xml).unwrap();
        let i = Instance::from_item(doc.root_element()).unwrap();
        assert_eq!(i.instance_id, "i-0598c7d356eba48d7");
        assert_eq!(i.state.as_deref(), Some("running"));
        assert_eq!(i.instance_type.as_deref(), Some("t3.micro"));
        assert_eq!(i.launch_time.as_deref(), Some("2026-12-07T06:00:00.000Z"));
        assert_eq!(
            (i.private_ip.as_deref(), i.public_ip.as_deref()),
            (Some("10.0.1.12"), Some("203.0.113.7"))
        );
        assert_eq!(i.availability_zone.as_deref(), Some("eu-west-1a"));
        assert_eq!(
            i.tags,
            BTreeMap::from([
                ("Name".to_owned(), "quarantine".to_owned()),
                ("empty".to_owned(), String::new())
            ])
        );
        let doc = roxmltree::Document::parse("<item><imageId>ami-1</imageId></item>").unwrap();
        assert_eq!(
            Instance::from_item(doc.root_element()).unwrap_err().kind,
            ErrorKind::Upstream
        );
    }
}
