//! The one way every API list pages: `limit` (1 to [`MAX_LIMIT`], default
//! [`DEFAULT_LIMIT`]), `sort` (a field of the list's documented set, `-field` for
//! descending) and `cursor` (opaque: base64url of the last item's sort key and id, as the
//! previous page's `next_cursor` gave it). Answers are `{"items": [...], "next_cursor":
//! "..." | null}`. Pure: the queries are in `store::page`.
//!
//! Each list states its sorts once ([`Sorted`], on its item type): [`keyset`] reads a
//! request by them and [`PagingParams`] puts them, with `limit`'s bounds, in the OpenAPI
//! document, so the two cannot disagree.

use crate::store::page::{Keyset, Page, SortKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use std::marker::PhantomData;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{Required, Schema};

/// Items in a page when the request does not say, and the most it may ask for.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

/// A request's paging refused: the message names the parameter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PagingError {
    #[error("limit '{0}' must be a whole number from 1 to {MAX_LIMIT}")]
    Limit(String),
    #[error(
        "cannot sort by '{field}'; sort by one of: {} (with '-' before it for descending)",
        allowed.join(", ")
    )]
    Sort {
        field: String,
        allowed: &'static [&'static str],
    },
    #[error("cursor '{0}' is not a cursor this list gave; pass next_cursor from the previous page unchanged")]
    Cursor(String),
    #[error("cursor belongs to sort '{cursor}', not '{requested}'; keep the sort while paging")]
    CursorOfAnotherSort { cursor: String, requested: String },
}

/// What a cursor carries: the sort it belongs to, and the last item's key and id.
#[derive(Serialize, Deserialize)]
struct Cursor {
    s: String,
    k: SortKey,
    i: String,
}

/// `limit`: a whole number from 1 to [`MAX_LIMIT`], [`DEFAULT_LIMIT`] if absent.
pub fn limit(text: Option<&str>) -> Result<i64, PagingError> {
    match text {
        None => Ok(DEFAULT_LIMIT),
        Some(text) => match text.parse::<i64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            _ => Err(PagingError::Limit(text.to_owned())),
        },
    }
}

/// `sort`: `field` (ascending) or `-field` (descending), where field is one of `allowed`;
/// `default` (in the same form) if absent.
pub fn sort(
    text: Option<&str>,
    allowed: &'static [&'static str],
    default: &str,
) -> Result<(&'static str, bool), PagingError> {
    let text = text.unwrap_or(default);
    let (name, descending) = match text.strip_prefix('-') {
        Some(name) => (name, true),
        None => (text, false),
    };
    match allowed.iter().find(|a| **a == name) {
        Some(field) => Ok((field, descending)),
        None => Err(PagingError::Sort {
            field: name.to_owned(),
            allowed,
        }),
    }
}

/// A list that pages, by its item type: the fields it sorts by, its default sort (in
/// `sort`'s form, `-field` for descending), and where an item stands in each sort.
pub trait Sorted {
    const SORTS: &'static [&'static str];
    const DEFAULT_SORT: &'static str;

    /// This item's value of the sort field `column` (one of [`SORTS`](Self::SORTS)) and its
    /// unique id: what the cursor after it carries.
    fn position(&self, column: &str) -> (SortKey, String);
}

/// The page a request for a list of `T` asks for: its `sort`, `cursor` and `limit` (each
/// `None` if absent).
pub fn keyset<T: Sorted>(
    sort_text: Option<&str>,
    cursor: Option<&str>,
    limit_text: Option<&str>,
) -> Result<Keyset, PagingError> {
    let (column, descending) = sort(sort_text, T::SORTS, T::DEFAULT_SORT)?;
    let limit = limit(limit_text)?;
    let after = match cursor {
        None => None,
        Some(text) => Some(decode(text, column, descending)?),
    };
    Ok(Keyset {
        column,
        descending,
        after,
        limit,
    })
}

