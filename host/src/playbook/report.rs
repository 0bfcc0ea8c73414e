//! Documents a playbook builds to send (`send_email`'s attachments): `csv(rows, columns)`, a
//! CSV by the `csv` crate, and `html_report(#{ title, intro, sections, footer })`, an HTML page
//! rendered by minijinja with auto-escaping (every text a script gives is escaped; nothing is
//! marked safe). Pure, like the rest of `api.rs`: no effect, no step. Each output is written
//! through a writer that refuses to grow past `max_string_bytes`, so a document over the
//! limit is refused before it is built whole.
//!
//! Rows are maps; a column is a key (`"title"`), or `#{ key, label }` to head it with another
//! name. A cell is the row's value for the key: text as it is, `()` (or a missing key) empty,
//! anything else as JSON.

use super::json;
use rhai::{Array, Dynamic, EvalAltResult, Map, NativeCallContext};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::io::Write;

type Result<T> = std::result::Result<T, Box<EvalAltResult>>;

/// Columns of one table, at most.
pub const MAX_COLUMNS: usize = 100;

/// A column as a script names it.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum ColumnSpec {
    Key(String),
    Labelled { key: String, label: String },
}

/// A column: the key its cells are read from, and its heading.
#[derive(Debug, Clone, Serialize)]
struct Column {
    key: String,
    label: String,
}

impl From<ColumnSpec> for Column {
    fn from(c: ColumnSpec) -> Column {
        match c {
            ColumnSpec::Key(key) => Column {
                label: key.clone(),
                key,
            },
            ColumnSpec::Labelled { key, label } => Column { key, label },
        }
    }
}

/// A table's rows as the cells of its columns.
fn cells(rows: &[Value], columns: &[Column]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|row| {
            columns
                .iter()
                .map(|c| match row.get(&c.key) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(other) => other.to_string(),
                })
                .collect()
        })
        .collect()
}

/// Why a table or report was refused (the function's name is put before it).
fn refused(function: &str, message: impl std::fmt::Display) -> Box<EvalAltResult> {
    format!("{function}: {message}").into()
}

/// The script's value as JSON, within the string limit.
fn to_json(ctx: &NativeCallContext, function: &str, v: &Dynamic) -> Result<Value> {
    json::to_json_value(v, max_string(ctx)).map_err(|e| refused(function, e))
}

fn max_string(ctx: &NativeCallContext) -> usize {
    match ctx.engine().max_string_size() {
        0 => usize::MAX,
        n => n,
    }
}

/// Columns read from what the script gave: each a key or `#{ key, label }`.
fn columns(function: &str, given: Value) -> Result<Vec<Column>> {
    let specs: Vec<ColumnSpec> = serde_json::from_value(given).map_err(|_| {
        refused(
            function,
            "columns must be an array of keys (\"title\") or #{ key, label } maps",
        )
    })?;
    if specs.is_empty() || specs.len() > MAX_COLUMNS {
        return Err(refused(
            function,
            format!("{} columns: give 1 to {MAX_COLUMNS}", specs.len()),
        ));
    }
    Ok(specs.into_iter().map(Column::from).collect())
}

/// Rows read from what the script gave: each a map.
fn rows(function: &str, given: Value) -> Result<Vec<Value>> {
    match given {
        Value::Array(rows) if rows.iter().all(Value::is_object) => Ok(rows),
        _ => Err(refused(function, "rows must be an array of maps")),
    }
}

/// A writer that refuses to hold more than `max` bytes.
struct Bounded {
    out: Vec<u8>,
    max: usize,
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.out.len() + buf.len() > self.max {
            return Err(std::io::Error::other("over the limit"));
        }
        self.out.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn too_big(function: &str, max: usize) -> Box<EvalAltResult> {
    refused(
        function,
        format!("the result would be over {max} bytes (limit max_string_bytes)"),
    )
}

/// A cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, carriage return
/// first) starts with `'` instead, as OWASP's "CSV injection" advice says: a report's cells
/// come from alerts, which anyone can write.
fn defused(cell: String) -> String {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => format!("'{cell}"),
        _ => cell,
    }
}

