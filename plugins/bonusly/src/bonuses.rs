//! `give-bonus` (`POST /bonuses`), at most once per idempotency key.
//!
//! Bonusly's API takes no idempotency key, so the plugin keeps one in its kv store: before
//! posting it records the key as pending, after Bonusly's answer it records the bonus given.
//! A retried step (same key) gets the recorded bonus back without a second POST. A key
//! still pending means an earlier attempt was cut off after it may have reached Bonusly
//! (the call timed out or the host stopped mid-call): the plugin then refuses to post again
//! rather than risk giving twice, and says how to check.

use crate::answer::result;
use crate::io::request;
use crate::users::User;
use osprey_sdk::prelude::*;
use std::time::Duration;

/// A bonus to give. Either Bonusly's own form in `reason` alone ("+10 @ana for the
/// midnight fix #teamwork"), or `receiver_email` and `amount` with `reason` (and `hashtag`
/// when the reason has none).
#[derive(Deserialize, Serialize, JsonSchema, Debug)]
#[serde(deny_unknown_fields)]
pub(crate) struct GiveInput {
    /// Why; with neither `receiver_email` nor `amount`, it must name them: `+10 @ana for ... #tag`.
    reason: String,
    /// Who receives it (instead of an `@mention` in the reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    receiver_email: Option<String>,
    /// How many points (with `receiver_email`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    amount: Option<u32>,
    /// The company value, such as `#teamwork` (the `#` is added when missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hashtag: Option<String>,
    /// Add on to this existing bonus instead of starting a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent_bonus_id: Option<String>,
}

/// The bonus given.
#[derive(Serialize, Deserialize, JsonSchema, Debug, PartialEq, Clone)]
pub(crate) struct GiveOutput {
    /// Bonusly's id of the bonus.
    id: String,
    amount: i64,
    reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hashtag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    giver: Option<User>,
    #[serde(default)]
    receivers: Vec<User>,
    /// True when this is the bonus an earlier attempt of the same step gave (nothing was
    /// given this time).
    #[serde(default)]
    replayed: bool,
}

/// What the kv store holds for an idempotency key.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(tag = "state", rename_all = "kebab-case")]
enum Memory {
    /// The POST was about to be sent; its outcome is not known.
    Pending,
    /// The bonus given under this key.
    Given { bonus: Box<GiveOutput> },
}

/// The checked body of `POST /bonuses`.
fn body(input: GiveInput) -> Result<Value> {
    let reason = input.reason.trim().to_owned();
    if reason.is_empty() {
        return Err(Error::invalid_input("reason is empty"));
    }
    let hashtag = input
        .hashtag
        .map(|h| h.trim().trim_start_matches('#').to_owned())
        .filter(|h| !h.is_empty())
        .map(|h| format!("#{h}"));
    if let Some(tag) = &hashtag
        && tag[1..].contains(|c: char| c.is_whitespace() || c == '#')
    {
        return Err(Error::invalid_input(format!("hashtag '{tag}' must be one word")));
    }
    match (&input.receiver_email, input.amount) {
        (Some(email), Some(amount)) => {
            if !email.contains('@') {
                return Err(Error::invalid_input(format!("'{email}' is not an email address")));
            }
            if amount == 0 {
                return Err(Error::invalid_input("amount must be at least 1"));
            }
        }
        (None, None) => {
            if !mentions_amount_and_receiver(&reason) {
                return Err(Error::invalid_input(format!(
                    "reason '{reason}' names no amount and receiver: write it as \
                     '+10 @username for ... #value', or give receiver_email and amount"
                )));
            }
        }
        _ => {
            return Err(Error::invalid_input(
                "receiver_email and amount go together: give both, or neither and write \
                 '+10 @username' in the reason",
            ));
        }
    }
    let mut body = json!({ "reason": reason });
    let fields = [
        ("receiver_email", input.receiver_email.map(|e| json!(e.trim()))),
        ("amount", input.amount.map(|a| json!(a))),
        ("hashtag", hashtag.map(Value::String)),
        ("parent_bonus_id", input.parent_bonus_id.map(Value::String)),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            body[key] = value;
        }
    }
    Ok(body)
}

/// Whether a reason carries Bonusly's `+N` and an `@mention`.
fn mentions_amount_and_receiver(reason: &str) -> bool {
    let words: Vec<&str> = reason.split_whitespace().collect();
    let amount = words.iter().any(|w| {
        w.strip_prefix('+')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) && n != "0")
    });
    let receiver = words.iter().any(|w| w.len() > 1 && w.starts_with('@'));
    amount && receiver
}

fn memory_key(idempotency_key: &str) -> String {
    format!("give:{idempotency_key}")
}

fn memory_ttl() -> Result<Duration> {
    let raw = config::get("give_memory_seconds").unwrap_or_else(|| "604800".into());
    match raw.trim().parse::<u64>() {
        Ok(seconds) if seconds > 0 => Ok(Duration::from_secs(seconds)),
        _ => Err(Error::invalid_input(
            "setting 'give_memory_seconds' must be a whole number of seconds, at least 1 \
             (gives are remembered to keep a retried step from giving twice)",
        )),
    }
}

/// What an earlier attempt under the same key left: the bonus to return, a refusal, or
/// nothing (go ahead).
fn earlier(memory: Option<Memory>, key: &str) -> Result<Option<GiveOutput>> {
    match memory {
        None => Ok(None),
        Some(Memory::Given { mut bonus }) => {
            bonus.replayed = true;
            Ok(Some(*bonus))
        }
        Some(Memory::Pending) => Err(Error::upstream(format!(
            "an earlier attempt of this give (idempotency key '{key}') was cut off after it may \
             have reached Bonusly; it is not sent again, so as not to give twice. Check the \
             giver's recent bonuses in Bonusly, and give it again from a new run if it is not there"
        ))
        .retryable(false)),
    }
}

