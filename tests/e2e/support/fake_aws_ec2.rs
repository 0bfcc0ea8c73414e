//! A fake EC2 endpoint on loopback, its Query API as AWS documents it: `POST /` with a
//! form body (`Action=RunInstances|DescribeInstances|CreateTags|TerminateInstances`,
//! `Version=2016-11-15`, lists as `InstanceId.N`, tags as `Tag.N.Key`, filters as
//! `Filter.N.Name`/`Filter.N.Value.M`), XML answers in the API's namespace, and failures as
//! `<Response><Errors><Error><Code>..</Code><Message>..</Message></Error></Errors>
//! <RequestID>..</RequestID></Response>`.
//!
//! Every request is authenticated as EC2 does it: the SigV4 `Authorization` header's
//! credential scope must name the fake's access key, region and `ec2`, `X-Amz-Date` must be
//! within 5 minutes, and the signature is computed again here, with AWS's signer
//! (`aws-sigv4`) and the same secret key, over the request as it arrived (the signed headers,
//! the path and query, the body); a different one is `SignatureDoesNotMatch`. Instances are
//! kept in memory and change state as EC2's do (pending → running on the next describe,
//! shutting-down → terminated likewise); a RunInstances `ClientToken` seen before answers
//! with the instances it launched, launching nothing. `RequestLimitExceeded` (503) when told.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

const NS: &str = "http://ec2.amazonaws.com/doc/2016-11-15/";
const OWNER: &str = "123456789012";

#[derive(Clone)]
struct Instance {
    id: String,
    reservation_id: String,
    image_id: String,
    instance_type: String,
    subnet_id: String,
    state: &'static str,
    launch_time: String,
    private_ip: String,
    public_ip: String,
    tags: BTreeMap<String, String>,
}

#[derive(Default)]
struct Ec2 {
    instances: Vec<Instance>,
    /// RunInstances' ClientToken → the instance ids it launched.
    tokens: HashMap<String, Vec<String>>,
    requests: u64,
}

#[derive(Clone)]
struct Shared {
    region: String,
    access_key_id: String,
    secret_access_key: String,
    ec2: Arc<Mutex<Ec2>>,
    throttled: Arc<AtomicBool>,
    /// The `x-amz-security-token` of the last request that verified.
    last_session_token: Arc<Mutex<Option<String>>>,
}

pub struct FakeEc2 {
    pub addr: SocketAddr,
    shared: Shared,
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// An instance as the test reads it back from the fake.
#[derive(Debug, Clone, PartialEq)]
pub struct Seen {
    pub state: String,
    pub tags: BTreeMap<String, String>,
}

impl FakeEc2 {
    /// A fake for `region` that accepts requests signed with this key pair.
    pub async fn start(region: &str, access_key_id: &str, secret_access_key: &str) -> FakeEc2 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Shared {
            region: region.to_owned(),
            access_key_id: access_key_id.to_owned(),
            secret_access_key: secret_access_key.to_owned(),
            ec2: Arc::default(),
            throttled: Arc::default(),
            last_session_token: Arc::default(),
        };
        let app = Router::new().route("/", post(handle)).with_state(shared.clone());
        let stop = super::fake_http::serve(listener, app);
        FakeEc2 {
            addr,
            shared,
            _stop: stop,
        }
    }

    /// The endpoint's origin: the `endpoint` setting, and what to grant.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many instances were launched, ever.
    pub fn launched(&self) -> usize {
        self.shared.ec2.lock().unwrap().instances.len()
    }

    /// An instance's state and tags, as EC2 keeps them.
    pub fn instance(&self, id: &str) -> Option<Seen> {
        let ec2 = self.shared.ec2.lock().unwrap();
        ec2.instances.iter().find(|i| i.id == id).map(|i| Seen {
            state: i.state.to_owned(),
            tags: i.tags.clone(),
        })
    }

    /// Answer every request with `RequestLimitExceeded` (503) while on.
    pub fn throttle(&self, on: bool) {
        self.shared.throttled.store(on, Ordering::SeqCst);
    }

    pub fn last_session_token(&self) -> Option<String> {
        self.shared.last_session_token.lock().unwrap().clone()
    }
}

