//! What changes when one version of a plugin replaces another: the capabilities its
//! plugin.toml requests, and the actions its component describes. Pure.

use crate::capability::Capabilities;
use crate::plugin::ActionInfo;
use serde::Serialize;

/// Capabilities requested by the new version and not by the old one, and the other way round,
/// one line each (`http https://api.example.com`, `secret token`, `kv quota 4096 bytes`, ...).
/// A changed quota or limit is one line removed and one added.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CapabilityDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

impl CapabilityDiff {
    pub fn between(old: &Capabilities, new: &Capabilities) -> CapabilityDiff {
        let (old, new) = (old.items(), new.items());
        CapabilityDiff {
            added: new.iter().filter(|i| !old.contains(i)).cloned().collect(),
            removed: old.iter().filter(|i| !new.contains(i)).cloned().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty()
    }
}

/// Actions the new version describes and the old one did not, and the other way round, and
/// the actions both have whose input or output schema differs (compared as JSON values).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ActionDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub input_changed: Vec<String>,
    pub output_changed: Vec<String>,
}

impl ActionDiff {
    pub fn between(old: &[ActionInfo], new: &[ActionInfo]) -> ActionDiff {
        let find = |set: &'_ [ActionInfo], name: &str| set.iter().find(|a| a.name == name).cloned();
        let mut diff = ActionDiff::default();
        for n in new {
            match find(old, &n.name) {
                None => diff.added.push(n.name.clone()),
                Some(o) => {
                    if o.input_schema != n.input_schema {
                        diff.input_changed.push(n.name.clone());
                    }
                    if o.output_schema != n.output_schema {
                        diff.output_changed.push(n.name.clone());
                    }
                }
            }
        }
        diff.removed = old
            .iter()
            .filter(|o| find(new, &o.name).is_none())
            .map(|o| o.name.clone())
            .collect();
        diff
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.input_changed.is_empty()
            && self.output_changed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caps(v: serde_json::Value) -> Capabilities {
        serde_json::from_value(v).unwrap()
    }

    fn action(name: &str, input: serde_json::Value, output: serde_json::Value) -> ActionInfo {
        ActionInfo {
            name: name.into(),
            description: format!("{name} does things"),
            input_schema: input,
            output_schema: output,
        }
    }

    #[test]
    fn a_capability_diff_names_each_item_added_and_removed() {
        let old = caps(json!({
            "http": ["https://a.example.com"],
            "secrets": ["token"],
            "kv_quota_bytes": 4096,
            "limits": {"timeout": "10s"}
        }));
        let new = caps(json!({
            "http": ["https://a.example.com", "https://b.example.com/api"],
            "private_ranges": ["192.168.1.0/24"],
            "kv_quota_bytes": 8192,
            "limits": {"timeout": "10s", "memory_mib": 32}
        }));
        let d = CapabilityDiff::between(&old, &new);
        assert_eq!(
            d.added,
            [
                "http https://b.example.com/api",
                "private range 192.168.1.0/24",
                "kv quota 8192 bytes",
                "memory 32 MiB"
            ]
        );
        assert_eq!(d.removed, ["secret token", "kv quota 4096 bytes"]);
        assert!(CapabilityDiff::between(&new, &new).is_empty());
        assert_eq!(CapabilityDiff::between(&new, &old).added, d.removed);
    }

    #[test]
    fn an_action_diff_sees_added_removed_and_changed_schemas() {
        let obj = |props: serde_json::Value| json!({"type": "object", "properties": props});
        let old = [
            action("lookup", obj(json!({"ip": {"type": "string"}})), obj(json!({}))),
            action("block", obj(json!({"ip": {"type": "string"}})), obj(json!({}))),
            action("same", obj(json!({})), obj(json!({}))),
        ];
        let new = [
            action(
                "lookup",
                obj(json!({"ip": {"type": "string"}, "full": {"type": "boolean"}})),
                obj(json!({})),
            ),
            action("same", obj(json!({})), obj(json!({"n": {"type": "integer"}}))),
            action("unblock", obj(json!({})), obj(json!({}))),
        ];
        let d = ActionDiff::between(&old, &new);
        assert_eq!(
            d,
            ActionDiff {
                added: vec!["unblock".into()],
                removed: vec!["block".into()],
                input_changed: vec!["lookup".into()],
                output_changed: vec!["same".into()],
            }
        );
        assert!(ActionDiff::between(&new, &new).is_empty());
    }

    #[test]
    fn schemas_equal_as_json_are_the_same_whatever_their_key_order() {
        let a: serde_json::Value = serde_json::from_str(r#"{"type":"object","required":["x"]}"#).unwrap();
        let b: serde_json::Value = serde_json::from_str(r#"{"required":["x"],"type":"object"}"#).unwrap();
        let d = ActionDiff::between(&[action("x", a.clone(), a)], &[action("x", b.clone(), b)]);
        assert!(d.is_empty(), "{d:?}");
    }
}
