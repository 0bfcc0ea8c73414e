//! What a playbook asks a person, and the one reading of an answer. Pure: no I/O.
//!
//! - `ask`: a question with options; the answer is the chosen option.
//! - `approve`: yes or no; the answer is `true` or `false`.
//! - `form`: a questionnaire of typed fields; the answer is a map of field name to value.
//!
//! Every answer may carry a comment. Answers from a web form arrive as text and are read by
//! [`Question::read_answer`]; a default answer given by the playbook is checked by the same
//! code (turned into text first), so both follow one set of rules.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The three kinds of question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Ask,
    Approve,
    Form,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ask => "ask",
            Kind::Approve => "approve",
            Kind::Form => "form",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "ask" => Some(Kind::Ask),
            "approve" => Some(Kind::Approve),
            "form" => Some(Kind::Form),
            _ => None,
        }
    }
}

/// The type of a form field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FieldType {
    Text,
    Choice,
    Number,
    /// A duration such as "3d" or "2h 30m"; the answer keeps the text.
    Duration,
    Boolean,
}

/// One field of a form.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormField {
    /// An identifier: the key of the answer's map.
    pub name: String,
    /// What the person reads; the name if not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(rename = "type")]
    pub kind: FieldType,
    /// Whether it must be filled in (default: yes; a boolean is always answered).
    #[serde(default = "yes")]
    pub required: bool,
    /// The choices of a `choice` field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    /// Bounds of a `number` field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// The longest duration of a `duration` field ("30d").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
}

fn yes() -> bool {
    true
}

/// The longest text answer and comment, in characters.
pub const MAX_TEXT: usize = 4000;
/// The most options of a question and fields of a form.
pub const MAX_ITEMS: usize = 50;

/// What the playbook passes to `ask`, `approve` or `form`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Ask this user (by name; mailed if the user has an address, and in their inbox).
    #[serde(default)]
    pub user: Option<String>,
    /// Ask the members of this role (each mailed their own link; in their inboxes).
    #[serde(default)]
    pub role: Option<String>,
    /// Ask someone outside Osprey, by email only (the link needs no account).
    #[serde(default)]
    pub email: Option<String>,
    /// Ask in Slack too (or only): `#channel` or `@person` (a member id or e-mail address),
    /// a message with one button per choice, posted through the `slack` plugin.
    #[serde(default)]
    pub slack: Option<String>,
    pub title: String,
    #[serde(default)]
    pub text: String,
    /// `ask`: the options, at least two.
    #[serde(default)]
    pub options: Vec<String>,
    /// `form`: the fields, at least one.
    #[serde(default)]
    pub fields: Vec<FormField>,
    /// How long the person has ("30m", "2d"); without it the question waits until answered.
    #[serde(default)]
    pub due: Option<String>,
    /// Send a reminder this often while unanswered ("1h").
    #[serde(default)]
    pub remind: Option<String>,
    /// The answer taken when the due time passes (`"default"` is a reserved word in Rhai,
    /// hence the name; a quoted `"default"` key works too). Without one, the script gets an
    /// error of kind `timeout` (which it can catch).
    #[serde(default, alias = "default")]
    pub on_timeout: Option<Value>,
}

/// A question, checked: what is stored (as JSON in `questions.spec`) besides the addressee.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Question {
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FormField>,
    /// The default answer, already checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<Value>,
}

/// Who a question is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addressee {
    User(String),
    Role(String),
    Email(String),
}

impl Addressee {
    /// Exactly one of a user, a role or an address, each checked.
    pub fn from_parts(
        user: Option<String>,
        role: Option<String>,
        email: Option<String>,
    ) -> Result<Addressee, QuestionError> {
        match (user, role, email) {
            (Some(u), None, None) => {
                crate::names::check("user", &u)?;
                Ok(Addressee::User(u))
            }
            (None, Some(r), None) => {
                crate::names::check("role", &r)?;
                Ok(Addressee::Role(r))
            }
            (None, None, Some(e)) => {
                check_email(&e)?;
                Ok(Addressee::Email(e))
            }
            _ => Err(QuestionError::NotOneAddressee),
        }
    }
}