/// EC2's error answer.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{}</Code>\
         <Message>{}</Message></Error></Errors><RequestID>{}</RequestID></Response>",
        esc(code),
        esc(message),
        request_id()
    );
    (status, [("content-type", "text/xml;charset=UTF-8")], body).into_response()
}

/// An action's answer: `<{Action}Response>` in the API's namespace around `inner`.
fn answer(action: &str, inner: &str) -> Response {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<{action}Response xmlns=\"{NS}\">\
         <requestId>{}</requestId>{inner}</{action}Response>",
        request_id()
    );
    (StatusCode::OK, [("content-type", "text/xml;charset=UTF-8")], body).into_response()
}

fn request_id() -> String {
    let n = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        n as u32,
        (n >> 32) as u16,
        1,
        2,
        n as u64 & 0xffff_ffff_ffff
    )
}

/// XML text escaping for values the fake echoes (tags come from the test).
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The parts of `AWS4-HMAC-SHA256 Credential=AK/DATE/REGION/SERVICE/aws4_request,
/// SignedHeaders=a;b, Signature=hex`.
struct Authorization {
    scope: Vec<String>,
    signed_headers: Vec<String>,
    signature: String,
}

fn parse_authorization(value: &str) -> Option<Authorization> {
    let rest = value.strip_prefix("AWS4-HMAC-SHA256 ")?;
    let mut parts = HashMap::new();
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        parts.insert(k, v);
    }
    Some(Authorization {
        scope: parts.get("Credential")?.split('/').map(str::to_owned).collect(),
        signed_headers: parts
            .get("SignedHeaders")?
            .split(';')
            .map(str::to_owned)
            .collect(),
        signature: (*parts.get("Signature")?).to_owned(),
    })
}

/// EC2's check of the signature; None when it holds.
fn authenticate(s: &Shared, headers: &HeaderMap, uri: &Uri, body: &[u8]) -> Option<Response> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(auth) = header("authorization") else {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "MissingAuthenticationToken",
            "Request is missing Authentication Token",
        ));
    };
    let Some(auth) = parse_authorization(auth).filter(|a| a.scope.len() == 5) else {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "IncompleteSignature",
            "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters.",
        ));
    };
    if auth.scope[0] != s.access_key_id {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "AuthFailure",
            "AWS was not able to validate the provided access credentials",
        ));
    }
    if auth.scope[2] != s.region || auth.scope[3] != "ec2" || auth.scope[4] != "aws4_request" {
        return Some(error(
            StatusCode::UNAUTHORIZED,
            "AuthFailure",
            &format!(
                "Credential should be scoped to a valid region and the service ec2: {}",
                auth.scope[1..].join("/")
            ),
        ));
    }
    let Some(time) = header("x-amz-date")
        .and_then(|d| chrono::NaiveDateTime::parse_from_str(d, "%Y%m%dT%H%M%SZ").ok())
        .map(|t| SystemTime::UNIX_EPOCH + Duration::from_secs(t.and_utc().timestamp() as u64))
    else {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "IncompleteSignature",
            "X-Amz-Date is missing or not in the form YYYYMMDD'T'HHMMSS'Z'",
        ));
    };
    let skew = SystemTime::now()
        .duration_since(time)
        .unwrap_or_else(|e| e.duration());
    if skew > Duration::from_secs(300) {
        return Some(error(
            StatusCode::BAD_REQUEST,
            "RequestExpired",
            "Request has expired.",
        ));
    }
    if !auth.signed_headers.iter().any(|h| h == "host") {
        return Some(error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The host header must be signed.",
        ));
    }
    // Sign the request as it arrived, with the same secret, and compare.
    let session_token = header("x-amz-security-token").map(str::to_owned);
    let signed: Vec<(&str, &str)> = auth
        .signed_headers
        .iter()
        .filter_map(|name| Some((name.as_str(), header(name)?)))
        .collect();
    let url = format!(
        "http://{}{}",
        header("host").unwrap_or_default(),
        uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let identity = Credentials::new(
        s.access_key_id.as_str(),
        s.secret_access_key.as_str(),
        session_token.clone(),
        None,
        "fake-ec2",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&s.region)
        .name("ec2")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let expected = SignableRequest::new("POST", url, signed.into_iter(), SignableBody::Bytes(body))
        .ok()
        .and_then(|r| sign(r, &params).ok())
        .map(|out| out.signature().to_owned());
    if expected.as_deref() != Some(auth.signature.as_str()) {
        return Some(error(
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided. \
             Check your AWS Secret Access Key and signing method. Consult the service \
             documentation for details.",
        ));
    }
    *s.last_session_token.lock().unwrap() = session_token;
    None
}

