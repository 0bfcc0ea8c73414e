//! Webhooks: a vendor's HTTP request to `/hooks/PLUGIN/...` handed to the plugin's
//! `handle-webhook` export (WIT 0.2.0 on), in a fresh instance like every call. Who may
//! receive them is the grant's (`webhooks`); the server (`server/hooks.rs`) bounds the
//! request and answers.

use super::wit::{WebhookEvent, WebhookRequest, WebhookResponse, WitVersion};
use super::{CallContext, CallError, HttpEvent, LoadedPlugin, Runtime, call};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;

/// A webhook the plugin handled: its response (not sanitized yet) and its events.
#[derive(Debug, Clone)]
pub struct WebhookCall {
    pub response: WebhookResponse,
    pub events: Vec<WebhookEvent>,
    pub duration: Duration,
    pub http: Vec<HttpEvent>,
}

/// Why a webhook got no response from a plugin.
#[derive(Debug, Error)]
pub enum WebhookError {
    /// No plugin of that name is loaded.
    #[error("no plugin named '{0}' is installed")]
    NotInstalled(String),
    /// The plugin speaks a contract without `handle-webhook`.
    #[error("plugin '{plugin}' was built against osprey:plugin@{version}, which has no webhooks")]
    Contract { plugin: String, version: WitVersion },
    /// The operator did not grant it `webhooks`.
    #[error("plugin '{0}' is not granted webhooks (`osprey plugin grant {0} --webhooks`)")]
    NotGranted(String),
    /// The call failed: trapped, timed out, broke a limit, or the plugin returned an error.
    #[error(transparent)]
    Call(CallError),
}

impl Runtime {
    /// The plugin `plugin` if it receives webhooks now: installed, built against a contract
    /// with `handle-webhook`, and granted `webhooks`. The server asks before it reads a
    /// request's body; [`handle_webhook`](Runtime::handle_webhook) asks again.
    pub fn webhook_target(&self, plugin: &str) -> Result<Arc<LoadedPlugin>, WebhookError> {
        let loaded = self
            .get(plugin)
            .map_err(|_| WebhookError::NotInstalled(plugin.to_owned()))?;
        if !loaded.pre.has_webhooks() {
            return Err(WebhookError::Contract {
                plugin: plugin.to_owned(),
                version: loaded.contract(),
            });
        }
        if !loaded.policy().grant.webhooks {
            return Err(WebhookError::NotGranted(plugin.to_owned()));
        }
        Ok(loaded)
    }

    /// Hand `request` to `plugin`'s `handle-webhook`, in a fresh instance under its grant
    /// and limits, as [`Runtime::call`] runs an action. Only a plugin granted `webhooks`
    /// and built against a contract that has them is called; for any other, nothing runs.
    pub async fn handle_webhook(
        &self,
        plugin: &str,
        request: &WebhookRequest,
    ) -> Result<WebhookCall, WebhookError> {
        let loaded = self.webhook_target(plugin)?;
        let id = format!("hook-{}", crate::store::new_id('h'));
        let ctx = CallContext {
            run_id: id.clone(),
            idempotency_key: id,
        };
        let result = call::handle_webhook(self, &loaded, request, ctx).await;
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(e) => e.kind.to_string(),
        };
        self.inner
            .options
            .metrics
            .plugin_call(plugin, "handle-webhook", &outcome);
        result.map_err(WebhookError::Call)
    }
}
