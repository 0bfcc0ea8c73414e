//! A fake Palo Alto Networks AutoFocus on loopback: the Threat Intelligence Card summary,
//! `GET /api/v1.0/tic?indicatorType=..&indicatorValue=..&includeTags=..`, authenticated with
//! an `apiKey` header, answering in AutoFocus's JSON shapes: the card (epoch-millisecond
//! timestamps, `latestPanVerdicts`, `wildfireRelatedSampleVerdictCounts`, tags with
//! `public_tag_name`, `bucketInfo`), 404 for an indicator it has no card for, its
//! `{"message": ...}` error shape for a wrong key (401) and missing parameters (409), and
//! the documented 503 "Minute Bucket Exceeded" with `bucket_info` when the points are spent.

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What the fake knows about one indicator.
#[derive(Clone)]
enum Card {
    /// A card whose PAN verdict is this ("MALWARE", "GRAYWARE", "BENIGN", ...).
    Verdict(String),
    /// A 200 whose body is not the JSON AutoFocus sends.
    Malformed,
}

#[derive(Clone)]
struct Shared {
    api_key: String,
    requests: Arc<AtomicUsize>,
    authorized: Arc<AtomicUsize>,
    /// Indicator values (lower case) to what the fake answers for them.
    cards: Arc<Mutex<HashMap<String, Card>>>,
    /// Answer 503 "Minute Bucket Exceeded" to every authorized request.
    quota_spent: Arc<AtomicBool>,
    /// Answer a bare 503, as a load balancer would during an outage.
    outage: Arc<AtomicBool>,
    /// The query string of the last request.
    last_query: Arc<Mutex<HashMap<String, String>>>,
}

pub struct FakeAutofocus {
    pub addr: SocketAddr,
    shared: Shared,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeAutofocus {
    pub async fn start(api_key: &str) -> FakeAutofocus {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            api_key: api_key.to_owned(),
            requests: Arc::default(),
            authorized: Arc::default(),
            cards: Arc::default(),
            quota_spent: Arc::default(),
            outage: Arc::default(),
            last_query: Arc::default(),
        };
        let app = Router::new()
            .route("/api/v1.0/tic", get(tic))
            .with_state(shared.clone());
        let stop = super::fake_http::serve(listener, app);
        FakeAutofocus {
            addr,
            shared,
            _stop: stop,
        }
    }

    /// What to grant: the fake's origin.
    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// What to set as the plugin's `base_url`: the real API's path on the fake.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1.0", self.addr)
    }

    /// Give `value` a card with this PAN verdict ("MALWARE", "BENIGN", ...).
    pub fn set_verdict(&self, value: &str, verdict: &str) {
        self.shared
            .cards
            .lock()
            .unwrap()
            .insert(value.to_ascii_lowercase(), Card::Verdict(verdict.to_owned()));
    }

    /// Answer `value` with a 200 that is not AutoFocus's JSON.
    pub fn set_malformed(&self, value: &str) {
        self.shared
            .cards
            .lock()
            .unwrap()
            .insert(value.to_ascii_lowercase(), Card::Malformed);
    }

    pub fn quota_spent(&self, on: bool) {
        self.shared.quota_spent.store(on, Ordering::SeqCst);
    }

    pub fn outage(&self, on: bool) {
        self.shared.outage.store(on, Ordering::SeqCst);
    }

    /// Every request that arrived.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Requests that carried the right API key.
    pub fn authorized(&self) -> usize {
        self.shared.authorized.load(Ordering::SeqCst)
    }

    /// The query parameters of the last request.
    pub fn last_query(&self) -> HashMap<String, String> {
        self.shared.last_query.lock().unwrap().clone()
    }
}

fn message(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "message": message }))).into_response()
}

const TYPES: [&str; 5] = ["ipv4_address", "ipv6_address", "domain", "url", "filehash"];