/// Where in Slack a question goes, as the playbook wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackTarget {
    /// `#soc`, or a channel id `#C0123ABCD`.
    Channel(String),
    /// `@U0123ABCD`: a member, by id (a direct message from the app).
    User(String),
    /// `@ana@example.com`: a member, by e-mail (found with `lookup-user-by-email` first).
    Email(String),
}

/// A `slack` value that names neither a channel nor a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "'{0}' is neither a channel (#name or #C0123ABCD) nor a person (@U0123ABCD, or @ and an e-mail address)"
)]
pub struct SlackTargetError(pub String);

impl SlackTarget {
    pub fn parse(text: &str) -> Result<SlackTarget, SlackTargetError> {
        let bad = || SlackTargetError(text.to_owned());
        let t = text.trim();
        if let Some(name) = t.strip_prefix('#') {
            let ok = (1..=80).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
            return ok.then(|| SlackTarget::Channel(name.to_owned())).ok_or_else(bad);
        }
        let who = t.strip_prefix('@').ok_or_else(bad)?;
        if who.contains('@') {
            check_email(who).map_err(|_| bad())?;
            return Ok(SlackTarget::Email(who.to_owned()));
        }
        let member_id = who.len() >= 3
            && who.len() <= 32
            && (who.starts_with('U') || who.starts_with('W'))
            && who.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
        member_id
            .then(|| SlackTarget::User(who.to_owned()))
            .ok_or_else(bad)
    }

    /// As written: `#soc`, `@U0123ABCD`, `@ana@example.com`.
    pub fn as_str(&self) -> String {
        match self {
            SlackTarget::Channel(c) => format!("#{c}"),
            SlackTarget::User(u) | SlackTarget::Email(u) => format!("@{u}"),
        }
    }
}

/// A checked spec: the question, its addressee, title and text, and its timing in ms.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    pub question: Question,
    /// Who in Osprey (or by mail); `None` when it is asked in Slack only.
    pub to: Option<Addressee>,
    /// Where in Slack.
    pub slack: Option<SlackTarget>,
    pub title: String,
    pub text: String,
    pub due_ms: Option<i64>,
    pub remind_ms: Option<i64>,
}

/// A field's problem with an answer, shown next to it when the form is shown again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// The field's name (`option`, `decision`, `comment`, or a form field's name).
    pub field: String,
    pub message: String,
}