/// `csv(rows, columns)`: a heading line of the columns' labels, then one line per row
/// (RFC 4180 quoting, `\n` line ends).
fn csv_text(ctx: &NativeCallContext, rows_given: Array, columns_given: Array) -> Result<String> {
    const F: &str = "csv";
    let columns = columns(F, to_json(ctx, F, &Dynamic::from_array(columns_given))?)?;
    let rows = rows(F, to_json(ctx, F, &Dynamic::from_array(rows_given))?)?;
    let max = max_string(ctx);
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Bounded { out: Vec::new(), max });
    let fail = |e: csv::Error| match e.kind() {
        csv::ErrorKind::Io(_) => too_big(F, max),
        _ => refused(F, e),
    };
    writer
        .write_record(columns.iter().map(|c| defused(c.label.clone())))
        .map_err(fail)?;
    for row in cells(&rows, &columns) {
        writer.write_record(row.into_iter().map(defused)).map_err(fail)?;
    }
    writer.flush().map_err(|_| too_big(F, max))?;
    let bounded = writer.into_inner().map_err(|_| too_big(F, max))?;
    String::from_utf8(bounded.out).map_err(|_| refused(F, "the CSV is not UTF-8"))
}

/// `html_report`'s map.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportSpec {
    title: String,
    #[serde(default)]
    intro: String,
    #[serde(default)]
    sections: Vec<SectionSpec>,
    #[serde(default)]
    footer: String,
}

/// One section: a heading, text, and a table if it names rows and columns.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SectionSpec {
    heading: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    columns: Option<Value>,
    #[serde(default)]
    rows: Option<Value>,
    /// Shown in place of an empty table.
    #[serde(default)]
    empty: Option<String>,
}

#[derive(Serialize)]
struct Section {
    heading: String,
    paragraphs: Vec<String>,
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
    table: bool,
    empty: String,
}

/// Text split into paragraphs at blank lines.
fn paragraphs(text: &str) -> Vec<String> {
    text.split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect()
}

