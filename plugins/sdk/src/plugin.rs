use crate::bindings::osprey::plugin::types as wit;
use crate::{Error, Result, webhook};
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

/// A webhook handler: see [`Plugin::webhook`].
pub type WebhookHandler = fn(&Context, webhook::Request) -> Result<webhook::Response>;

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
    webhook: Option<WebhookHandler>,
}

impl Plugin {
    /// A plugin with no actions yet. `name` and `version` must match `plugin.toml`.
    pub fn new(name: &'static str, version: &'static str, description: &'static str) -> Self {
        Plugin {
            name,
            version,
            description,
            actions: Vec::new(),
            webhook: None,
        }
    }

    /// Handle the HTTP requests the vendor sends to `/hooks/NAME/...` with `handler`
    /// (see [`webhook`](crate::webhook): the handler must check the vendor's signature). A
    /// plugin without a handler answers every webhook 404.
    pub fn webhook(mut self, handler: WebhookHandler) -> Self {
        self.webhook = Some(handler);
        self
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

/// `handle-webhook`, for [`export_plugin!`](crate::export_plugin).
pub fn handle_webhook(
    plugin: &Plugin,
    request: wit::WebhookRequest,
    context: wit::Context,
) -> std::result::Result<wit::WebhookOutcome, wit::Error> {
    let ctx = Context {
        run_id: context.run_id,
        idempotency_key: context.idempotency_key,
    };
    let response = match plugin.webhook {
        Some(handler) => handler(&ctx, request.into()).map_err(wit::Error::from)?,
        None => webhook::Response::new(404)
            .json(&serde_json::json!({
                "error": format!("plugin '{}' does not handle webhooks", plugin.name)
            }))
            .map_err(wit::Error::from)?,
    };
    Ok(response.into_wit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    /// Input of `greet`.
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct GreetInput {
        /// Who to greet.
        name: String,
    }

    #[derive(Serialize, JsonSchema)]
    struct GreetOutput {
        greeting: String,
        run: String,
    }

    fn greet(ctx: &Context, input: GreetInput) -> Result<GreetOutput> {
        if input.name.is_empty() {
            return Err(Error::rate_limited("slow down"));
        }
        Ok(GreetOutput {
            greeting: format!("hello {}", input.name),
            run: format!("{}/{}", ctx.run_id(), ctx.idempotency_key()),
        })
    }

    fn plugin() -> Plugin {
        Plugin::new("greeter", "1.2.3", "Says hello").action("greet", "Greets someone", greet)
    }

    fn context() -> wit::Context {
        wit::Context {
            run_id: "run-1".into(),
            idempotency_key: "run-1/3".into(),
        }
    }

    #[test]
    fn describe_lists_the_actions_with_schemas_from_their_types() {
        let d = describe(&plugin());
        assert_eq!((d.name.as_str(), d.version.as_str()), ("greeter", "1.2.3"));
        assert_eq!(d.actions.len(), 1);
        let input: serde_json::Value = serde_json::from_str(&d.actions[0].input_schema).unwrap();
        assert_eq!(input["properties"]["name"]["description"], "Who to greet.");
        assert_eq!(input["required"], serde_json::json!(["name"]));
        assert_eq!(input["additionalProperties"], false);
        let output: serde_json::Value = serde_json::from_str(&d.actions[0].output_schema).unwrap();
        assert!(output["properties"]["greeting"].is_object(), "{output}");
    }

    #[test]
    fn invoke_runs_the_named_action_with_the_calls_context() {
        let out = invoke(&plugin(), "greet", r#"{"name":"ana"}"#, context()).unwrap();
        assert_eq!(out, r#"{"greeting":"hello ana","run":"run-1/run-1/3"}"#);
    }

    #[test]
    fn errors_come_back_typed() {
        let p = plugin();
        let e = invoke(&p, "wave", "{}", context()).unwrap_err();
        assert!(matches!(e.kind, wit::ErrorKind::InvalidInput));
        assert_eq!(e.message, "plugin 'greeter' has no action 'wave'; it has: greet");
        let e = invoke(&p, "greet", r#"{"name":1}"#, context()).unwrap_err();
        assert!(matches!(e.kind, wit::ErrorKind::InvalidInput) && e.message.starts_with("input: "));
        let e = invoke(&p, "greet", r#"{"name":""}"#, context()).unwrap_err();
        assert!(matches!(e.kind, wit::ErrorKind::RateLimited) && e.retryable);
    }

    fn hook_request(body: &str) -> wit::WebhookRequest {
        wit::WebhookRequest {
            method: "POST".into(),
            path: "/events".into(),
            query: String::new(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_plugin_without_a_webhook_handler_answers_404() {
        let out = handle_webhook(&plugin(), hook_request("{}"), context()).unwrap();
        assert_eq!(out.response.status, 404);
        assert!(out.events.is_empty());
    }

    fn hook(ctx: &Context, request: webhook::Request) -> Result<webhook::Response> {
        let v: serde_json::Value = request.json()?;
        webhook::Response::new(202)
            .header("x-run", ctx.run_id())
            .alert(&serde_json::json!({"title": v["title"]}))
    }

    #[test]
    fn a_webhook_handler_answers_with_its_response_and_events() {
        let p = plugin().webhook(hook);
        let out = handle_webhook(&p, hook_request(r#"{"title":"t"}"#), context()).unwrap();
        assert_eq!(out.response.status, 202);
        assert_eq!(
            out.response.headers,
            vec![("x-run".to_owned(), "run-1".to_owned())]
        );
        assert!(matches!(&out.events[..], [wit::Event::Alert(a)] if a == r#"{"title":"t"}"#));
        let e = handle_webhook(&p, hook_request("nope"), context()).unwrap_err();
        assert!(matches!(e.kind, wit::ErrorKind::InvalidInput), "{e:?}");
    }

    #[test]
    #[should_panic(expected = "action 'greet' is defined twice")]
    fn an_action_defined_twice_is_a_bug_found_at_once() {
        let _ = plugin().action("greet", "again", greet);
    }
}
