//! The public JSON API (`/api/bookmarks...`), `/health`, and the input validation.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::db::{self, Bookmark, ListQuery};
use crate::error::{BookmarksError, BookmarksResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;

/// Longest URL accepted, in bytes.
pub(crate) const MAX_URL_LEN: usize = 2048;
const MAX_TITLE_CHARS: usize = 512;
const MAX_TAG_CHARS: usize = 64;
const MAX_TAGS: usize = 32;
const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 500;

/// Body of `POST /api/bookmarks`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewBookmark {
    /// The http(s) URL, at most 2048 bytes.
    url: String,
    /// A title, at most 512 characters; without one the title service is asked.
    #[serde(default)]
    title: Option<String>,
    /// Tags, at most 32 of 64 characters each.
    #[serde(default)]
    tags: Vec<String>,
}

/// Body of `PUT /api/bookmarks/{id}/tags`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TagsBody {
    /// The new tags, replacing the old ones.
    tags: Vec<String>,
}

/// Body of the `GET /api/bookmarks` answer.
#[derive(Serialize)]
struct BookmarkList<'a> {
    bookmarks: &'a [Bookmark],
}

/// Query of `GET /api/bookmarks`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Words that the title or URL must contain.
    #[serde(default)]
    q: Option<String>,
    /// A tag the bookmark must have.
    #[serde(default)]
    tag: Option<String>,
    /// Most bookmarks returned, 1 to 500; default 50.
    #[serde(default)]
    limit: Option<u32>,
}

/// Saves a bookmark.
#[utoipa::path(post, path = "/api/bookmarks", request_body = NewBookmark, responses(
    (status = 201, description = "saved", body = Bookmark),
    (status = 422, description = "invalid input or unknown fields", body = crate::openapi::ErrorBody),
    (status = 502, description = "a title was needed and the title service is unavailable", body = crate::openapi::ErrorBody),
))]
pub(crate) async fn create(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<NewBookmark>,
) -> BookmarksResult<(StatusCode, Json<Bookmark>)> {
    let url = validate_url(&body.url)?;
    let mut title = validate_title(body.title.as_deref())?;
    let tags = validate_tags(&body.tags)?;
    state.faults().on_write(tags.len())?;
    if let (None, Some((http, titles))) = (&title, state.titles()) {
        title = Some(crate::titles::fetch_title(http, titles, &url).await?);
    }
    let bookmark = db::create(&state.db().pool(), &url, title.as_deref(), &tags).await?;
    state.cache().clear();
    state.emit("bookmark.created", json!({ "id": bookmark.id, "url": bookmark.url }));
    Ok((StatusCode::CREATED, Json(bookmark)))
}

/// Lists bookmarks, newest first.
#[utoipa::path(get, path = "/api/bookmarks", params(ListParams), responses(
    (status = 200, description = "the bookmarks", body = crate::openapi::BookmarkPage),
    (status = 422, description = "invalid query", body = crate::openapi::ErrorBody),
))]
pub(crate) async fn list(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ListParams>,
) -> BookmarksResult<Response> {
    let searching = params.q.is_some();
    let query = list_query(params)?;
    if searching {
        state.faults().on_search()?;
        if let Some((cost, message)) = state.faults().search_cost() {
            tokio::time::sleep(cost).await;
            if let Some(client) = state.aiops() {
                client.report_error(aiops_model::ServiceError { kind: "database".into(), message, route: None });
            }
        }
    }
    if let Some(body) = state.cache().get(&query) {
        return Ok(json_bytes(body, "hit"));
    }
    let generation = state.cache().generation();
    let bookmarks = db::list(&state.db().pool(), &query).await?;
    // Serializing plain structs into a Vec cannot fail; should it ever, it is a bug (500).
    let body = serde_json::to_vec(&BookmarkList { bookmarks: &bookmarks })
        .map(Bytes::from)
        .map_err(|err| BookmarksError::Database { source: sqlx::Error::Decode(Box::new(err)) })?;
    state.cache().insert(generation, query, body.clone());
    Ok(json_bytes(body, "miss"))
}

fn json_bytes(body: Bytes, cache: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "application/json"), (header::HeaderName::from_static("x-cache"), cache)], body)
        .into_response()
}

/// One bookmark.
#[utoipa::path(get, path = "/api/bookmarks/{id}", params(("id" = i64, Path, description = "bookmark id")), responses(
    (status = 200, description = "the bookmark", body = Bookmark),
    (status = 404, description = "no such bookmark", body = crate::openapi::ErrorBody),
))]
pub(crate) async fn get_one(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> BookmarksResult<Json<Bookmark>> {
    let bookmark = db::get(&state.db().pool(), id).await?;
    bookmark.map(Json).ok_or(BookmarksError::NotFound { id })
}

/// Replaces a bookmark's tags.
#[utoipa::path(put, path = "/api/bookmarks/{id}/tags", params(("id" = i64, Path, description = "bookmark id")),
    request_body = TagsBody, responses(
    (status = 200, description = "the bookmark with its new tags", body = Bookmark),
    (status = 404, description = "no such bookmark", body = crate::openapi::ErrorBody),
    (status = 422, description = "invalid tags or unknown fields", body = crate::openapi::ErrorBody),
))]
pub(crate) async fn set_tags(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<TagsBody>,
) -> BookmarksResult<Json<Bookmark>> {
    let tags = validate_tags(&body.tags)?;
    let bookmark = db::set_tags(&state.db().pool(), id, &tags).await?;
    let bookmark = bookmark.ok_or(BookmarksError::NotFound { id })?;
    state.cache().clear();
    Ok(Json(bookmark))
}

