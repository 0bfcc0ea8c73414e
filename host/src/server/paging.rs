//! The one way every API list pages: `limit` (1 to [`MAX_LIMIT`], default
//! [`DEFAULT_LIMIT`]), `sort` (a field of the list's documented set, `-field` for
//! descending) and `cursor` (opaque: base64url of the last item's sort key and id, as the
//! previous page's `next_cursor` gave it). Answers are `{"items": [...], "next_cursor":
//! "..." | null}`. Pure: the queries are in `store::page`.

use crate::store::page::{Keyset, SortKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

/// Items in a page when the request does not say, and the most it may ask for.
pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

/// A request's paging refused: the message names the parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagingError(pub String);

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
            _ => Err(PagingError(format!(
                "limit '{text}' must be a whole number from 1 to {MAX_LIMIT}"
            ))),
        },
    }
}

/// `sort`: `field` (ascending) or `-field` (descending), where field is one of `allowed`;
/// `default` (in the same form) if absent.
pub fn sort(
    text: Option<&str>,
    allowed: &[&'static str],
    default: &str,
) -> Result<(&'static str, bool), PagingError> {
    let text = text.unwrap_or(default);
    let (name, descending) = match text.strip_prefix('-') {
        Some(name) => (name, true),
        None => (text, false),
    };
    match allowed.iter().find(|a| **a == name) {
        Some(field) => Ok((field, descending)),
        None => Err(PagingError(format!(
            "cannot sort by '{name}'; sort by one of: {} (with '-' before it for descending)",
            allowed.join(", ")
        ))),
    }
}

/// The page a request asks for: its `sort`, `cursor` and `limit` (each `None` if absent).
pub fn keyset(
    sort_text: Option<&str>,
    cursor: Option<&str>,
    limit_text: Option<&str>,
    allowed: &[&'static str],
    default_sort: &str,
) -> Result<Keyset, PagingError> {
    let (column, descending) = sort(sort_text, allowed, default_sort)?;
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
    let bad = || {
        PagingError(format!(
            "cursor '{text}' is not a cursor this list gave; pass next_cursor from the previous page unchanged"
        ))
    };
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    let sort = sort_name(column, descending);
    if cursor.s != sort {
        return Err(PagingError(format!(
            "cursor belongs to sort '{}', not '{sort}'; keep the sort while paging",
            cursor.s
        )));
    }
    Ok((cursor.k, cursor.i))
}

/// A page as answered (and its schema in the OpenAPI document: `Paged<Item>` for each list).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Paged<T> {
    /// The items, in the requested order.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
}

/// `items` (one page read with `keyset`, `more` if others follow) as answered, with
/// `key_of` giving an item's sort key and id for the next cursor.
pub fn paged<T>(
    keyset: &Keyset,
    items: Vec<T>,
    more: bool,
    key_of: impl Fn(&T) -> (SortKey, String),
) -> Paged<T> {
    let next_cursor = match items.last() {
        Some(last) if more => {
            let (key, id) = key_of(last);
            Some(encode(keyset, key, &id))
        }
        _ => None,
    };
    Paged { items, next_cursor }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SORTS: &[&str] = &["received_at", "source"];

    #[test]
    fn limit_defaults_and_bounds() {
        assert_eq!(limit(None), Ok(50));
        assert_eq!(limit(Some("1")), Ok(1));
        assert_eq!(limit(Some("500")), Ok(500));
        for bad in ["0", "501", "-1", "ten", ""] {
            let e = limit(Some(bad)).unwrap_err();
            assert!(
                e.0.contains("limit") && e.0.contains("1 to 500"),
                "{bad}: {}",
                e.0
            );
        }
    }

    #[test]
    fn sort_reads_direction_and_refuses_unknown_fields() {
        assert_eq!(sort(None, SORTS, "-received_at"), Ok(("received_at", true)));
        assert_eq!(sort(Some("source"), SORTS, "-received_at"), Ok(("source", false)));
        assert_eq!(sort(Some("-source"), SORTS, "-received_at"), Ok(("source", true)));
        let e = sort(Some("title"), SORTS, "-received_at").unwrap_err();
        assert!(
            e.0.contains("'title'") && e.0.contains("received_at, source"),
            "{}",
            e.0
        );
        assert!(sort(Some("--source"), SORTS, "source").is_err());
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_refused() {
        let k = keyset(Some("-received_at"), None, Some("10"), SORTS, "source").unwrap();
        assert_eq!(
            (k.column, k.descending, k.limit, k.after.clone()),
            ("received_at", true, 10, None)
        );
        let c = encode(&k, SortKey::Int(42), "a1");
        let again = keyset(Some("-received_at"), Some(&c), None, SORTS, "source").unwrap();
        assert_eq!(again.after, Some((SortKey::Int(42), "a1".to_owned())));
        let text = encode(&k, SortKey::Text("x".into()), "a2");
        let k2 = keyset(Some("-received_at"), Some(&text), None, SORTS, "source").unwrap();
        assert_eq!(k2.after, Some((SortKey::Text("x".into()), "a2".to_owned())));
        // Garbage, and a cursor of another sort.
        for bad in ["!!", "bm90IGpzb24", ""] {
            let e = keyset(None, Some(bad), None, SORTS, "source").unwrap_err();
            assert!(e.0.starts_with("cursor"), "{bad}: {}", e.0);
        }
        let e = keyset(Some("source"), Some(&c), None, SORTS, "source").unwrap_err();
        assert!(
            e.0.starts_with("cursor") && e.0.contains("-received_at"),
            "{}",
            e.0
        );
    }

    #[test]
    fn next_cursor_only_when_more_follow() {
        let k = keyset(None, None, Some("2"), SORTS, "source").unwrap();
        let p = paged(&k, vec![1, 2], false, |n| (SortKey::Int(*n), n.to_string()));
        assert_eq!(p.next_cursor, None);
        let p = paged(&k, vec![1, 2], true, |n| (SortKey::Int(*n), n.to_string()));
        let after = keyset(None, p.next_cursor.as_deref(), None, SORTS, "source")
            .unwrap()
            .after;
        assert_eq!(after, Some((SortKey::Int(2), "2".to_owned())));
    }
}
