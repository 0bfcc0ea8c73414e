//! The EC2 Query API's request: a form-encoded body with `Action`, `Version` and the action's
//! parameters, lists and maps flattened the way the API names them (`InstanceId.1`,
//! `Tag.1.Key`, `Filter.1.Value.2`).

use std::collections::BTreeMap;

/// The API version every request names (EC2's current one).
pub(crate) const VERSION: &str = "2016-11-15";

/// The parameters of one Query API request, in the order they were added.
#[derive(Debug, Default)]
pub(crate) struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// `Action=action&Version=2016-11-15`.
    pub(crate) fn new(action: &str) -> Query {
        let mut q = Query::default();
        q.set("Action", action);
        q.set("Version", VERSION);
        q
    }

    /// The action this request names.
    pub(crate) fn action(&self) -> &str {
        &self.pairs[0].1
    }

    /// One parameter.
    pub(crate) fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Self {
        self.pairs.push((name.to_owned(), value.into()));
        self
    }

    /// A list: `{name}.1`, `{name}.2`, ...
    pub(crate) fn list(&mut self, name: &str, values: &[String]) -> &mut Self {
        for (i, v) in values.iter().enumerate() {
            self.set(&format!("{name}.{}", i + 1), v.clone());
        }
        self
    }

    /// Tags: `{prefix}.N.Key` and `{prefix}.N.Value`.
    pub(crate) fn tags(&mut self, prefix: &str, tags: &BTreeMap<String, String>) -> &mut Self {
        for (i, (k, v)) in tags.iter().enumerate() {
            self.set(&format!("{prefix}.{}.Key", i + 1), k.clone());
            self.set(&format!("{prefix}.{}.Value", i + 1), v.clone());
        }
        self
    }

    /// Filters: `Filter.N.Name` and `Filter.N.Value.M`.
    pub(crate) fn filters(&mut self, filters: &BTreeMap<String, Vec<String>>) -> &mut Self {
        for (i, (name, values)) in filters.iter().enumerate() {
            self.set(&format!("Filter.{}.Name", i + 1), name.clone());
            self.list(&format!("Filter.{}.Value", i + 1), values);
        }
        self
    }

    /// The form-encoded body.
    pub(crate) fn body(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&self.pairs)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_tags_and_filters_are_flattened_as_the_api_names_them() {
        let mut q = Query::new("DescribeInstances");
        q.list("InstanceId", &["i-1".into(), "i-2".into()]);
        q.filters(&BTreeMap::from([(
            "tag:Team".to_owned(),
            vec!["soc".to_owned(), "red team".to_owned()],
        )]));
        assert_eq!(q.action(), "DescribeInstances");
        assert_eq!(
            q.body(),
            "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-1&InstanceId.2=i-2\
             &Filter.1.Name=tag%3ATeam&Filter.1.Value.1=soc&Filter.1.Value.2=red+team"
        );
        let mut q = Query::new("CreateTags");
        q.tags(
            "Tag",
            &BTreeMap::from([
                ("b".to_owned(), "2".to_owned()),
                ("a".to_owned(), "1&".to_owned()),
            ]),
        );
        assert_eq!(
            q.body(),
            "Action=CreateTags&Version=2016-11-15&Tag.1.Key=a&Tag.1.Value=1%26&Tag.2.Key=b&Tag.2.Value=2"
        );
    }
}
