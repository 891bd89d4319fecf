//! The web front end: one page (`web/index.html`, `app.js`, `app.css`, embedded in the
//! binary) that lists, adds, searches, tags and deletes bookmarks through the JSON API. With
//! an AI-Ops core configured, the page includes the core's browser instrumentation.

use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

use crate::faults::FrontendRelease;
use crate::AppState;

const INDEX: &str = include_str!("../web/index.html");
const SCRIPT: &str = include_str!("../web/app.js");
const STYLE: &str = include_str!("../web/app.css");
/// Where the instrumentation script tag goes in the page.
const SCRIPT_SLOT: &str = "<!--aiops-->";
/// The front end's name in its reports.
pub const WEB_APP: &str = "bookmarks-web";

fn attribute(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

/// How the page is set up.
#[derive(Debug, Clone, Default)]
pub struct PageSettings {
    /// The AI-Ops core whose `browser.js` instruments the page; none: not instrumented.
    pub aiops_url: Option<String>,
    /// The API's origin when the page is served apart from it; none: where the page came from.
    pub api_base: Option<String>,
    /// How long the page waits for a call, in milliseconds; none: 8000.
    pub timeout_ms: Option<u64>,
    /// The API token the page sends, when the API has one.
    pub api_token: Option<String>,
}

/// The page as `settings` describe it.
pub(crate) fn page_html(settings: &PageSettings) -> String {
    let aiops_url = settings.aiops_url.as_deref();
    let api_base = settings.api_base.as_deref();
    let base = api_base.map(|b| b.trim_end_matches('/')).unwrap_or("");
    let tag = aiops_url.map_or_else(String::new, |url| {
        let src = attribute(&format!("{}/v1/browser.js", url.trim_end_matches('/')));
        let api = attribute(&format!("{base}/api/"));
        format!(r#"<script src="{src}" data-app="{WEB_APP}" data-api="{api}"></script>"#)
    });
    let mut extra = settings.timeout_ms.map(|ms| format!(r#" data-timeout-ms="{ms}""#)).unwrap_or_default();
    if let Some(token) = &settings.api_token {
        extra.push_str(&format!(r#" data-api-token="{}""#, attribute(token)));
    }
    INDEX.replace(SCRIPT_SLOT, &tag).replace(
        r#"<script src="/app.js"></script>"#,
        &format!(r#"<script src="/app.js" data-api-base="{}"{extra}></script>"#, attribute(base)),
    )
}

/// The front end alone, for serving it from another origin than the API (`api_base`, which
/// must list this origin in its `cors_origins`).
pub fn web_router(settings: &PageSettings) -> axum::Router {
    let page = page_html(settings);
    axum::Router::new()
        .route("/", axum::routing::get(move || async move { Html(page) }))
        .route(
            "/app.js",
            axum::routing::get(|| async {
                ([(header::CONTENT_TYPE, "application/javascript; charset=utf-8")], SCRIPT)
            }),
        )
        .route("/app.css", axum::routing::get(style))
}

pub(crate) async fn index(State(state): State<AppState>) -> Html<String> {
    Html(state.index_html().to_owned())
}

/// The page's script; under the `frontend_skew` fault, release 2.0.0 of it, built against an
/// API where a bookmark's `url` is called `link` and the collection is `/api/bookmark`.
pub(crate) async fn script(State(state): State<AppState>) -> Response {
    let script = match state.faults().frontend() {
        FrontendRelease::Good => SCRIPT.to_owned(),
        FrontendRelease::Skewed => skewed_script(),
        FrontendRelease::NoAuth => SCRIPT.replace(SENDS_TOKEN, "if (false) {"),
    };
    ([(header::CONTENT_TYPE, "application/javascript; charset=utf-8")], script).into_response()
}

/// Each change the skewed release makes: (the good text, the skewed text).
const SKEW: [(&str, &str); 2] = [
    ("const bookmark = { url: $(\"url\").value.trim()", "const bookmark = { link: $(\"url\").value.trim()"),
    (
        "remove(id) { return this.call(\"DELETE\", `/api/bookmarks/",
        "remove(id) { return this.call(\"DELETE\", `/api/bookmark/",
    ),
];

/// Where the page adds its API token; release 2.0.1 lost it.
const SENDS_TOKEN: &str = "if (API_TOKEN) {";

fn skewed_script() -> String {
    SKEW.iter().fold(SCRIPT.to_owned(), |script, (good, skewed)| script.replace(good, skewed))
}

pub(crate) async fn style() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response()
}

#[cfg(test)]
mod tests {
    use super::{page_html, PageSettings};

    fn index_html(aiops_url: Option<&str>, api_base: Option<&str>) -> String {
        page_html(&PageSettings {
            aiops_url: aiops_url.map(str::to_owned),
            api_base: api_base.map(str::to_owned),
            ..PageSettings::default()
        })
    }

    #[test]
    fn the_skewed_release_changes_what_it_says() {
        assert_eq!(super::SCRIPT.matches(super::SENDS_TOKEN).count(), 1);
        for (good, skewed) in super::SKEW {
            assert_eq!(super::SCRIPT.matches(good).count(), 1, "{good}");
            assert!(super::skewed_script().contains(skewed));
        }
    }

    #[test]
    fn the_page_includes_the_cores_script_only_when_configured() {
        assert!(!index_html(None, None).contains("browser.js"));
        let page = index_html(Some("http://127.0.0.1:7070/"), None);
        assert!(
            page.contains(r#"<script src="http://127.0.0.1:7070/v1/browser.js" data-app="bookmarks-web""#),
            "{page}"
        );
        assert!(!index_html(Some("http://x/\"><script>"), None).contains("\"><script>"));
        let elsewhere = index_html(Some("http://core"), Some("http://api:8080/"));
        assert!(elsewhere.contains(r#"data-api="http://api:8080/api/""#), "{elsewhere}");
        assert!(
            elsewhere.contains(r#"<script src="/app.js" data-api-base="http://api:8080"></script>"#),
            "{elsewhere}"
        );
    }
}