async fn handle(State(s): State<Shared>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(refused) = authenticate(&s, &headers, &uri, &body) {
        return refused;
    }
    if s.throttled.load(Ordering::SeqCst) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "RequestLimitExceeded",
            "Request limit exceeded.",
        );
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    if form.get("Version").map(String::as_str) != Some("2016-11-15") {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValue",
            "The Version parameter must be 2016-11-15",
        );
    }
    let mut ec2 = s.ec2.lock().unwrap();
    ec2.requests += 1;
    match form.get("Action").map(String::as_str) {
        Some("RunInstances") => run_instances(&mut ec2, &form),
        Some("DescribeInstances") => describe_instances(&mut ec2, &form),
        Some("CreateTags") => create_tags(&mut ec2, &form),
        Some("TerminateInstances") => terminate_instances(&mut ec2, &form),
        other => error(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            &format!(
                "The action {} is not valid for this web service.",
                other.unwrap_or("")
            ),
        ),
    }
}

/// `{prefix}.1`, `{prefix}.2`, ... until one is missing.
fn list(form: &HashMap<String, String>, prefix: &str) -> Vec<String> {
    (1..)
        .map_while(|i| form.get(&format!("{prefix}.{i}")).cloned())
        .collect()
}

/// `{prefix}.N.Key` and `{prefix}.N.Value`.
fn tags(form: &HashMap<String, String>, prefix: &str) -> BTreeMap<String, String> {
    (1..)
        .map_while(|i| {
            let key = form.get(&format!("{prefix}.{i}.Key"))?;
            let value = form
                .get(&format!("{prefix}.{i}.Value"))
                .cloned()
                .unwrap_or_default();
            Some((key.clone(), value))
        })
        .collect()
}

fn missing(name: &str) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "MissingParameter",
        &format!("The request must contain the parameter {name}"),
    )
}

fn state_code(state: &str) -> u8 {
    match state {
        "pending" => 0,
        "running" => 16,
        "shutting-down" => 32,
        "terminated" => 48,
        "stopping" => 64,
        _ => 80,
    }
}

fn state_xml(tag: &str, state: &str) -> String {
    format!(
        "<{tag}><code>{}</code><name>{state}</name></{tag}>",
        state_code(state)
    )
}

fn instance_xml(i: &Instance) -> String {
    let mut tags = String::new();
    for (k, v) in &i.tags {
        let _ = write!(
            tags,
            "<item><key>{}</key><value>{}</value></item>",
            esc(k),
            esc(v)
        );
    }
    let public = if i.state == "running" || i.state == "pending" {
        format!("<ipAddress>{}</ipAddress>", i.public_ip)
    } else {
        String::new()
    };
    format!(
        "<item><instanceId>{}</instanceId><imageId>{}</imageId>{}\
         <privateDnsName>ip-{}.ec2.internal</privateDnsName><dnsName/><reason/>\
         <amiLaunchIndex>0</amiLaunchIndex><productCodes/><instanceType>{}</instanceType>\
         <launchTime>{}</launchTime><placement><availabilityZone>us-east-1a</availabilityZone>\
         <groupName/><tenancy>default</tenancy></placement><monitoring><state>disabled</state>\
         </monitoring><subnetId>{}</subnetId><vpcId>vpc-0a1b2c3d4e5f60718</vpcId>\
         <privateIpAddress>{}</privateIpAddress>{public}<groupSet><item>\
         <groupId>sg-0123456789abcdef0</groupId><groupName>default</groupName></item></groupSet>\
         <architecture>x86_64</architecture><rootDeviceType>ebs</rootDeviceType>\
         <tagSet>{tags}</tagSet></item>",
        i.id,
        esc(&i.image_id),
        state_xml("instanceState", i.state),
        i.private_ip.replace('.', "-"),
        esc(&i.instance_type),
        i.launch_time,
        esc(&i.subnet_id),
        i.private_ip,
    )
}

