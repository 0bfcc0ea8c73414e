//! The adapter of `wit/v0.2.0`: its bindings, its `error` record (with `retry-after`, in
//! milliseconds) to and from the host's, and `handle-webhook` with its records.

use std::time::Duration;

wasmtime::component::bindgen!({
    path: "../wit/v0.2.0",
    world: "osprey:plugin/integration",
    imports: { default: async },
    exports: { default: async },
    require_store_data_send: true,
    with: {
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
    },
});

super::adapter!();

impl From<types::Error> for ErrorRecord {
    fn from(e: types::Error) -> Self {
        ErrorRecord {
            kind: e.kind.into(),
            message: e.message,
            retryable: e.retryable,
            retry_after: e.retry_after.map(|ms| Duration::from_millis(u64::from(ms))),
        }
    }
}

impl From<ErrorRecord> for types::Error {
    fn from(e: ErrorRecord) -> Self {
        types::Error {
            kind: e.kind.into(),
            message: e.message,
            retryable: e.retryable,
            retry_after: e
                .retry_after
                .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
        }
    }
}

/// Instantiate in `store` and call `handle-webhook`.
pub(super) async fn handle_webhook(
    pre: &IntegrationPre<CallState>,
    store: &mut wasmtime::Store<CallState>,
    request: &host_wit::WebhookRequest,
    ctx: &CallContext,
) -> wasmtime::Result<Result<host_wit::WebhookOutcome, ErrorRecord>> {
    let ctx = types::Context {
        run_id: ctx.run_id.clone(),
        idempotency_key: ctx.idempotency_key.clone(),
    };
    let request = types::WebhookRequest::from(request.clone());
    let instance = pre.instantiate_async(&mut *store).await?;
    let result = instance.call_handle_webhook(&mut *store, &request, &ctx).await?;
    Ok(result
        .map(host_wit::WebhookOutcome::from)
        .map_err(ErrorRecord::from))
}

impl From<host_wit::WebhookRequest> for types::WebhookRequest {
    fn from(r: host_wit::WebhookRequest) -> Self {
        types::WebhookRequest {
            method: r.method,
            path: r.path,
            query: r.query,
            headers: r.headers,
            body: r.body,
        }
    }
}

impl From<types::WebhookOutcome> for host_wit::WebhookOutcome {
    fn from(o: types::WebhookOutcome) -> Self {
        host_wit::WebhookOutcome {
            response: host_wit::WebhookResponse {
                status: o.response.status,
                headers: o.response.headers,
                body: o.response.body,
            },
            events: o
                .events
                .into_iter()
                .map(|e| match e {
                    types::Event::Alert(json) => host_wit::WebhookEvent::Alert(json),
                    types::Event::Answer(a) => host_wit::WebhookEvent::Answer(host_wit::Answer {
                        question: a.question,
                        answer: a.answer,
                        email: a.email,
                        by: a.by,
                    }),
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_request_goes_to_the_guest_unchanged() {
        let host = host_wit::WebhookRequest {
            method: "POST".into(),
            path: "/events".into(),
            query: "a=1&b=%20".into(),
            headers: vec![("x-sig".into(), "v0=ab".into()), ("x-sig".into(), "two".into())],
            body: b"{\"k\":1}".to_vec(),
        };
        let guest = types::WebhookRequest::from(host.clone());
        assert_eq!(guest.method, "POST");
        assert_eq!(guest.path, "/events");
        assert_eq!(guest.query, host.query);
        assert_eq!(guest.headers, host.headers);
        assert_eq!(guest.body, host.body);
    }

    #[test]
    fn a_webhook_outcome_keeps_its_response_and_events_in_order() {
        let guest = types::WebhookOutcome {
            response: types::WebhookResponse {
                status: 202,
                headers: vec![("content-type".into(), "text/plain".into())],
                body: b"ok".to_vec(),
            },
            events: vec![
                types::Event::Alert("{\"title\":\"x\"}".into()),
                types::Event::Answer(types::Answer {
                    question: "q1".into(),
                    answer: "{\"choice\":\"approve\"}".into(),
                    email: Some("ana@example.com".into()),
                    by: "slack:U123".into(),
                }),
            ],
        };
        let host = host_wit::WebhookOutcome::from(guest);
        assert_eq!(host.response.status, 202);
        assert_eq!(
            host.response.headers,
            vec![("content-type".to_owned(), "text/plain".to_owned())]
        );
        assert_eq!(host.response.body, b"ok");
        assert_eq!(
            host.events[0],
            host_wit::WebhookEvent::Alert("{\"title\":\"x\"}".into())
        );
        let host_wit::WebhookEvent::Answer(a) = &host.events[1] else {
            panic!("{:?}", host.events[1]);
        };
        assert_eq!(
            (a.question.as_str(), a.email.as_deref(), a.by.as_str()),
            ("q1", Some("ana@example.com"), "slack:U123")
        );
    }
}