fn field_error(field: &str, message: impl Into<String>) -> FieldError {
    FieldError {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// Why a question's spec was refused, in the words of the playbook's map.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuestionError {
    #[error(transparent)]
    Name(#[from] crate::names::NameError),
    #[error(transparent)]
    Email(#[from] EmailError),
    #[error("say who with exactly one of `user`, `role` or `email`")]
    NotOneAddressee,
    #[error("say who with one of `user`, `role` or `email`, or `slack`, or both")]
    NoAddressee,
    #[error("`slack`: {0}")]
    Slack(#[from] SlackTargetError),
    #[error(
        "`slack` takes questions answered by one click: `ask`, `approve`, or a `form` with one choice field"
    )]
    SlackNeedsChoices,
    #[error("a question needs a `title`")]
    NoTitle,
    #[error("the title is limited to 200 characters and the text to {MAX_TEXT}")]
    TooLong,
    /// `due` or `remind` is not a duration.
    #[error("`{what}`: {source}")]
    Duration {
        what: &'static str,
        #[source]
        source: crate::duration::DurationError,
    },
    #[error("`{0}` must be longer than 0s")]
    NotPositive(&'static str),
    #[error("an `on_timeout` answer needs a `due` time (it is taken when that passes)")]
    TimeoutWithoutDue,
    #[error("`ask` needs between 2 and {MAX_ITEMS} `options`")]
    OptionCount,
    #[error("an option cannot be empty or longer than 200 characters")]
    BadOption,
    #[error("the option '{0}' is given twice")]
    DuplicateOption(String),
    #[error("`fields` belong to `form`, not `ask`")]
    FieldsOnAsk,
    #[error("`approve` takes neither `options` nor `fields`")]
    ApproveTakesNothing,
    #[error("`form` needs between 1 and {MAX_ITEMS} `fields`")]
    FieldCount,
    #[error("`options` belong to `ask`; a choice field has its own `options`")]
    OptionsOnForm,
    #[error(
        "field name '{0}' must be 1-64 lower-case letters, digits and underscores, starting with a letter (and not 'comment')"
    )]
    FieldName(String),
    #[error("the field '{0}' is given twice")]
    DuplicateField(String),
    #[error("field '{0}': a choice needs `options`")]
    ChoiceWithoutOptions(String),
    #[error("field '{0}': only a choice has `options`")]
    OptionsWithoutChoice(String),
    #[error("field '{0}': only a duration has `max_duration`")]
    MaxDurationNotDuration(String),
    #[error("field '{field}': {source}")]
    MaxDuration {
        field: String,
        #[source]
        source: crate::duration::DurationError,
    },
    #[error("the `on_timeout` answer is not a valid answer: {}", describe(.0))]
    BadDefault(Vec<FieldError>),
}

/// An address that is not an email address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an email address")]
pub struct EmailError(pub String);

/// Check an email address well enough to send to it: one `@`, no spaces or angle brackets.
pub fn check_email(address: &str) -> Result<(), EmailError> {
    let ok = address.len() <= 254
        && address.split('@').count() == 2
        && address.split('@').all(|p| !p.is_empty())
        && !address.contains(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | ',' | ';' | '"'));
    if ok {
        Ok(())
    } else {
        Err(EmailError(address.to_owned()))
    }
}

fn check_identifier(name: &str) -> Result<(), QuestionError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok && name != "comment" {
        Ok(())
    } else {
        Err(QuestionError::FieldName(name.to_owned()))
    }
}

