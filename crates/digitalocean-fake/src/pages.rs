//! Lists as DigitalOcean pages them: `page` and `per_page` from the query, one
//! page of the items, `links.pages` (`first`, `prev`, `last`, `next`, each with
//! the request's other query parameters) and `meta.total`.

use openapi_fake::pages::Page;
use serde_json::{Value, json};

use crate::server::{Call, Reply};

/// Page size when `per_page` is absent.
pub const DEFAULT_PER_PAGE: usize = 20;
/// Largest `per_page`.
pub const MAX_PER_PAGE: usize = 200;

/// The page of `items` the call asks for, as `{key: [...], links, meta}`.
pub(crate) fn page_of(call: &Call<'_>, key: &str, items: Vec<Value>) -> Reply {
    let (page, slice) = Page::of(call.query, DEFAULT_PER_PAGE, MAX_PER_PAGE, items);
    let (per_page, last, total) = (page.per_page, page.last, page.total);
    let page = page.number;
    let others: Vec<String> = call
        .query
        .iter()
        .filter(|(key, _)| key != "page" && key != "per_page")
        .map(|(key, value)| format!("{key}={}", encode(value)))
        .collect();
    let link = |target: usize| {
        let mut query = others.clone();
        query.push(format!("page={target}"));
        query.push(format!("per_page={per_page}"));
        format!("{}{}?{}", call.base, call.path, query.join("&"))
    };
    let mut pages = serde_json::Map::new();
    if page > 1 {
        pages.insert("first".into(), json!(link(1)));
        pages.insert("prev".into(), json!(link(page - 1)));
    }
    if page < last {
        pages.insert("last".into(), json!(link(last)));
        pages.insert("next".into(), json!(link(page + 1)));
    }
    let links = if pages.is_empty() {
        json!({})
    } else {
        json!({ "pages": pages })
    };
    Reply::json(
        200,
        json!({key: slice, "links": links, "meta": {"total": total}}),
    )
}

/// Percent-encodes a query value (enough for record names such as `*.pr.example.com`).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("*.pr.example.com"), "%2A.pr.example.com");
        assert_eq!(encode("a b"), "a%20b");
    }
}
