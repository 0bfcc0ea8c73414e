//! The one template environment of every page Osprey serves (the console's, the sign-in
//! page, the answer and escalation links, the inbox): the templates of `templates/`,
//! compiled into the binary and once at start, their filters, and their escaping. Every
//! value a template prints is escaped for HTML (`& < > " '` as entities, by `html-escape`)
//! unless Rust code marked it safe, so no page escapes by hand.

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, Error, Output, State};
use std::sync::{LazyLock, OnceLock};

/// A line every console page shows above its content (`osprey demo` sets "Demo: ..."), set
/// once for the process before the server starts.
static BANNER: OnceLock<String> = OnceLock::new();

/// Show `text` at the top of every console page of this process.
pub(crate) fn set_banner(text: &str) {
    let _ = BANNER.set(text.to_owned());
}

/// `template` rendered with `ctx`.
pub(crate) fn render(template: &str, ctx: Value) -> Result<String, Error> {
    TEMPLATES.get_template(template)?.render(ctx)
}

/// The templates, compiled once.
static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    for (name, source) in TEMPLATE_SOURCES {
        if let Err(e) = env.add_template(name, source) {
            // A test compiles every template, so this is a build that skipped the tests.
            panic!("page template {name} does not compile: {e}");
        }
    }
    env.set_formatter(escaping_formatter);
    env.add_function("banner", || BANNER.get().cloned());
    env.add_filter("time", |ms: i64| crate::mail::message::format_time(ms));
    env.add_filter("duration_ms", |ms: i64| {
        humantime::format_duration(std::time::Duration::from_millis(ms.max(0) as u64)).to_string()
    });
    env.add_filter("urlpath", |s: String| -> String {
        percent_encoding::utf8_percent_encode(&s, percent_encoding::NON_ALPHANUMERIC).to_string()
    });
    env.add_filter("json", |v: Value| -> String {
        serde_json::to_string_pretty(&v).unwrap_or_default()
    });
    env
});

/// Prints a value into an HTML template: a text not marked safe is escaped for HTML text
/// and quoted attributes alike; everything else (numbers, safe text, other formats) as
/// minijinja prints it.
fn escaping_formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    match value.as_str() {
        Some(text) if *state.auto_escape() == AutoEscape::Html && !value.is_safe() => {
            out.write_str(&html_escape::encode_quoted_attribute(text))?;
            Ok(())
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

const TEMPLATE_SOURCES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("message.html", include_str!("templates/message.html")),
    ("dashboard.html", include_str!("templates/dashboard.html")),
    ("incidents.html", include_str!("templates/incidents.html")),
    ("incident.html", include_str!("templates/incident.html")),
    ("playbooks.html", include_str!("templates/playbooks.html")),
    ("playbook.html", include_str!("templates/playbook.html")),
    (
        "playbook_chart.html",
        include_str!("templates/playbook_chart.html"),
    ),
    ("runs.html", include_str!("templates/runs.html")),
    ("run.html", include_str!("templates/run.html")),
    ("plugins.html", include_str!("templates/plugins.html")),
    ("plugin.html", include_str!("templates/plugin.html")),
    (
        "plugin_install.html",
        include_str!("templates/plugin_install.html"),
    ),
    ("plugin_review.html", include_str!("templates/plugin_review.html")),
    ("audit.html", include_str!("templates/audit.html")),
    ("lists.html", include_str!("templates/lists.html")),
    ("list.html", include_str!("templates/list.html")),
    ("requests.html", include_str!("templates/requests.html")),
    ("request.html", include_str!("templates/request.html")),
    ("inbox.html", include_str!("templates/inbox.html")),
    ("question_form.html", include_str!("templates/question_form.html")),
    ("plain.html", include_str!("templates/plain.html")),
    ("plain_message.html", include_str!("templates/plain_message.html")),
    ("login.html", include_str!("templates/login.html")),
    ("signed_in.html", include_str!("templates/signed_in.html")),
    ("cross_site.html", include_str!("templates/cross_site.html")),
    ("answer.html", include_str!("templates/answer.html")),
    ("escalate.html", include_str!("templates/escalate.html")),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles_and_escapes() {
        for (name, _) in TEMPLATE_SOURCES {
            TEMPLATES.get_template(name).unwrap();
        }
        let html = render(
            "message.html",
            minijinja::context! {
                user => minijinja::context! { name => "<b>eve</b>", csrf => "c\"x'", roles => ["admin"] },
                nav => Vec::<Value>::new(),
                title => "T",
                heading => "<script>alert(1)</script>",
                message => "a & b",
            },
        )
        .unwrap();
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(
            html.contains("&lt;b&gt;eve&lt;/b&gt;") && html.contains("a &amp; b"),
            "{html}"
        );
        assert!(
            html.contains("c&quot;x&#x27;") && !html.contains("c\"x"),
            "attribute values are escaped too: {html}"
        );
        // Numbers, and text Rust marked safe, print as they are.
        let html = render(
            "plain_message.html",
            minijinja::context! { title => 7, heading => Value::from_safe_string("<em>h</em>".into()), message => "m" },
        )
        .unwrap();
        assert!(
            html.contains("<title>7 · Osprey</title>") && html.contains("<em>h</em>"),
            "{html}"
        );
    }
}