impl Spec {
    /// Check a spec for a question of `kind`; the error says what is wrong in the words of
    /// the playbook's map.
    pub fn check(self, kind: Kind) -> Result<Checked, QuestionError> {
        let slack = self.slack.as_deref().map(SlackTarget::parse).transpose()?;
        let to = match (&self.user, &self.role, &self.email) {
            (None, None, None) if slack.is_some() => None,
            (None, None, None) => return Err(QuestionError::NoAddressee),
            _ => Some(Addressee::from_parts(self.user, self.role, self.email)?),
        };
        if self.title.trim().is_empty() {
            return Err(QuestionError::NoTitle);
        }
        if self.title.chars().count() > 200 || self.text.chars().count() > MAX_TEXT {
            return Err(QuestionError::TooLong);
        }
        let duration = |what: &'static str, d: &Option<String>| -> Result<Option<i64>, QuestionError> {
            match d {
                None => Ok(None),
                Some(text) => {
                    let ms = crate::cases::duration_ms(text)
                        .map_err(|source| QuestionError::Duration { what, source })?;
                    if ms <= 0 {
                        return Err(QuestionError::NotPositive(what));
                    }
                    Ok(Some(ms))
                }
            }
        };
        let due_ms = duration("due", &self.due)?;
        let remind_ms = duration("remind", &self.remind)?;
        if self.on_timeout.is_some() && due_ms.is_none() {
            return Err(QuestionError::TimeoutWithoutDue);
        }
        match kind {
            Kind::Ask => {
                if self.options.len() < 2 || self.options.len() > MAX_ITEMS {
                    return Err(QuestionError::OptionCount);
                }
                if self.options.iter().any(|o| o.trim().is_empty() || o.len() > 200) {
                    return Err(QuestionError::BadOption);
                }
                let mut seen = std::collections::HashSet::new();
                if let Some(dup) = self.options.iter().find(|o| !seen.insert(o.as_str())) {
                    return Err(QuestionError::DuplicateOption(dup.clone()));
                }
                if !self.fields.is_empty() {
                    return Err(QuestionError::FieldsOnAsk);
                }
            }
            Kind::Approve => {
                if !self.options.is_empty() || !self.fields.is_empty() {
                    return Err(QuestionError::ApproveTakesNothing);
                }
            }
            Kind::Form => {
                if self.fields.is_empty() || self.fields.len() > MAX_ITEMS {
                    return Err(QuestionError::FieldCount);
                }
                if !self.options.is_empty() {
                    return Err(QuestionError::OptionsOnForm);
                }
                let mut seen = std::collections::HashSet::new();
                for f in &self.fields {
                    check_identifier(&f.name)?;
                    if !seen.insert(f.name.as_str()) {
                        return Err(QuestionError::DuplicateField(f.name.clone()));
                    }
                    match (f.kind, f.options.is_empty()) {
                        (FieldType::Choice, true) => {
                            return Err(QuestionError::ChoiceWithoutOptions(f.name.clone()));
                        }
                        (k, false) if k != FieldType::Choice => {
                            return Err(QuestionError::OptionsWithoutChoice(f.name.clone()));
                        }
                        _ => {}
                    }
                    if let Some(m) = &f.max_duration {
                        if f.kind != FieldType::Duration {
                            return Err(QuestionError::MaxDurationNotDuration(f.name.clone()));
                        }
                        crate::cases::duration_ms(m).map_err(|source| QuestionError::MaxDuration {
                            field: f.name.clone(),
                            source,
                        })?;
                    }
                }
            }
        }
        let mut question = Question {
            kind,
            options: self.options,
            fields: self.fields,
            default: None,
        };
        if slack.is_some() && question.choices().is_none() {
            return Err(QuestionError::SlackNeedsChoices);
        }
        if let Some(default) = self.on_timeout {
            let answer = question
                .check_answer(&default)
                .map_err(QuestionError::BadDefault)?;
            question.default = Some(answer);
        }
        Ok(Checked {
            question,
            to,
            slack,
            title: self.title,
            text: self.text,
            due_ms,
            remind_ms,
        })
    }
}

/// The errors in one line.
pub fn describe(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ")
}

/// What is wrong with the value given for a form field (shown next to the field).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FieldValueError {
    #[error("'{0}' is not yes or no")]
    NotYesOrNo(String),
    #[error("this field is required")]
    Required,
    #[error("at most {MAX_TEXT} characters")]
    TooLong,
    /// The options to choose from.
    #[error("choose one of: {}", .0.join(", "))]
    NotAnOption(Vec<String>),
    #[error("'{0}' is not a number")]
    NotANumber(String),
    #[error("at least {0}")]
    BelowMin(f64),
    #[error("at most {0}")]
    AboveMax(f64),
    #[error("'{0}' is not a duration such as 3d, 12h or 30m")]
    NotADuration(String),
    #[error("must be longer than 0s")]
    NotPositive,
    /// The field's `max_duration`, as written.
    #[error("at most {0}")]
    AboveMaxDuration(String),
}

impl FormField {
    /// What the person reads.
    pub fn label(&self) -> &str {
        self.label.as_deref().unwrap_or(&self.name)
    }