/// Deletes a bookmark.
#[utoipa::path(delete, path = "/api/bookmarks/{id}", params(("id" = i64, Path, description = "bookmark id")), responses(
    (status = 204, description = "deleted"),
    (status = 404, description = "no such bookmark", body = crate::openapi::ErrorBody),
))]
pub(crate) async fn delete_one(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<i64>,
) -> BookmarksResult<StatusCode> {
    if !db::delete(&state.db().pool(), id).await? {
        return Err(BookmarksError::NotFound { id });
    }
    state.cache().clear();
    state.emit("bookmark.deleted", json!({ "id": id }));
    Ok(StatusCode::NO_CONTENT)
}

/// 200 `{"status":"ok"}` when a connection can be acquired and `SELECT 1` runs in time,
/// else 503 `{"status":"unavailable","error":...}`.
pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let checked = match state.db().ping().await {
        Ok(()) => state.faults().health().map_or(Ok(()), Err),
        Err(message) => Err(message),
    };
    match checked {
        Ok(()) => Json(json!({ "status": "ok", "release": state.faults().release() })).into_response(),
        Err(message) => {
            let body = json!({ "status": "unavailable", "error": message });
            let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
            response.extensions_mut().insert(aiops_model::ServiceError {
                kind: "database".to_owned(),
                message,
                route: None,
            });
            response
        }
    }
}

pub(crate) async fn no_route(uri: axum::http::Uri) -> BookmarksError {
    BookmarksError::NoRoute { path: uri.path().to_owned() }
}

fn invalid(code: &'static str, message: impl Into<String>) -> BookmarksError {
    BookmarksError::Invalid { code, message: message.into() }
}

fn list_query(params: ListParams) -> BookmarksResult<ListQuery> {
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(invalid("invalid_limit", format!("limit must be between 1 and {MAX_LIMIT}")));
    }
    let text = params.q.map(|q| q.trim().to_owned()).filter(|q| !q.is_empty());
    let tag = match params.tag.as_deref().map(str::trim).filter(|tag| !tag.is_empty()) {
        Some(tag) => Some(normalize_tag(tag)?),
        None => None,
    };
    Ok(ListQuery { text, tag, limit })
}

/// A trimmed http(s) URL with a host, at most [`MAX_URL_LEN`] bytes, no whitespace or
/// control characters.
fn validate_url(url: &str) -> BookmarksResult<String> {
    let url = url.trim();
    if url.len() > MAX_URL_LEN {
        return Err(invalid(
            "invalid_url",
            format!("url is {} bytes long, at most {MAX_URL_LEN} are allowed", url.len()),
        ));
    }
    let rest = ["http://", "https://"].iter().find_map(|scheme| {
        url.get(..scheme.len()).filter(|prefix| prefix.eq_ignore_ascii_case(scheme)).map(|_| &url[scheme.len()..])
    });
    let Some(rest) = rest else {
        return Err(invalid("invalid_url", "url must start with http:// or https://"));
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || host.starts_with('@') || host.ends_with(':') {
        return Err(invalid("invalid_url", "url must name a host"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid("invalid_url", "url must not contain whitespace or control characters"));
    }
    Ok(url.to_owned())
}

fn validate_title(title: Option<&str>) -> BookmarksResult<Option<String>> {
    let Some(title) = title.map(str::trim).filter(|title| !title.is_empty()) else {
        return Ok(None);
    };
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(invalid("invalid_title", format!("title must be at most {MAX_TITLE_CHARS} characters")));
    }
    if title.chars().any(char::is_control) {
        return Err(invalid("invalid_title", "title must not contain control characters"));
    }
    Ok(Some(title.to_owned()))
}

/// Tags are trimmed and lowercased; duplicates collapse; the result is sorted.
fn validate_tags(tags: &[String]) -> BookmarksResult<Vec<String>> {
    let mut normalized = tags.iter().map(|tag| normalize_tag(tag)).collect::<BookmarksResult<Vec<_>>>()?;
    normalized.sort();
    normalized.dedup();
    if normalized.len() > MAX_TAGS {
        return Err(invalid("invalid_tags", format!("at most {MAX_TAGS} tags are allowed")));
    }
    Ok(normalized)
}

fn normalize_tag(tag: &str) -> BookmarksResult<String> {
    let tag = tag.trim().to_lowercase();
    if tag.is_empty() {
        return Err(invalid("invalid_tags", "tags must not be empty"));
    }
    if tag.chars().count() > MAX_TAG_CHARS {
        return Err(invalid("invalid_tags", format!("tags must be at most {MAX_TAG_CHARS} characters")));
    }
    if tag.chars().any(char::is_control) {
        return Err(invalid("invalid_tags", "tags must not contain control characters"));
    }
    Ok(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_with_a_host_and_short_enough() {
        assert_eq!(validate_url(" https://example.com/a?b#c ").unwrap(), "https://example.com/a?b#c");
        assert!(validate_url("HTTP://Example.com").is_ok());
        for bad in ["ftp://example.com", "example.com", "http://", "https:///path", "http://a b", "javascript:alert(1)"]
        {
            assert!(validate_url(bad).is_err(), "{bad:?}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(matches!(validate_url(&long), Err(BookmarksError::Invalid { code: "invalid_url", .. })));
    }

    #[test]
    fn tags_are_trimmed_lowercased_and_deduplicated() {
        let tags = validate_tags(&[" Rust ".into(), "rust".into(), "db".into()]).unwrap();
        assert_eq!(tags, ["db", "rust"]);
        assert!(validate_tags(&["  ".into()]).is_err());
    }
}
