//! A fake Bonusly API v1 on loopback: `GET /api/v1/users/me`, `GET /api/v1/users` (`limit`,
//! `skip`, `email`), `POST /api/v1/bonuses` (a reason in Bonusly's own form, `+10 @username
//! for ... #value`, or `receiver_email` and `amount` with `hashtag`), authenticated with an
//! access token as a bearer header. It answers in Bonusly's envelope, `{"success": true,
//! "result": ...}` or `{"success": false, "message": ...}`: 401 for a wrong token, 422 for a
//! bonus it refuses (no receiver, no hashtag, a balance too small), 429 with `Retry-After`
//! when told to. It counts the bonuses given, and can hold its answer to a give it made (as
//! a slow network would) until the test releases it.

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

#[derive(Clone)]
struct User {
    id: String,
    username: String,
    email: String,
    first_name: String,
    last_name: String,
    giving_balance: i64,
    earning_balance: i64,
}

impl User {
    fn json(&self) -> Value {
        json!({
            "id": self.id, "short_name": self.first_name, "display_name": format!("{} {}", self.first_name, self.last_name),
            "username": self.username, "email": self.email, "path": format!("/company/users/{}", self.id),
            "first_name": self.first_name, "last_name": self.last_name, "user_mode": "normal",
            "can_give": true, "can_receive": true, "country": "US", "time_zone": "UTC",
            "earning_balance": self.earning_balance,
            "earning_balance_with_currency": format!("{} points", self.earning_balance),
            "lifetime_earnings": self.earning_balance, "status": "active"
        })
    }
}

#[derive(Default)]
struct Books {
    users: Vec<User>,
    bonuses: Vec<Value>,
}

#[derive(Clone)]
struct Shared {
    token: String,
    books: Arc<Mutex<Books>>,
    rate_limited: Arc<AtomicBool>,
    /// Hold the answer to each give, once made, until `release` is notified.
    hold: Arc<AtomicBool>,
    release: Arc<Notify>,
}

pub struct FakeBonusly {
    pub addr: SocketAddr,
    shared: Shared,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeBonusly {
    /// A company of three: `bo` (the token's user, 40 points to give), `ana` and `cy`.
    pub async fn start(token: &str) -> FakeBonusly {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let user = |id: &str, username: &str, first: &str, last: &str| User {
            id: id.into(),
            username: username.into(),
            email: format!("{username}@example.com"),
            first_name: first.into(),
            last_name: last.into(),
            giving_balance: 40,
            earning_balance: 0,
        };
        let books = Books {
            users: vec![
                user("5f1a00000000000000000b01", "bo", "Bo", "Giver"),
                user("5f1a00000000000000000a01", "ana", "Ana", "Lima"),
                user("5f1a00000000000000000c01", "cy", "Cy", "Young"),
            ],
            bonuses: Vec::new(),
        };
        let shared = Shared {
            token: token.to_owned(),
            books: Arc::new(Mutex::new(books)),
            rate_limited: Arc::default(),
            hold: Arc::default(),
            release: Arc::default(),
        };
        let app = Router::new()
            .route("/api/v1/users/me", get(me))
            .route("/api/v1/users", get(users))
            .route("/api/v1/bonuses", post(give))
            .with_state(shared.clone());
        let stop = super::fake_http::serve(listener, app);
        FakeBonusly {
            addr,
            shared,
            _stop: stop,
        }
    }

    /// What to set as `base_url` and grant: the fake's origin.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Bonuses given so far.
    pub fn gives(&self) -> usize {
        self.shared.books.lock().unwrap().bonuses.len()
    }

    /// `username`'s giving balance.
    pub fn giving_balance(&self, username: &str) -> i64 {
        let books = self.shared.books.lock().unwrap();
        books
            .users
            .iter()
            .find(|u| u.username == username)
            .unwrap()
            .giving_balance
    }

    /// Set `username`'s giving balance (a new month's allowance).
    pub fn set_giving_balance(&self, username: &str, points: i64) {
        let mut books = self.shared.books.lock().unwrap();
        let user = books.users.iter_mut().find(|u| u.username == username).unwrap();
        user.giving_balance = points;
    }

    /// Add a user to the company, with nothing to give.
    pub fn add_user(&self, id: &str, username: &str, first: &str, last: &str) {
        self.shared.books.lock().unwrap().users.push(User {
            id: id.into(),
            username: username.into(),
            email: format!("{username}@example.com"),
            first_name: first.into(),
            last_name: last.into(),
            giving_balance: 0,
            earning_balance: 0,
        });
    }

    /// The bonuses given so far, in order: each receiver's username with the amount.
    pub fn given(&self) -> Vec<(String, i64)> {
        let books = self.shared.books.lock().unwrap();
        books
            .bonuses
            .iter()
            .flat_map(|b| {
                let amount = b["amount"].as_i64().unwrap_or(0);
                b["receivers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |r| (r["username"].as_str().unwrap_or("").to_owned(), amount))
            })
            .collect()
    }

    pub fn rate_limited(&self, on: bool) {
        self.shared.rate_limited.store(on, Ordering::SeqCst);
    }

    /// Make each give, then hold its answer until `release_gives`.
    pub fn hold_gives(&self, on: bool) {
        self.shared.hold.store(on, Ordering::SeqCst);
    }

    /// Send the answer of a held give (if none is held yet, the next one goes at once).
    pub fn release_gives(&self) {
        self.shared.release.notify_one();
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({"success": false, "message": message}))).into_response()
}

fn ok(result: Value) -> Response {
    Json(json!({"success": true, "result": result})).into_response()
}

/// The refusal for a request without the token, or rate limited; None to go on.
fn gate(s: &Shared, headers: &HeaderMap) -> Option<Response> {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if bearer != Some(s.token.as_str()) {
        return Some(refuse(StatusCode::UNAUTHORIZED, "Invalid access token"));
    }
    if s.rate_limited.load(Ordering::SeqCst) {
        let mut r = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit exceeded. Try again later.",
        );
        r.headers_mut().insert("retry-after", "17".parse().unwrap());
        return Some(r);
    }
    None
}