fn reservation_xml(reservation_id: &str, instances: &[&Instance]) -> String {
    let items: String = instances.iter().map(|i| instance_xml(i)).collect();
    format!(
        "<reservationId>{reservation_id}</reservationId><ownerId>{OWNER}</ownerId><groupSet/>\
         <instancesSet>{items}</instancesSet>"
    )
}

fn run_instances(ec2: &mut Ec2, form: &HashMap<String, String>) -> Response {
    let Some(image_id) = form.get("ImageId").cloned() else {
        return missing("ImageId");
    };
    if !image_id.starts_with("ami-") {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidAMIID.Malformed",
            &format!("Invalid id: \"{image_id}\" (expecting \"ami-...\")"),
        );
    }
    let count = |name: &str| form.get(name).and_then(|c| c.parse::<usize>().ok());
    let (Some(min), Some(max)) = (count("MinCount"), count("MaxCount")) else {
        return missing("MinCount and MaxCount");
    };
    if min == 0 || min > max {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidParameterValue",
            "MinCount must be at least 1 and at most MaxCount",
        );
    }
    let token = form.get("ClientToken").cloned().filter(|t| !t.is_empty());
    // The same ClientToken: the same launch, answered again; nothing new runs.
    if let Some(ids) = token.as_ref().and_then(|t| ec2.tokens.get(t)) {
        let launched: Vec<&Instance> = ec2.instances.iter().filter(|i| ids.contains(&i.id)).collect();
        let reservation = launched[0].reservation_id.clone();
        return answer("RunInstances", &reservation_xml(&reservation, &launched));
    }
    let tag_set = if form.get("TagSpecification.1.ResourceType").map(String::as_str) == Some("instance") {
        tags(form, "TagSpecification.1.Tag")
    } else {
        BTreeMap::new()
    };
    let reservation_id = format!("r-{:017x}", 0x0a00_0000_0000_0000u64 + ec2.requests);
    let launch_time = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S.000Z").to_string();
    let mut ids = Vec::new();
    for _ in 0..max {
        let n = ec2.instances.len() + 1;
        let instance = Instance {
            id: format!("i-{:017x}", 0x0f00_0000_0000_0000u64 + n as u64 * 7919),
            reservation_id: reservation_id.clone(),
            image_id: image_id.clone(),
            instance_type: form.get("InstanceType").cloned().unwrap_or("m1.small".into()),
            subnet_id: form
                .get("SubnetId")
                .cloned()
                .unwrap_or("subnet-0default0000000".into()),
            state: "pending",
            launch_time: launch_time.clone(),
            private_ip: format!("10.0.1.{}", 10 + n),
            public_ip: format!("203.0.113.{}", 10 + n),
            tags: tag_set.clone(),
        };
        ids.push(instance.id.clone());
        ec2.instances.push(instance);
    }
    if let Some(token) = token {
        ec2.tokens.insert(token, ids.clone());
    }
    let launched: Vec<&Instance> = ec2.instances.iter().filter(|i| ids.contains(&i.id)).collect();
    answer("RunInstances", &reservation_xml(&reservation_id, &launched))
}

/// The instances `ids` name, or the error EC2 gives for the first it cannot find.
fn find(ec2: &Ec2, ids: &[String]) -> Result<Vec<usize>, Box<Response>> {
    ids.iter()
        .map(|id| {
            let well_formed = id
                .strip_prefix("i-")
                .is_some_and(|hex| matches!(hex.len(), 8 | 17) && hex.bytes().all(|b| b.is_ascii_hexdigit()));
            if !well_formed {
                return Err(Box::new(error(
                    StatusCode::BAD_REQUEST,
                    "InvalidInstanceID.Malformed",
                    &format!("Invalid id: \"{id}\""),
                )));
            }
            ec2.instances.iter().position(|i| &i.id == id).ok_or_else(|| {
                Box::new(error(
                    StatusCode::BAD_REQUEST,
                    "InvalidInstanceID.NotFound",
                    &format!("The instance ID '{id}' does not exist"),
                ))
            })
        })
        .collect()
}