const REPORT: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font-family: -apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #111827; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; line-height: 1.5; }
h1 { font-size: 1.6rem; margin-bottom: 0.5rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #e5e7eb; }
table { border-collapse: collapse; width: 100%; font-size: 0.95rem; }
th, td { border: 1px solid #e5e7eb; padding: 0.4rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f3f4f6; }
footer { margin-top: 2rem; color: #6b7280; font-size: 0.85rem; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
{% for p in intro %}<p>{{ p }}</p>
{% endfor %}
{%- for s in sections %}
<section>
<h2>{{ s.heading }}</h2>
{% for p in s.paragraphs %}<p>{{ p }}</p>
{% endfor %}
{%- if s.table %}{% if s.rows %}
<table>
<thead><tr>{% for c in s.columns %}<th>{{ c.label }}</th>{% endfor %}</tr></thead>
<tbody>
{% for row in s.rows %}<tr>{% for cell in row %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>
{% else %}<p>{{ s.empty }}</p>
{% endif %}{% endif %}
</section>
{%- endfor %}
{% for p in footer %}<footer>{{ p }}</footer>
{% endfor %}</body>
</html>
"#;

/// `html_report(#{ title, intro, sections: [#{ heading, text, columns, rows, empty }], footer })`:
/// a whole HTML page, every text escaped.
fn html_report(ctx: &NativeCallContext, spec: Map) -> Result<String> {
    const F: &str = "html_report";
    let given = to_json(ctx, F, &Dynamic::from_map(spec))?;
    let spec: ReportSpec = serde_json::from_value(given).map_err(|e| refused(F, e))?;
    let mut sections = Vec::new();
    for s in spec.sections {
        let (columns, rows, table) = match (s.columns, s.rows) {
            (Some(c), Some(r)) => {
                let columns = columns(F, c)?;
                let rows = cells(&rows(F, r)?, &columns);
                (columns, rows, true)
            }
            (None, None) => (Vec::new(), Vec::new(), false),
            _ => {
                return Err(refused(
                    F,
                    format!("section '{}': a table needs both columns and rows", s.heading),
                ));
            }
        };
        sections.push(Section {
            paragraphs: paragraphs(&s.text),
            heading: s.heading,
            columns,
            rows,
            table,
            empty: s.empty.unwrap_or_else(|| "None.".into()),
        });
    }
    let mut env = minijinja::Environment::new();
    // `.html`: minijinja escapes every value for HTML.
    env.add_template("report.html", REPORT)
        .map_err(|e| refused(F, e))?;
    let context = minijinja::context! {
        title => spec.title,
        intro => paragraphs(&spec.intro),
        sections => minijinja::Value::from(minijinja::value::Serde(sections)),
        footer => paragraphs(&spec.footer),
    };
    let max = max_string(ctx);
    let mut out = Bounded { out: Vec::new(), max };
    let template = env.get_template("report.html").map_err(|e| refused(F, e))?;
    template
        .render_captured_to(context, &mut out)
        .map_err(|e| match e.kind() {
            minijinja::ErrorKind::WriteFailure => too_big(F, max),
            _ => refused(F, e),
        })?;
    String::from_utf8(out.out).map_err(|_| refused(F, "the page is not UTF-8"))
}

/// Add the functions to the stateless module.
pub(super) fn register(m: &mut rhai::Module) {
    m.set_native_fn("csv", |ctx: NativeCallContext, rows: Array, columns: Array| {
        csv_text(&ctx, rows, columns)
    });
    m.set_native_fn("html_report", |ctx: NativeCallContext, spec: Map| {
        html_report(&ctx, spec)
    });
}

#[cfg(test)]
mod tests {
    use crate::playbook::engine::base_engine;
    use crate::playbook::limits::ScriptLimits;

    fn eval(source: &str) -> Result<String, String> {
        eval_limited(source, ScriptLimits::default())
    }

    fn eval_limited(source: &str, limits: ScriptLimits) -> Result<String, String> {
        base_engine(&limits)
            .eval::<String>(source)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn csv_quotes_as_rfc_4180_and_reads_back() {
        let text = eval(
            r#"csv([
                #{ id: "i1", title: "Ransomware on \"fs-01\", finance", severity: "critical", n: 3 },
                #{ id: "i2", title: "line\nbreak", n: (), extra: "ignored" },
                #{ id: "i3", title: "=HYPERLINK(\"http://evil\")", n: [1, 2] },
            ], ["id", #{ key: "title", label: "Title" }, "severity", "n"])"#,
        )
        .unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            ["id", "Title", "severity", "n"]
        );
        let rows: Vec<Vec<String>> = reader
            .records()
            .map(|r| r.unwrap().iter().map(str::to_owned).collect())
            .collect();
        assert_eq!(
            rows[0],
            ["i1", "Ransomware on \"fs-01\", finance", "critical", "3"]
        );
        assert_eq!(rows[1], ["i2", "line\nbreak", "", ""], "missing and () are empty");
        assert_eq!(
            rows[2],
            ["i3", "'=HYPERLINK(\"http://evil\")", "", "[1,2]"],
            "a formula is defused"
        );
        assert!(
            text.starts_with("id,Title,severity,n\ni1,\"Ransomware on \"\"fs-01\"\", finance\""),
            "{text}"
        );
    }

    #[test]
    fn csv_and_reports_refuse_bad_shapes_clearly() {
        for (source, says) in [
            (r#"csv([#{ a: 1 }], [])"#, "csv: 0 columns: give 1 to 100"),
            (r#"csv([1, 2], ["a"])"#, "csv: rows must be an array of maps"),
            (
                r#"csv([#{ a: 1 }], [1])"#,
                "csv: columns must be an array of keys",
            ),
            (
                r#"html_report(#{ sections: [] })"#,
                "html_report: missing field `title`",
            ),
            (
                r#"html_report(#{ title: "t", colour: 1 })"#,
                "html_report: unknown field `colour`",
            ),
            (
                r#"html_report(#{ title: "t", sections: [#{ heading: "h", rows: [] }] })"#,
                "html_report: section 'h': a table needs both columns and rows",
            ),
        ] {
            let e = eval(source).unwrap_err();
            assert!(e.contains(says), "{source}: {e}");
        }
    }

    #[test]
    fn documents_over_the_string_limit_are_refused_at_the_limit() {
        let limits = ScriptLimits {
            max_string_bytes: 4096,
            ..ScriptLimits::default()
        };
        let rows = r#"let rows = []; for i in 0..80 { rows.push(#{ id: `incident-${i}`, title: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" }); }"#;
        let e = eval_limited(&format!("{rows} csv(rows, [\"id\", \"title\"])"), limits).unwrap_err();
        assert!(e.contains("csv: ") && e.contains("4096 bytes"), "{e}");
        // Small as JSON, big as HTML (each `<` is written `&lt;`): the page stops at the limit.
        let brackets = r#"let rows = []; for i in 0..40 { rows.push(#{ id: `i${i}`, title: "<<<<<<<<<<<<<<<<<<<<" }); }"#;
        let e = eval_limited(
            &format!(
                "{brackets} html_report(#{{ title: \"t\", sections: [#{{ heading: \"h\", rows: rows, columns: [\"id\", \"title\"] }}] }})"
            ),
            limits,
        )
        .unwrap_err();
        assert!(
            e.contains("html_report: the result would be over 4096 bytes (limit max_string_bytes)"),
            "{e}"
        );
        let small = eval_limited(&format!("{rows} csv(rows.extract(0, 10), [\"id\"])"), limits).unwrap();
        assert_eq!(small.lines().count(), 11);
    }

    #[test]
    fn an_html_report_escapes_every_text() {
        let html = eval(
            r#"html_report(#{
                title: "Major <incidents> & more",
                intro: "First paragraph.\n\nSecond <b>bold</b>.",
                sections: [
                    #{ heading: "Open \"critical\"", text: "As of now.",
                       columns: ["id", #{ key: "title", label: "Title <x>" }],
                       rows: [#{ id: "i1", title: "<script>alert('x')</script>" }] },
                    #{ heading: "Closed", columns: ["id"], rows: [], empty: "Nothing closed." },
                    #{ heading: "Notes", text: "Only text." },
                ],
                footer: "Sent by Osprey",
            })"#,
        )
        .unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
        assert!(
            html.contains("<title>Major &lt;incidents&gt; &amp; more</title>"),
            "{html}"
        );
        assert!(
            html.contains("<p>Second &lt;b&gt;bold&lt;&#x2f;b&gt;.</p>"),
            "{html}"
        );
        assert!(html.contains("<h2>Open &quot;critical&quot;</h2>"), "{html}");
        assert!(html.contains("<th>Title &lt;x&gt;</th>"), "{html}");
        assert!(
            html.contains("<td>&lt;script&gt;alert(&#x27;x&#x27;)&lt;&#x2f;script&gt;</td>"),
            "{html}"
        );
        assert!(!html.contains("<script>") && !html.contains("<b>"), "{html}");
        assert!(html.contains("<p>Nothing closed.</p>"), "{html}");
        assert!(html.contains("<h2>Notes</h2>\n<p>Only text.</p>"), "{html}");
        assert!(html.contains("<footer>Sent by Osprey</footer>"), "{html}");
    }
}
