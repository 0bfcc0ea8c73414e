use crate::bindings::osprey::plugin::types as wit;
use crate::{Error, Result};
use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};

/// Where a call comes from: the playbook run and an idempotency key that stays the same
/// when the host retries the same step.
#[derive(Debug, Clone)]
pub struct Context {
    run_id: String,
    idempotency_key: String,
}

impl Context {
    /// The playbook run (or manual call) this call belongs to.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }
    /// Same value on a retry of the same step: pass it to vendors that support
    /// idempotency keys, or remember it in `kv` to skip work already done.
    pub fn idempotency_key(&self) -> &str {
        &self.idempotency_key
    }
}

type Handler = Box<dyn Fn(&Context, &str) -> Result<String>>;

struct ActionDef {
    name: &'static str,
    description: &'static str,
    input_schema: fn() -> String,
    output_schema: fn() -> String,
    handler: Handler,
}

/// A plugin: its name, version, description and actions. Build one in a function and pass
/// that function to [`export_plugin!`](crate::export_plugin).
pub struct Plugin {
    name: &'static str,
    version: &'static str,
    description: &'static str,
    actions: Vec<ActionDef>,
}

impl Plugin {
    /// A plugin with no actions yet. `name` and `version` must match `plugin.toml`.
    pub fn new(name: &'static str, version: &'static str, description: &'static str) -> Self {
        Plugin {
            name,
            version,
            description,
            actions: Vec::new(),
        }
    }

    /// Add the action `name`, run by `handler`. Its input and output JSON Schemas are derived
    /// from `I` and `O` (`#[derive(JsonSchema)]`; doc comments become descriptions).
    pub fn action<I, O>(
        mut self,
        name: &'static str,
        description: &'static str,
        handler: fn(&Context, I) -> Result<O>,
    ) -> Self
    where
        I: DeserializeOwned + JsonSchema + 'static,
        O: Serialize + JsonSchema + 'static,
    {
        assert!(
            !self.actions.iter().any(|a| a.name == name),
            "action '{name}' is defined twice"
        );
        self.actions.push(ActionDef {
            name,
            description,
            input_schema: schema_of::<I>,
            output_schema: schema_of::<O>,
            handler: Box::new(move |ctx, input| {
                let input: I =
                    serde_json::from_str(input).map_err(|e| Error::invalid_input(format!("input: {e}")))?;
                let output = handler(ctx, input)?;
                serde_json::to_string(&output)
                    .map_err(|e| Error::internal(format!("could not encode the output: {e}")))
            }),
        });
        self
    }
}

fn schema_of<T: JsonSchema>() -> String {
    serde_json::to_string(&schemars::schema_for!(T)).expect("a JSON Schema is valid JSON")
}

/// `describe`, for [`export_plugin!`](crate::export_plugin).
pub fn describe(plugin: &Plugin) -> wit::Descriptor {
    wit::Descriptor {
        name: plugin.name.to_owned(),
        version: plugin.version.to_owned(),
        description: plugin.description.to_owned(),
        actions: plugin
            .actions
            .iter()
            .map(|a| wit::Action {
                name: a.name.to_owned(),
                description: a.description.to_owned(),
                input_schema: (a.input_schema)(),
                output_schema: (a.output_schema)(),
            })
            .collect(),
    }
}

/// `invoke`, for [`export_plugin!`](crate::export_plugin).
pub fn invoke(
    plugin: &Plugin,
    action: &str,
    input: &str,
    context: wit::Context,
) -> std::result::Result<String, wit::Error> {
    let ctx = Context {
        run_id: context.run_id,
        idempotency_key: context.idempotency_key,
    };
    match plugin.actions.iter().find(|a| a.name == action) {
        Some(def) => (def.handler)(&ctx, input).map_err(Into::into),
        None => {
            let known: Vec<&str> = plugin.actions.iter().map(|a| a.name).collect();
            Err(Error::invalid_input(format!(
                "plugin '{}' has no action '{action}'; it has: {}",
                plugin.name,
                known.join(", ")
            ))
            .into())
        }
    }
}
