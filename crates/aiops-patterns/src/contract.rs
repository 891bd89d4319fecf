//! `ApiContract`: what a back end's OpenAPI document promises, and where a front end's call
//! departs from it (contract drift): a path the API does not serve (and the one it probably
//! meant), a method the path does not take, a body field the API does not know or a required
//! one the call left out (read from the back end's validation message).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// One operation the API serves.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Operation {
    /// Body fields the operation knows, and which of them it requires.
    known_fields: BTreeSet<String>,
    required_fields: BTreeSet<String>,
}

/// The routes and request bodies of an API, from its OpenAPI 3 document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiContract {
    /// Path template (`/api/bookmarks/{id}`) → method (upper case) → operation.
    paths: BTreeMap<String, BTreeMap<String, Operation>>,
}

/// A path's segments with every parameter (`{id}`, `:id`) as `*`.
fn shape(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(|s| if s.starts_with('{') || s.starts_with(':') { "*".to_owned() } else { s.to_owned() })
        .collect()
}

/// Edit distance between two strings (characters).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != *cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

/// How far a called path is from a served one: segment by segment, `*` matching anything;
/// `None` when their lengths differ.
fn path_distance(called: &[String], served: &[String]) -> Option<usize> {
    (called.len() == served.len())
        .then(|| called.iter().zip(served).map(|(c, s)| if c == "*" || s == "*" { 0 } else { distance(c, s) }).sum())
}

/// Resolves `#/components/schemas/X` references (one level) in a schema.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str().and_then(|r| r.strip_prefix("#/components/schemas/")) {
        Some(name) => &doc["components"]["schemas"][name],
        None => schema,
    }
}

/// The text between the first pair of backticks after `marker` in `text`.
fn quoted_after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let start = rest.find('`')? + 1;
    let end = rest[start..].find('`')? + start;
    Some(&rest[start..end])
}

impl ApiContract {
    /// Reads the paths, methods and JSON request bodies of an OpenAPI 3 document.
    pub fn from_openapi(doc: &Value) -> Self {
        let mut paths = BTreeMap::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            let mut methods = BTreeMap::new();
            for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
                let Some(operation) = item.get(method) else { continue };
                let schema = resolve(doc, &operation["requestBody"]["content"]["application/json"]["schema"]);
                let names = |key: &str| -> BTreeSet<String> {
                    match &schema[key] {
                        Value::Object(map) => map.keys().cloned().collect(),
                        Value::Array(items) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
                        _ => BTreeSet::new(),
                    }
                };
                let known_fields = names("properties");
                let required_fields = names("required");
                methods.insert(method.to_ascii_uppercase(), Operation { known_fields, required_fields });
            }
            paths.insert(path.clone(), methods);
        }
        Self { paths }
    }

    /// Whether the document described any path.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    fn served(&self, path: &str) -> Option<(&String, &BTreeMap<String, Operation>)> {
        let called = shape(path);
        self.paths.iter().find(|(served, _)| shape(served) == called)
    }

    /// Where a call (`method`, path template with `:id` or `{id}` parameters) that was answered
    /// with `status` and the error text `error` departs from the contract; empty when it
    /// does not (or nothing can be said).
    pub fn drift(&self, method: &str, path: &str, status: u16, error: &str) -> Vec<String> {
        let method = method.to_ascii_uppercase();
        let Some((served_path, methods)) = self.served(path) else {
            let called = shape(path);
            let nearest = self
                .paths
                .iter()
                .filter(|(_, methods)| methods.contains_key(&method))
                .filter_map(|(served, _)| path_distance(&called, &shape(served)).map(|d| (d, served)))
                .min();
            return vec![match nearest {
                Some((d, served)) if d <= 3 => format!(
                    "contract drift: the page calls {method} {path}, the API serves {method} {served} (no route {path})"
                ),
                _ => format!("contract drift: the page calls {method} {path}, which the API does not serve"),
            }];
        };
        let Some(operation) = methods.get(&method) else {
            let allowed: Vec<&str> = methods.keys().map(String::as_str).collect();
            return vec![format!(
                "contract drift: the page calls {method} {path}, the API serves {served_path} only with {}",
                allowed.join(", ")
            )];
        };
        if !matches!(status, 400 | 422) {
            return Vec::new();
        }
        let mut drift = Vec::new();
        if let Some(field) = quoted_after(error, "unknown field") {
            let required: Vec<String> = operation.required_fields.iter().map(|f| format!("`{f}`")).collect();
            let mut line =
                format!("contract drift: the page sends `{field}`, which {method} {served_path} does not know");
            if !operation.known_fields.contains(field) && !required.is_empty() {
                line.push_str(&format!("; the API requires {}", required.join(", ")));
            }
            drift.push(line);
        }
        if let Some(field) = quoted_after(error, "missing field") {
            drift.push(format!(
                "contract drift: the page does not send `{field}`, which {method} {served_path} requires"
            ));
        }
        drift
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::ApiContract;

    fn contract() -> ApiContract {
        ApiContract::from_openapi(&json!({
            "openapi": "3.1.0",
            "paths": {
                "/api/bookmarks": {
                    "get": {},
                    "post": { "requestBody": { "content": { "application/json": { "schema": { "$ref": "#/components/schemas/NewBookmark" } } } } }
                },
                "/api/bookmarks/{id}": { "get": {}, "delete": {} },
                "/api/bookmarks/{id}/tags": { "put": {} }
            },
            "components": { "schemas": { "NewBookmark": {
                "type": "object", "required": ["url"],
                "properties": { "url": {}, "title": {}, "tags": {} }
            } } }
        }))
    }

    #[test]
    fn a_renamed_route_names_the_one_the_api_serves() {
        let drift = contract().drift("DELETE", "/api/bookmark/:id", 404, "");
        assert_eq!(
            drift,
            ["contract drift: the page calls DELETE /api/bookmark/:id, the API serves DELETE /api/bookmarks/{id} (no route /api/bookmark/:id)"]
        );
        let drift = contract().drift("GET", "/v2/everything/:id/else", 404, "");
        assert_eq!(drift, ["contract drift: the page calls GET /v2/everything/:id/else, which the API does not serve"]);
    }

    #[test]
    fn a_wrong_method_and_wrong_fields_are_named() {
        assert_eq!(
            contract().drift("PATCH", "/api/bookmarks/:id", 405, ""),
            ["contract drift: the page calls PATCH /api/bookmarks/:id, the API serves /api/bookmarks/{id} only with DELETE, GET"]
        );
        let error = r#"{"error":{"code":"invalid_body","message":"unknown field `link`, expected one of `url`, `title`, `tags`"}}"#;
        assert_eq!(
            contract().drift("POST", "/api/bookmarks", 422, error),
            ["contract drift: the page sends `link`, which POST /api/bookmarks does not know; the API requires `url`"]
        );
        let error = "missing field `url` at line 1 column 2";
        assert_eq!(
            contract().drift("POST", "/api/bookmarks", 422, error),
            ["contract drift: the page does not send `url`, which POST /api/bookmarks requires"]
        );
        assert!(contract().drift("GET", "/api/bookmarks", 500, "boom").is_empty(), "a 500 is no contract matter");
    }
}