    /// Read this field from the text submitted (`None`: not submitted). The value stored
    /// in the answer, or what is wrong with it.
    pub fn read(&self, raw: Option<&str>) -> Result<Option<Value>, FieldValueError> {
        let text = raw.map(str::trim).unwrap_or("");
        if self.kind == FieldType::Boolean {
            return match text {
                "" | "false" | "off" | "no" => Ok(Some(Value::Bool(false))),
                "true" | "on" | "yes" => Ok(Some(Value::Bool(true))),
                other => Err(FieldValueError::NotYesOrNo(other.to_owned())),
            };
        }
        if text.is_empty() {
            return if self.required {
                Err(FieldValueError::Required)
            } else {
                Ok(None)
            };
        }
        if text.chars().count() > MAX_TEXT {
            return Err(FieldValueError::TooLong);
        }
        match self.kind {
            FieldType::Text => Ok(Some(Value::String(text.to_owned()))),
            FieldType::Choice => {
                if self.options.iter().any(|o| o == text) {
                    Ok(Some(Value::String(text.to_owned())))
                } else {
                    Err(FieldValueError::NotAnOption(self.options.clone()))
                }
            }
            FieldType::Number => {
                let n: f64 = text
                    .parse()
                    .ok()
                    .filter(|n: &f64| n.is_finite())
                    .ok_or_else(|| FieldValueError::NotANumber(text.to_owned()))?;
                if let Some(min) = self.min
                    && n < min
                {
                    return Err(FieldValueError::BelowMin(min));
                }
                if let Some(max) = self.max
                    && n > max
                {
                    return Err(FieldValueError::AboveMax(max));
                }
                if n.fract() == 0.0 && n.abs() < 9.0e15 {
                    Ok(Some(Value::from(n as i64)))
                } else {
                    Ok(Some(Value::from(n)))
                }
            }
            FieldType::Duration => {
                let ms = crate::cases::duration_ms(text)
                    .map_err(|_| FieldValueError::NotADuration(text.to_owned()))?;
                if ms <= 0 {
                    return Err(FieldValueError::NotPositive);
                }
                if let Some(max) = &self.max_duration
                    && crate::cases::duration_ms(max).is_ok_and(|m| ms > m)
                {
                    return Err(FieldValueError::AboveMaxDuration(max.clone()));
                }
                Ok(Some(Value::String(text.to_owned())))
            }
            FieldType::Boolean => unreachable!("handled above"),
        }
    }
}

/// JSON as the text a form would submit (`None` for null), so a default answer is checked
/// by the same code as a submitted one.
fn as_submitted(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// One answer a single click gives: the choice (what the button's token binds) and the label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub choice: String,
    pub label: String,
}

impl Question {
    /// The answers one click can give, if a click can answer it: `ask`'s options,
    /// `approve` and `deny`, or the options of a form's only field when that is a required
    /// choice. `None` for every other form.
    pub fn choices(&self) -> Option<Vec<Choice>> {
        let each = |options: &[String]| {
            options
                .iter()
                .map(|o| Choice {
                    choice: o.clone(),
                    label: o.clone(),
                })
                .collect()
        };
        match self.kind {
            Kind::Ask => Some(each(&self.options)),
            Kind::Approve => Some(vec![
                Choice {
                    choice: "approve".into(),
                    label: "Approve".into(),
                },
                Choice {
                    choice: "deny".into(),
                    label: "Deny".into(),
                },
            ]),
            Kind::Form => match self.fields.as_slice() {
                [f] if f.kind == FieldType::Choice && f.required => Some(each(&f.options)),
                _ => None,
            },
        }
    }

    /// The stored answer of a click on `choice` (one of [`Question::choices`]), read by the
    /// same rules as every other answer.
    pub fn answer_choice(&self, choice: &str) -> Result<Value, Vec<FieldError>> {
        let given = match (self.kind, self.fields.first()) {
            (Kind::Form, Some(f)) => serde_json::json!({ f.name.clone(): choice }),
            _ => Value::String(choice.to_owned()),
        };
        self.check_answer(&given)
    }