fn describe_instances(ec2: &mut Ec2, form: &HashMap<String, String>) -> Response {
    // Time passes between calls: what was starting runs, what was stopping is gone.
    for i in &mut ec2.instances {
        i.state = match i.state {
            "pending" => "running",
            "shutting-down" => "terminated",
            other => other,
        };
    }
    let ids = list(form, "InstanceId");
    let chosen: Vec<usize> = if ids.is_empty() {
        (0..ec2.instances.len()).collect()
    } else {
        match find(ec2, &ids) {
            Ok(found) => found,
            Err(refused) => return *refused,
        }
    };
    let filters: Vec<(String, Vec<String>)> = (1..)
        .map_while(|n| {
            let name = form.get(&format!("Filter.{n}.Name"))?;
            Some((name.clone(), list(form, &format!("Filter.{n}.Value"))))
        })
        .collect();
    let matches = |i: &Instance| {
        filters.iter().all(|(name, values)| {
            let actual = match name.as_str() {
                "instance-state-name" => Some(i.state.to_owned()),
                "instance-type" => Some(i.instance_type.clone()),
                tag => tag.strip_prefix("tag:").and_then(|k| i.tags.get(k).cloned()),
            };
            actual.is_some_and(|a| values.contains(&a))
        })
    };
    let selected: Vec<&Instance> = chosen
        .into_iter()
        .map(|n| &ec2.instances[n])
        .filter(|i| matches(i))
        .collect();
    // A search pages by MaxResults, its NextToken the index to go on from.
    let start: usize = form.get("NextToken").and_then(|t| t.parse().ok()).unwrap_or(0);
    let size: usize = form
        .get("MaxResults")
        .and_then(|m| m.parse().ok())
        .unwrap_or(usize::MAX);
    let page: Vec<&Instance> = selected.iter().skip(start).take(size).copied().collect();
    let next = if start.saturating_add(size) < selected.len() {
        format!("<nextToken>{}</nextToken>", start + size)
    } else {
        String::new()
    };
    let mut reservations: Vec<(&str, Vec<&Instance>)> = Vec::new();
    for i in page {
        match reservations.iter_mut().find(|(r, _)| *r == i.reservation_id) {
            Some((_, list)) => list.push(i),
            None => reservations.push((&i.reservation_id, vec![i])),
        }
    }
    let items: String = reservations
        .iter()
        .map(|(r, list)| format!("<item>{}</item>", reservation_xml(r, list)))
        .collect();
    answer(
        "DescribeInstances",
        &format!("<reservationSet>{items}</reservationSet>{next}"),
    )
}

fn create_tags(ec2: &mut Ec2, form: &HashMap<String, String>) -> Response {
    let ids = list(form, "ResourceId");
    if ids.is_empty() {
        return missing("ResourceId.1");
    }
    let new = tags(form, "Tag");
    if new.is_empty() {
        return missing("Tag.1.Key");
    }
    let found = match find(ec2, &ids) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    for n in found {
        ec2.instances[n].tags.extend(new.clone());
    }
    answer("CreateTags", "<return>true</return>")
}

fn terminate_instances(ec2: &mut Ec2, form: &HashMap<String, String>) -> Response {
    let ids = list(form, "InstanceId");
    if ids.is_empty() {
        return missing("InstanceId.1");
    }
    let found = match find(ec2, &ids) {
        Ok(found) => found,
        Err(refused) => return *refused,
    };
    let mut items = String::new();
    for n in found {
        let i = &mut ec2.instances[n];
        let previous = i.state;
        if previous != "terminated" {
            i.state = "shutting-down";
        }
        let _ = write!(
            items,
            "<item><instanceId>{}</instanceId>{}{}</item>",
            i.id,
            state_xml("currentState", i.state),
            state_xml("previousState", previous)
        );
    }
    answer(
        "TerminateInstances",
        &format!("<instancesSet>{items}</instancesSet>"),
    )
}