async fn tic(
    State(s): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    s.requests.fetch_add(1, Ordering::SeqCst);
    *s.last_query.lock().unwrap() = query.clone();
    if s.outage.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable").into_response();
    }
    let key = headers.get("apikey").and_then(|v| v.to_str().ok());
    if key != Some(s.api_key.as_str()) {
        return message(StatusCode::UNAUTHORIZED, "Invalid API Key");
    }
    s.authorized.fetch_add(1, Ordering::SeqCst);
    if s.quota_spent.load(Ordering::SeqCst) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "message": "Minute Bucket Exceeded",
                "bucket_info": {
                    "minute_points": 200, "daily_points": 25000,
                    "minute_bucket_start": "2015-09-13 01:23:23", "daily_bucket_start": "2015-09-12 14:47:43",
                    "minute_points_remaining": 0, "daily_points_remaining": 24715,
                    "wait_in_seconds": 53.086
                }
            })),
        )
            .into_response();
    }
    let missing: Vec<&str> = ["indicatorType", "indicatorValue", "includeTags"]
        .into_iter()
        .filter(|p| query.get(*p).is_none_or(|v| v.is_empty()))
        .collect();
    if !missing.is_empty() {
        return message(
            StatusCode::CONFLICT,
            &format!(
                "Missing Query Parameters: {}",
                serde_json::to_string(&missing).unwrap()
            ),
        );
    }
    // The reference lists the types in lower case and its example uses upper case.
    let kind = query["indicatorType"].to_ascii_lowercase();
    if !TYPES.contains(&kind.as_str()) {
        return message(StatusCode::CONFLICT, "invalid indicatorType");
    }
    let include_tags = match query["includeTags"].as_str() {
        "true" => true,
        "false" => false,
        _ => return message(StatusCode::CONFLICT, "invalid includeTags"),
    };
    let value = &query["indicatorValue"];
    let card = s.cards.lock().unwrap().get(&value.to_ascii_lowercase()).cloned();
    match card {
        None => (
            StatusCode::NOT_FOUND,
            [("content-type", "text/html")],
            "<html><body><h1>404 Not Found</h1></body></html>",
        )
            .into_response(),
        Some(Card::Malformed) => (
            StatusCode::OK,
            [("content-type", "application/json")],
            "{\"indicator\": {\"indicatorValue\": ",
        )
            .into_response(),
        Some(Card::Verdict(verdict)) => Json(card_json(&kind, value, &verdict, include_tags)).into_response(),
    }
}

fn card_json(kind: &str, value: &str, verdict: &str, include_tags: bool) -> Value {
    let bad = matches!(verdict, "MALWARE" | "PHISHING" | "C2" | "GRAYWARE");
    // Files get WildFire's verdict; IPs, domains and URLs PAN-DB's.
    let source = if kind == "filehash" { "WF_SAMPLE" } else { "PAN_DB" };
    let mut indicator = json!({
        "indicatorValue": value,
        "indicatorType": kind.to_ascii_uppercase(),
        "summaryGenerationTs": 1_590_645_720_757_u64,
        "firstSeenTsGlobal": if bad { json!(1_566_261_495_000_u64) } else { Value::Null },
        "lastSeenTsGlobal": if bad { json!(1_590_635_059_000_u64) } else { Value::Null },
        "latestPanVerdicts": { source: verdict },
        "seenByDataSourceIds": if bad { json!(["WF_SAMPLE"]) } else { json!([]) },
    });
    if kind != "filehash" {
        indicator["wildfireRelatedSampleVerdictCounts"] = if bad {
            json!({"MALWARE": 95, "GRAYWARE": 5})
        } else {
            json!({})
        };
    }
    if kind == "domain" {
        for field in ["whoisAdminCountry", "whoisRegistrar", "whoisDomainCreationDate"] {
            indicator[field] = Value::Null;
        }
    }
    let tags = if bad && include_tags {
        json!([
            {
                "support_id": 1, "tag_name": "Upatre", "public_tag_name": "Unit42.Upatre",
                "tag_definition_scope_id": 4, "tag_definition_status_id": 1, "count": 10_223_704,
                "lasthit": "2020-05-27 21:32:55",
                "description": "The Upatre Trojan typically arrives as an e-mail attachment.",
                "customer_name": "Palo Alto Networks Unit42", "customer_industry": "High Tech",
                "upVotes": 2, "downVotes": null, "myVote": null, "source": "Unit 42",
                "tag_class_id": 3, "tag_definition_id": 29449,
                "tagGroups": [{"tag_group_name": "Downloader", "description": "Downloads more malware."}]
            },
            {
                "support_id": 1, "tag_name": "FormBook", "public_tag_name": "Unit42.FormBook",
                "tag_definition_scope_id": 4, "tag_definition_status_id": 1, "count": 53_034,
                "lasthit": "2020-05-27 21:43:16",
                "description": "FormBook is a data stealer and form grabber.",
                "customer_name": "Palo Alto Networks Unit42", "customer_industry": "High Tech",
                "upVotes": 1, "downVotes": null, "myVote": null, "source": "Unit 42",
                "tag_class_id": 3, "tag_definition_id": 54189
            }
        ])
    } else {
        json!([])
    };
    json!({
        "indicator": indicator,
        "tags": tags,
        "bucketInfo": {
            "minutePoints": 200, "dailyPoints": 25000,
            "minuteBucketStart": "2020-11-20 05:02:52", "dailyBucketStart": "2020-11-20 04:52:40",
            "minutePointsRemaining": 196, "dailyPointsRemaining": 24980, "waitInSeconds": 0
        }
    })
}