pub(crate) fn give_bonus(ctx: &Context, input: GiveInput) -> Result<GiveOutput> {
    let body = body(input)?;
    let key = memory_key(ctx.idempotency_key());
    let ttl = Some(memory_ttl()?);
    if let Some(bonus) = earlier(kv::get_json(&key)?, ctx.idempotency_key())? {
        return Ok(bonus);
    }
    let post = request("POST", "/bonuses")?.json(&body);
    kv::set_json(&key, &Memory::Pending, ttl)?;
    let answer = match post.send() {
        Ok(answer) => answer,
        // The request may have reached Bonusly: keep the key pending.
        Err(e) if e.kind == ErrorKind::Timeout => return Err(e),
        Err(e) => {
            forget(&key);
            return Err(e);
        }
    };
    let bonus: GiveOutput = match result(answer) {
        Ok(bonus) => bonus,
        Err(e) => {
            // Bonusly answered: nothing was given.
            forget(&key);
            return Err(e);
        }
    };
    let given = Memory::Given {
        bonus: Box::new(bonus.clone()),
    };
    if let Err(e) = kv::set_json(&key, &given, ttl) {
        // The key stays pending, so a retry is refused rather than giving twice.
        log::warn(
            "could not record the bonus given",
            &[("bonus", &bonus.id), ("error", &e.message)],
        );
    }
    Ok(bonus)
}

fn forget(key: &str) {
    if let Err(e) = kv::delete(key) {
        log::warn("could not clear a pending give", &[("error", &e.message)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::answer::answer;

    fn input(v: Value) -> GiveInput {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn bonuslys_own_form_goes_as_the_reason_alone() {
        let b = body(input(
            json!({"reason": " +10 @ana for the midnight fix #teamwork "}),
        ))
        .unwrap();
        assert_eq!(b, json!({"reason": "+10 @ana for the midnight fix #teamwork"}));
    }

    #[test]
    fn a_receiver_by_email_goes_with_amount_and_hashtag() {
        let b = body(input(json!({
            "reason": "for the midnight fix", "receiver_email": "ana@example.com",
            "amount": 5, "hashtag": "teamwork", "parent_bonus_id": "b1"
        })))
        .unwrap();
        assert_eq!(
            b,
            json!({"reason": "for the midnight fix", "receiver_email": "ana@example.com",
                   "amount": 5, "hashtag": "#teamwork", "parent_bonus_id": "b1"})
        );
    }

    #[test]
    fn a_give_that_names_nobody_or_half_of_it_is_refused_before_sending() {
        for (v, says) in [
            (
                json!({"reason": "thanks #teamwork"}),
                "names no amount and receiver",
            ),
            (json!({"reason": "+0 @ana #x"}), "names no amount"),
            (json!({"reason": "+10 for you"}), "names no amount"),
            (json!({"reason": "x", "amount": 5}), "go together"),
            (
                json!({"reason": "x", "receiver_email": "ana", "amount": 5}),
                "not an email",
            ),
            (
                json!({"reason": "x", "receiver_email": "a@b.c", "amount": 0}),
                "at least 1",
            ),
            (json!({"reason": "  "}), "empty"),
            (json!({"reason": "+1 @a", "hashtag": "two words"}), "one word"),
        ] {
            let e = body(input(v.clone())).unwrap_err();
            assert_eq!(e.kind, ErrorKind::InvalidInput);
            assert!(e.message.contains(says), "{v}: {}", e.message);
        }
    }

    const BONUS: &str = r##"{"success":true,"result":{"id":"24abcdef1234567890abcdef","created_at":"2026-12-07T05:00:00Z",
        "reason":"+10 @ana for the fix #teamwork","amount":10,"amount_with_currency":"10 points","value":"teamwork",
        "hashtag":"#teamwork","via":"api","child_count":0,
        "giver":{"id":"g1","username":"bo","email":"bo@example.com"},
        "receiver":{"id":"r1","username":"ana"},
        "receivers":[{"id":"r1","username":"ana","email":"ana@example.com"}]}}"##;

    #[test]
    fn a_bonus_is_read_with_giver_and_receivers() {
        let bonus: GiveOutput = result(answer(201, &[], BONUS)).unwrap();
        assert_eq!(bonus.id, "24abcdef1234567890abcdef");
        assert_eq!(bonus.amount, 10);
        assert_eq!(bonus.receivers[0].username, "ana");
        assert_eq!(bonus.giver.as_ref().unwrap().username, "bo");
        assert!(!bonus.replayed);
    }

    #[test]
    fn an_earlier_give_is_returned_as_replayed_and_a_pending_one_is_refused() {
        assert_eq!(earlier(None, "k").unwrap(), None);
        let bonus: GiveOutput = result(answer(201, &[], BONUS)).unwrap();
        let stored = serde_json::to_vec(&Memory::Given {
            bonus: Box::new(bonus.clone()),
        })
        .unwrap();
        let back: Memory = serde_json::from_slice(&stored).unwrap();
        let again = earlier(Some(back), "k").unwrap().unwrap();
        assert!(again.replayed);
        assert_eq!(again.id, bonus.id);
        let e = earlier(Some(Memory::Pending), "run-1:3").unwrap_err();
        assert!(!e.retryable);
        assert!(
            e.message.contains("run-1:3") && e.message.contains("not sent again"),
            "{}",
            e.message
        );
        assert_eq!(memory_key("run-1:3"), "give:run-1:3");
    }
}