    /// Read an answer submitted from a web form (field name → text). Returns the answer
    /// stored as `{ "value": ..., "comment": "..." }`, or every problem found.
    pub fn read_answer(&self, form: &HashMap<String, String>) -> Result<Value, Vec<FieldError>> {
        let comment = form
            .get("comment")
            .map(|c| c.trim().to_owned())
            .unwrap_or_default();
        let mut errors = Vec::new();
        if comment.chars().count() > MAX_TEXT {
            errors.push(field_error("comment", format!("at most {MAX_TEXT} characters")));
        }
        let value = match self.kind {
            Kind::Ask => match form.get("option").map(|s| s.trim()) {
                Some(o) if self.options.iter().any(|x| x == o) => Value::String(o.to_owned()),
                Some(o) if !o.is_empty() => {
                    errors.push(field_error("option", format!("'{o}' is not one of the options")));
                    Value::Null
                }
                _ => {
                    errors.push(field_error("option", "choose one of the options"));
                    Value::Null
                }
            },
            Kind::Approve => match form.get("decision").map(|s| s.trim()) {
                Some("approve" | "true" | "yes") => Value::Bool(true),
                Some("deny" | "false" | "no") => Value::Bool(false),
                _ => {
                    errors.push(field_error("decision", "choose approve or deny"));
                    Value::Null
                }
            },
            Kind::Form => {
                let mut values = Map::new();
                for f in &self.fields {
                    match f.read(form.get(&f.name).map(String::as_str)) {
                        Ok(Some(v)) => {
                            values.insert(f.name.clone(), v);
                        }
                        Ok(None) => {}
                        Err(e) => errors.push(field_error(&f.name, e.to_string())),
                    }
                }
                Value::Object(values)
            }
        };
        if errors.is_empty() {
            Ok(serde_json::json!({ "value": value, "comment": comment }))
        } else {
            Err(errors)
        }
    }