fn sort_name(column: &str, descending: bool) -> String {
    if descending {
        format!("-{column}")
    } else {
        column.to_owned()
    }
}

/// The cursor after the item with sort key `key` and id `id`, in the order of `keyset`.
pub fn encode(keyset: &Keyset, key: SortKey, id: &str) -> String {
    let cursor = Cursor {
        s: sort_name(keyset.column, keyset.descending),
        k: key,
        i: id.to_owned(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).unwrap_or_default())
}

/// A cursor as [`encode`] made it, for the same sort.
fn decode(text: &str, column: &str, descending: bool) -> Result<(SortKey, String), PagingError> {
    let bad = || PagingError::Cursor(text.to_owned());
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let sort = sort_name(column, descending);
    if cursor.s != sort {
        return Err(PagingError::CursorOfAnotherSort {
            cursor: cursor.s,
            requested: sort,
        });
    }
    Ok((cursor.k, cursor.i))
}

/// The paging parameters of the list of `T` in the OpenAPI document, for a handler's
/// `#[utoipa::path(params(..., PagingParams<T>))]`: `sort` as the enum of `T`'s fields
/// (each also with `-`), `limit` an integer from 1 to [`MAX_LIMIT`], and `cursor`.
pub struct PagingParams<T>(PhantomData<T>);

impl<T: Sorted> utoipa::IntoParams for PagingParams<T> {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let sorts = T::SORTS
            .iter()
            .flat_map(|f| [(*f).to_owned(), format!("-{f}")])
            .chain([String::new()]);
        let sort = ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(sorts))
            .default(Some(T::DEFAULT_SORT.into()));
        vec![
            query_parameter(
                "sort",
                &format!(
                    "{}, '-' before for descending; default (or empty) {}",
                    T::SORTS.join(", "),
                    T::DEFAULT_SORT
                ),
                sort.into(),
            ),
            limit_parameter(),
            query_parameter(
                "cursor",
                "next_cursor of the previous page, unchanged (keep the sort)",
                ObjectBuilder::new().schema_type(Type::String).into(),
            ),
        ]
    }
}

/// `limit` alone in the OpenAPI document, for a list of one page
/// (`params(LimitParam)`).
pub struct LimitParam;

impl utoipa::IntoParams for LimitParam {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        vec![limit_parameter()]
    }
}

/// `limit`: an integer from 1 to [`MAX_LIMIT`], as [`limit`] reads it.
fn limit_parameter() -> Parameter {
    let schema = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(1))
        .maximum(Some(MAX_LIMIT))
        .default(Some(DEFAULT_LIMIT.into()));
    query_parameter(
        "limit",
        &format!("At most this many, 1 to {MAX_LIMIT}; default {DEFAULT_LIMIT}"),
        schema.into(),
    )
}

/// An optional query parameter with `schema`.
fn query_parameter(name: &str, description: &str, schema: Schema) -> Parameter {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
        .build()
}

/// A page as answered (and its schema in the OpenAPI document: `Paged<Item>` for each list).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Paged<T> {
    /// The items, in the requested order.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// `page` (read with `keyset`) as answered: with the cursor after its last item when more
