//! The API description, generated from the handlers' and types' annotations and served at
//! `GET /openapi.json`: what the AI-Ops core compares the front end's calls with.

use axum::Json;
use utoipa::OpenApi;

/// An error answer: `{"error": {"code", "message"}}`.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // Describes the JSON that `BookmarksError` writes; never built.
pub(crate) struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct ErrorDetail {
    /// Machine-friendly code, e.g. `invalid_url`.
    code: String,
    /// What to fix.
    message: String,
}

/// A page of bookmarks.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct BookmarkPage {
    bookmarks: Vec<crate::Bookmark>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Bookmarks API", description = "The bookmark manager's JSON API."),
    paths(crate::api::create, crate::api::list, crate::api::get_one, crate::api::set_tags, crate::api::delete_one)
)]
struct ApiDoc;

/// The OpenAPI document of the JSON API.
pub fn openapi_document() -> serde_json::Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}

pub(crate) async fn serve() -> Json<serde_json::Value> {
    Json(openapi_document())
}

#[cfg(test)]
mod tests {
    use super::openapi_document;

    #[test]
    fn the_document_describes_every_api_route_and_the_bodies_they_take() {
        let doc = openapi_document();
        let paths = doc["paths"].as_object().unwrap();
        let mut routes: Vec<&str> = paths.keys().map(String::as_str).collect();
        routes.sort_unstable();
        assert_eq!(routes, ["/api/bookmarks", "/api/bookmarks/{id}", "/api/bookmarks/{id}/tags"]);
        assert!(paths["/api/bookmarks/{id}"]["delete"].is_object());
        let new = &doc["components"]["schemas"]["NewBookmark"];
        assert_eq!(new["required"], serde_json::json!(["url"]), "{new}");
        assert!(new["properties"]["tags"].is_object());
    }
}