    /// Check an answer given as JSON (a playbook's default): an option, `true`/`false`, or a
    /// map of field values; or the stored shape `{ "value": ..., "comment": ... }`.
    pub fn check_answer(&self, answer: &Value) -> Result<Value, Vec<FieldError>> {
        let (value, comment) = match answer.as_object() {
            Some(m) if self.kind != Kind::Form || m.contains_key("value") => (
                m.get("value").cloned().unwrap_or(Value::Null),
                m.get("comment").cloned(),
            ),
            _ => (answer.clone(), None),
        };
        let mut form = HashMap::new();
        if let Some(c) = comment.as_ref().and_then(as_submitted) {
            form.insert("comment".to_owned(), c);
        }
        match self.kind {
            Kind::Ask => {
                if let Some(o) = as_submitted(&value) {
                    form.insert("option".into(), o);
                }
            }
            Kind::Approve => match value {
                Value::Bool(b) => {
                    form.insert("decision".into(), if b { "approve" } else { "deny" }.into());
                }
                other => {
                    if let Some(d) = as_submitted(&other) {
                        form.insert("decision".into(), d);
                    }
                }
            },
            Kind::Form => {
                let Some(values) = value.as_object() else {
                    return Err(vec![field_error(
                        "value",
                        "a form's answer is a map of its fields",
                    )]);
                };
                if let Some(unknown) = values.keys().find(|k| !self.fields.iter().any(|f| &f.name == *k)) {
                    return Err(vec![field_error(unknown, "not a field of this form")]);
                }
                for (k, v) in values {
                    if let Some(text) = as_submitted(v) {
                        form.insert(k.clone(), text);
                    }
                }
            }
        }
        self.read_answer(&form)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec(v: Value) -> Spec {
        serde_json::from_value(v).unwrap()
    }

    fn form() -> Question {
        spec(json!({
            "email": "user@example.com", "title": "Why?",
            "fields": [
                { "name": "reason", "type": "text" },
                { "name": "days", "type": "number", "min": 1, "max": 30 },
                { "name": "how_long", "type": "duration", "max_duration": "30d", "required": false },
                { "name": "urgent", "type": "boolean" },
                { "name": "team", "type": "choice", "options": ["red", "blue"] },
            ],
        }))
        .check(Kind::Form)
        .unwrap()
        .question
    }

    fn submitted(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_form_reads_every_field_type_and_reports_every_error() {
        let q = form();
        let ok = q
            .read_answer(&submitted(&[
                ("reason", " homework "),
                ("days", "3"),
                ("urgent", "on"),
                ("team", "blue"),
                ("comment", "thanks"),
            ]))
            .unwrap();
        assert_eq!(
            ok,
            json!({ "value": { "reason": "homework", "days": 3, "urgent": true, "team": "blue" }, "comment": "thanks" })
        );
        let errors = q
            .read_answer(&submitted(&[
                ("days", "99"),
                ("how_long", "forever"),
                ("team", "green"),
            ]))
            .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["reason", "days", "how_long", "team"]);
        assert_eq!(errors[0].message, "this field is required");
        assert_eq!(errors[1].message, "at most 30");
        assert!(errors[3].message.contains("red, blue"), "{}", errors[3].message);
        let too_long = q
            .read_answer(&submitted(&[
                ("reason", "x"),
                ("days", "2"),
                ("team", "red"),
                ("how_long", "60d"),
            ]))
            .unwrap_err();
        assert_eq!(too_long[0].message, "at most 30d");
    }

    #[test]
    fn ask_and_approve_answers() {
        let ask = spec(json!({ "user": "alice", "title": "Block?", "options": ["block", "allow"] }))
            .check(Kind::Ask)
            .unwrap()
            .question;
        assert_eq!(
            ask.read_answer(&submitted(&[("option", "allow")])).unwrap(),
            json!({ "value": "allow", "comment": "" })
        );
        assert_eq!(
            ask.read_answer(&submitted(&[("option", "maybe")])).unwrap_err()[0].field,
            "option"
        );
        let approve = spec(json!({ "role": "managers", "title": "OK?" }))
            .check(Kind::Approve)
            .unwrap()
            .question;
        assert_eq!(
            approve
                .read_answer(&submitted(&[("decision", "deny"), ("comment", "no")]))
                .unwrap(),
            json!({ "value": false, "comment": "no" })
        );
        assert!(approve.read_answer(&submitted(&[])).is_err());
    }

    #[test]
    fn defaults_are_checked_like_answers() {
        let checked = spec(json!({
            "user": "alice", "title": "Block?", "options": ["block", "allow"], "due": "1h", "default": "block",
        }))
        .check(Kind::Ask)
        .unwrap();
        assert_eq!(
            checked.question.default,
            Some(json!({ "value": "block", "comment": "" }))
        );
        assert_eq!(checked.due_ms, Some(3_600_000));
        let e = spec(
            json!({ "user": "alice", "title": "B", "options": ["a", "b"], "due": "1h", "on_timeout": "c" }),
        )
        .check(Kind::Ask)
        .unwrap_err()
        .to_string();
        assert!(e.contains("not a valid answer") && e.contains("'c'"), "{e}");
        let e = spec(json!({ "user": "alice", "title": "B", "options": ["a", "b"], "on_timeout": "a" }))
            .check(Kind::Ask)
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs a `due`"), "{e}");
        let approve = spec(json!({ "user": "a", "title": "t", "due": "5m", "default": true }))
            .check(Kind::Approve)
            .unwrap();
        assert_eq!(
            approve.question.default,
            Some(json!({ "value": true, "comment": "" }))
        );
        let form_default = spec(json!({
            "email": "x@y.z", "title": "t", "due": "5m",
            "fields": [{ "name": "reason", "type": "text" }], "default": { "reason": "none given" },
        }))
        .check(Kind::Form)
        .unwrap();
        assert_eq!(
            form_default.question.default,
            Some(json!({ "value": { "reason": "none given" }, "comment": "" }))
        );
    }

    #[test]
    fn targets_are_channels_or_people() {
        let ok = [
            ("#soc", SlackTarget::Channel("soc".into())),
            (" #C0SOC00001 ", SlackTarget::Channel("C0SOC00001".into())),
            ("@U024BE7LH", SlackTarget::User("U024BE7LH".into())),
            ("@ana@example.com", SlackTarget::Email("ana@example.com".into())),
        ];
        for (text, want) in ok {
            assert_eq!(SlackTarget::parse(text), Ok(want.clone()), "{text}");
            assert_eq!(want.as_str(), text.trim());
        }
        for bad in ["soc", "#", "#a b", "@", "@alice", "@u123", "@a@", "U024BE7LH"] {
            assert!(SlackTarget::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_question_in_slack_has_one_choice_per_button() {
        let ask = spec(json!({ "slack": "#soc", "title": "Block?", "options": ["block", "allow"] }))
            .check(Kind::Ask)
            .unwrap();
        assert_eq!(ask.to, None, "Slack only");
        assert_eq!(ask.slack.as_ref().map(|t| t.as_str()), Some("#soc".to_owned()));
        let labels: Vec<String> = ask
            .question
            .choices()
            .unwrap()
            .into_iter()
            .map(|c| c.label)
            .collect();
        assert_eq!(labels, ["block", "allow"]);
        assert_eq!(
            ask.question.answer_choice("allow").unwrap(),
            json!({ "value": "allow", "comment": "" })
        );
        assert!(ask.question.answer_choice("maybe").is_err());
        let approve = spec(json!({ "user": "alice", "slack": "@U024BE7LH", "title": "OK?" }))
            .check(Kind::Approve)
            .unwrap();
        assert_eq!(approve.to, Some(Addressee::User("alice".into())));
        assert_eq!(
            approve.question.answer_choice("deny").unwrap(),
            json!({ "value": false, "comment": "" })
        );
        let form = spec(json!({
            "slack": "@ana@example.com", "title": "Which?",
            "fields": [{ "name": "team", "type": "choice", "options": ["red", "blue"] }],
        }))
        .check(Kind::Form)
        .unwrap();
        assert_eq!(
            form.question.answer_choice("blue").unwrap(),
            json!({ "value": { "team": "blue" }, "comment": "" })
        );
    }

    #[test]
    fn specs_say_what_is_wrong() {
        let cases = [
            (
                json!({ "title": "t", "options": ["a", "b"] }),
                Kind::Ask,
                "say who with one of",
            ),
            (
                json!({ "slack": "soc", "title": "t" }),
                Kind::Approve,
                "`slack`: ",
            ),
            (
                json!({ "slack": "#soc", "title": "t", "fields": [{ "name": "why", "type": "text" }] }),
                Kind::Form,
                "answered by one click",
            ),
            (
                json!({ "user": "a", "role": "b", "title": "t" }),
                Kind::Approve,
                "exactly one of",
            ),
            (
                json!({ "email": "not-an-address", "title": "t" }),
                Kind::Approve,
                "not an email address",
            ),
            (
                json!({ "user": "a", "title": "t", "options": ["a"] }),
                Kind::Ask,
                "between 2 and",
            ),
            (
                json!({ "user": "a", "title": "t", "options": ["a", "a"] }),
                Kind::Ask,
                "given twice",
            ),
            (
                json!({ "user": "a", "title": " " }),
                Kind::Approve,
                "needs a `title`",
            ),
            (
                json!({ "user": "a", "title": "t", "due": "soon" }),
                Kind::Approve,
                "`due`",
            ),
            (json!({ "user": "a", "title": "t" }), Kind::Form, "between 1 and"),
            (
                json!({ "user": "a", "title": "t", "fields": [{ "name": "c", "type": "choice" }] }),
                Kind::Form,
                "a choice needs `options`",
            ),
            (
                json!({ "user": "a", "title": "t", "fields": [{ "name": "Bad", "type": "text" }] }),
                Kind::Form,
                "field name 'Bad'",
            ),
        ];
        for (v, kind, wanted) in cases {
            let e = spec(v.clone()).check(kind).unwrap_err().to_string();
            assert!(e.contains(wanted), "{v}: {e}");
        }
    }
}