/// follow.
pub fn paged<T: Sorted>(keyset: &Keyset, page: Page<T>) -> Paged<T> {
    let next_cursor = match page.items.last() {
        Some(last) if page.more => {
            let (key, id) = last.position(keyset.column);
            Some(encode(keyset, key, &id))
        }
        _ => None,
    };
    Paged {
        items: page.items,
        next_cursor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SORTS: &[&str] = &["received_at", "source"];

    /// A list sorted by [`SORTS`], `source` by default: a number, sorted by itself whatever
    /// the column.
    struct Item(i64);
    impl Sorted for Item {
        const SORTS: &'static [&'static str] = SORTS;
        const DEFAULT_SORT: &'static str = "source";
        fn position(&self, _: &str) -> (SortKey, String) {
            (SortKey::Int(self.0), self.0.to_string())
        }
    }

    #[test]
    fn limit_defaults_and_bounds() {
        assert_eq!(limit(None), Ok(50));
        assert_eq!(limit(Some("1")), Ok(1));
        assert_eq!(limit(Some("500")), Ok(500));
        for bad in ["0", "501", "-1", "ten", ""] {
            let e = limit(Some(bad)).unwrap_err().to_string();
            assert!(e.contains("limit") && e.contains("1 to 500"), "{bad}: {e}");
        }
    }

    #[test]
    fn sort_reads_direction_and_refuses_unknown_fields() {
        assert_eq!(sort(None, SORTS, "-received_at"), Ok(("received_at", true)));
        assert_eq!(sort(Some("source"), SORTS, "-received_at"), Ok(("source", false)));
        assert_eq!(sort(Some("-source"), SORTS, "-received_at"), Ok(("source", true)));
        let e = sort(Some("title"), SORTS, "-received_at")
            .unwrap_err()
            .to_string();
        assert!(e.contains("'title'") && e.contains("received_at, source"), "{e}");
        assert!(sort(Some("--source"), SORTS, "source").is_err());
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let k = keyset::<Item>(Some("-received_at"), None, Some("10")).unwrap();
        assert_eq!(
            (k.column, k.descending, k.limit, k.after.clone()),
            ("received_at", true, 10, None)
        );
        let c = encode(&k, SortKey::Int(42), "a1");
        let again = keyset::<Item>(Some("-received_at"), Some(&c), None).unwrap();
        assert_eq!(again.after, Some((SortKey::Int(42), "a1".to_owned())));
        let text = encode(&k, SortKey::Text("x".into()), "a2");
        let k2 = keyset::<Item>(Some("-received_at"), Some(&text), None).unwrap();
        assert_eq!(k2.after, Some((SortKey::Text("x".into()), "a2".to_owned())));
        // Garbage, and a cursor of another sort.
        for bad in ["!!", "bm90IGpzb24", ""] {
            let e = keyset::<Item>(None, Some(bad), None).unwrap_err();
            assert!(e.to_string().starts_with("cursor"), "{bad}: {}", e);
        }
        let e = keyset::<Item>(Some("source"), Some(&c), None)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cursor") && e.contains("-received_at"), "{e}");
    }

    #[test]
    fn the_document_states_the_sorts_and_the_bounds() {
        use utoipa::IntoParams as _;
        let params = serde_json::to_value(PagingParams::<Item>::into_params(|| None)).unwrap();
        assert_eq!(params[0]["name"], "sort");
        assert_eq!(
            params[0]["schema"]["enum"],
            serde_json::json!(["received_at", "-received_at", "source", "-source", ""])
        );
        assert_eq!(params[0]["schema"]["default"], "source");
        assert_eq!(params[1]["name"], "limit");
        assert_eq!(params[1]["schema"]["type"], "integer");
        assert_eq!(params[1]["schema"]["minimum"], 1);
        assert_eq!(params[1]["schema"]["maximum"], MAX_LIMIT);
        assert_eq!(params[2]["name"], "cursor");
        for p in params.as_array().unwrap() {
            assert_eq!(p["in"], "query");
            assert_eq!(p["required"], false);
        }
    }

    #[test]
    fn next_cursor_only_when_more_follow() {
        let k = keyset::<Item>(None, None, Some("2")).unwrap();
        let page = |more| Page {
            items: vec![Item(1), Item(2)],
            more,
        };
        assert_eq!(paged(&k, page(false)).next_cursor, None);
        let p = paged(&k, page(true));
        let after = keyset::<Item>(None, p.next_cursor.as_deref(), None)
            .unwrap()
            .after;
        assert_eq!(after, Some((SortKey::Int(2), "2".to_owned())));
    }
}