async fn me(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(refused) = gate(&s, &headers) {
        return refused;
    }
    let books = s.books.lock().unwrap();
    let me = &books.users[0];
    let mut v = me.json();
    v["giving_balance"] = json!(me.giving_balance);
    v["giving_balance_with_currency"] = json!(format!("{} points", me.giving_balance));
    ok(v)
}

async fn users(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = gate(&s, &headers) {
        return refused;
    }
    let limit: usize = q.get("limit").and_then(|l| l.parse().ok()).unwrap_or(20);
    let skip: usize = q.get("skip").and_then(|l| l.parse().ok()).unwrap_or(0);
    if limit > 100 {
        return refuse(StatusCode::BAD_REQUEST, "limit must be less than or equal to 100");
    }
    let books = s.books.lock().unwrap();
    let list: Vec<Value> = books
        .users
        .iter()
        .filter(|u| q.get("email").is_none_or(|e| e.eq_ignore_ascii_case(&u.email)))
        .skip(skip)
        .take(limit)
        .map(User::json)
        .collect();
    ok(json!(list))
}

async fn give(State(s): State<Shared>, headers: HeaderMap, body: Json<Value>) -> Response {
    if let Some(refused) = gate(&s, &headers) {
        return refused;
    }
    let bonus = match make_bonus(&s, &body) {
        Ok(bonus) => bonus,
        Err(message) => return refuse(StatusCode::UNPROCESSABLE_ENTITY, &message),
    };
    if s.hold.load(Ordering::SeqCst) {
        s.release.notified().await;
    }
    ok(bonus)
}

/// Give the bonus `body` asks for, or Bonusly's reason to refuse it (a 422).
fn make_bonus(s: &Shared, body: &Value) -> Result<Value, String> {
    let unprocessable = |message: &str| Err(message.to_owned());
    let reason = body["reason"].as_str().unwrap_or_default().to_owned();
    if reason.trim().is_empty() {
        return unprocessable("Reason can't be blank");
    }
    let words: Vec<&str> = reason.split_whitespace().collect();
    let mut books = s.books.lock().unwrap();
    // Receivers and amount: from the fields, or from the reason's +N and @mentions.
    let (receivers, amount): (Vec<usize>, i64) = match body["receiver_email"].as_str() {
        Some(email) => match books
            .users
            .iter()
            .position(|u| u.email.eq_ignore_ascii_case(email))
        {
            Some(i) => (vec![i], body["amount"].as_i64().unwrap_or(0)),
            None => {
                return unprocessable(&format!("Couldn't find a user with email {email}"));
            }
        },
        None => {
            let mut found = Vec::new();
            for mention in words.iter().filter_map(|w| w.strip_prefix('@')) {
                match books.users.iter().position(|u| u.username == mention) {
                    Some(i) => found.push(i),
                    None => {
                        return unprocessable(&format!("Couldn't find @{mention}"));
                    }
                }
            }
            let amount = words
                .iter()
                .find_map(|w| w.strip_prefix('+')?.parse().ok())
                .unwrap_or(0);
            (found, amount)
        }
    };
    if receivers.is_empty() {
        return unprocessable("Please mention a receiver (@username)");
    }
    if amount <= 0 {
        return unprocessable("Please give an amount (+10)");
    }
    let hashtag = body["hashtag"].as_str().map(str::to_owned).or_else(|| {
        words
            .iter()
            .find(|w| w.starts_with('#') && w.len() > 1)
            .map(|w| (*w).to_owned())
    });
    let Some(hashtag) = hashtag else {
        return unprocessable("Please include a #hashtag for a company value");
    };
    let total = amount * receivers.len() as i64;
    if books.users[0].giving_balance < total {
        let left = books.users[0].giving_balance;
        return unprocessable(&format!(
            "You don't have enough to give: {left} points left this month"
        ));
    }
    books.users[0].giving_balance -= total;
    for &i in &receivers {
        books.users[i].earning_balance += amount;
    }
    let receivers: Vec<Value> = receivers.iter().map(|&i| books.users[i].json()).collect();
    let bonus = json!({
        "id": format!("6a7b{:020x}", books.bonuses.len() + 1),
        "created_at": "2026-12-07T05:30:00Z",
        "reason": reason, "reason_html": reason,
        "amount": amount, "amount_with_currency": format!("{amount} points"),
        "value": hashtag.trim_start_matches('#'), "hashtag": hashtag,
        "family_amount": total, "child_count": 0, "via": "api",
        "giver": books.users[0].json(),
        "receiver": receivers[0],
        "receivers": receivers,
        "parent_bonus_id": body.get("parent_bonus_id").cloned().unwrap_or(Value::Null),
    });
    books.bonuses.push(bonus.clone());
    Ok(bonus)
}
