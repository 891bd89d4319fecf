//! The public API: round trip, search, tags, cache, and validation errors.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::{error_code, test_app};

fn urls(body: &Value) -> Vec<&str> {
    body["bookmarks"].as_array().unwrap().iter().map(|b| b["url"].as_str().unwrap()).collect()
}

#[tokio::test]
async fn create_list_search_tag_and_delete_round_trip() {
    let app = test_app(|_| {}).await;
    let created = app
        .call(
            Method::POST,
            "/api/bookmarks",
            Some(json!({"url": "https://www.rust-lang.org/", "title": "Rust", "tags": ["Lang", "rust"]})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let rust_id = created.body["id"].as_i64().unwrap();
    assert_eq!(created.body["title"], "Rust");
    assert_eq!(created.body["tags"], json!(["lang", "rust"]));
    assert!(created.body["created_at"].as_str().unwrap().ends_with('Z'));

    for body in [
        json!({"url": "https://sqlite.org/wal.html", "title": "Write-Ahead Logging", "tags": ["db"]}),
        json!({"url": "http://example.com/100%_done"}),
    ] {
        let answer = app.call(Method::POST, "/api/bookmarks", Some(body)).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    }

    let all = app.call(Method::GET, "/api/bookmarks", None).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(
        urls(&all.body),
        ["http://example.com/100%_done", "https://sqlite.org/wal.html", "https://www.rust-lang.org/"],
        "newest first"
    );
    assert_eq!(all.body["bookmarks"][0]["title"], Value::Null);

    let search = app.call(Method::GET, "/api/bookmarks?q=ahead", None).await;
    assert_eq!(urls(&search.body), ["https://sqlite.org/wal.html"], "title search is case-insensitive");
    let search = app.call(Method::GET, "/api/bookmarks?q=rust-lang", None).await;
    assert_eq!(urls(&search.body), ["https://www.rust-lang.org/"], "url search");
    let search = app.call(Method::GET, "/api/bookmarks?q=100%25_", None).await;
    assert_eq!(urls(&search.body), ["http://example.com/100%_done"], "% and _ match literally");
    let search = app.call(Method::GET, "/api/bookmarks?q=%25", None).await;
    assert_eq!(urls(&search.body).len(), 1);
    let tagged = app.call(Method::GET, "/api/bookmarks?tag=RUST", None).await;
    assert_eq!(urls(&tagged.body), ["https://www.rust-lang.org/"]);
    let limited = app.call(Method::GET, "/api/bookmarks?limit=1", None).await;
    assert_eq!(urls(&limited.body).len(), 1);

    let one = app.call(Method::GET, &format!("/api/bookmarks/{rust_id}"), None).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body, created.body);

    let retagged =
        app.call(Method::PUT, &format!("/api/bookmarks/{rust_id}/tags"), Some(json!({"tags": ["systems"]}))).await;
    assert_eq!(retagged.status, StatusCode::OK, "{}", retagged.body);
    assert_eq!(retagged.body["tags"], json!(["systems"]));
    let tagged = app.call(Method::GET, "/api/bookmarks?tag=rust", None).await;
    assert!(urls(&tagged.body).is_empty(), "the old tag no longer matches");
    let tagged = app.call(Method::GET, "/api/bookmarks?tag=systems", None).await;
    assert_eq!(urls(&tagged.body), ["https://www.rust-lang.org/"]);

    let deleted = app.call(Method::DELETE, &format!("/api/bookmarks/{rust_id}"), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = app.call(Method::GET, &format!("/api/bookmarks/{rust_id}"), None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&gone), "not_found");
    let again = app.call(Method::DELETE, &format!("/api/bookmarks/{rust_id}"), None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    let all = app.call(Method::GET, "/api/bookmarks", None).await;
    assert_eq!(urls(&all.body).len(), 2);
    let missing = app.call(Method::PUT, &format!("/api/bookmarks/{rust_id}/tags"), Some(json!({"tags": []}))).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn list_results_are_cached_until_the_next_write() {
    let app = test_app(|_| {}).await;
    let first = app.call(Method::GET, "/api/bookmarks?q=a", None).await;
    assert_eq!(first.headers["x-cache"], "miss");
    let second = app.call(Method::GET, "/api/bookmarks?q=a", None).await;
    assert_eq!(second.headers["x-cache"], "hit");
    assert_eq!(second.body, first.body);
    let other = app.call(Method::GET, "/api/bookmarks?q=b", None).await;
    assert_eq!(other.headers["x-cache"], "miss", "keyed by query");

    app.call(Method::POST, "/api/bookmarks", Some(json!({"url": "https://a.example"}))).await;
    let after_write = app.call(Method::GET, "/api/bookmarks?q=a", None).await;
    assert_eq!(after_write.headers["x-cache"], "miss", "writes invalidate");
    assert_eq!(after_write.body["bookmarks"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn invalid_input_answers_with_a_json_error() {
    let app = test_app(|_| {}).await;
    let cases = [
        (json!({"url": "ftp://example.com"}), "invalid_url"),
        (json!({"url": "example.com"}), "invalid_url"),
        (json!({"url": format!("https://example.com/{}", "a".repeat(2048))}), "invalid_url"),
        (json!({"url": "https://example.com", "colour": "red"}), "invalid_body"),
        (json!({"title": "no url"}), "invalid_body"),
        (json!({"url": "https://example.com", "tags": [""]}), "invalid_tags"),
        (json!({"url": 42}), "invalid_body"),
    ];
    for (body, code) in cases {
        let answer = app.call(Method::POST, "/api/bookmarks", Some(body.clone())).await;
        assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", answer.body);
        assert_eq!(error_code(&answer), code, "{body}");
    }
    let unknown =
        app.call(Method::POST, "/api/bookmarks", Some(json!({"url": "https://example.com", "colour": "red"}))).await;
    assert!(unknown.body["error"]["message"].as_str().unwrap().contains("unknown field `colour`"));

    let broken = app
        .send(
            Request::post("/api/bookmarks")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"url\": "))
                .unwrap(),
        )
        .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&broken), "malformed_request");

    let not_json = app.send(Request::post("/api/bookmarks").body(Body::from("url=https://example.com")).unwrap()).await;
    assert_eq!(not_json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(error_code(&not_json), "unsupported_media_type");

    let huge = json!({"url": "https://example.com", "title": "x".repeat(70 * 1024)});
    let too_large = app.call(Method::POST, "/api/bookmarks", Some(huge)).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(error_code(&too_large), "payload_too_large");

    let bad_limit = app.call(Method::GET, "/api/bookmarks?limit=0", None).await;
    assert_eq!(bad_limit.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&bad_limit), "invalid_limit");
    let bad_param = app.call(Method::GET, "/api/bookmarks?sort=asc", None).await;
    assert_eq!(bad_param.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&bad_param), "malformed_request");
    let bad_id = app.call(Method::GET, "/api/bookmarks/abc", None).await;
    assert_eq!(bad_id.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&bad_id), "malformed_request");
    let no_route = app.call(Method::GET, "/nope", None).await;
    assert_eq!(no_route.status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&no_route), "not_found");

    let all = app.call(Method::GET, "/api/bookmarks", None).await;
    assert!(all.body["bookmarks"].as_array().unwrap().is_empty(), "nothing invalid was stored");
}

#[tokio::test]
async fn health_is_ok_with_a_working_database() {
    let app = test_app(|_| {}).await;
    let health = app.call(Method::GET, "/health", None).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body, json!({"status": "ok", "release": "1.0.0"}));
}

#[tokio::test]
async fn data_survives_reopening_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let config = bookmarks::BookmarksConfig::new(dir.path().join("b.db"));
    {
        let state = bookmarks::AppState::open(&config, None).await.unwrap();
        let app =
            crate::TestApp { router: bookmarks::router(state.clone()), state, _dir: tempfile::tempdir().unwrap() };
        let answer =
            app.call(Method::POST, "/api/bookmarks", Some(json!({"url": "https://kept.example", "tags": ["t"]}))).await;
        assert_eq!(answer.status, StatusCode::CREATED);
        app.state.close().await;
    }
    let state = bookmarks::AppState::open(&config, None).await.unwrap();
    let app = crate::TestApp { router: bookmarks::router(state.clone()), state, _dir: dir };
    let all = app.call(Method::GET, "/api/bookmarks?tag=t", None).await;
    assert_eq!(urls(&all.body), ["https://kept.example"]);
}

/// A bookmark saved without a title gets one from the title service; while that service is
/// down the save fails with 502 and the cause names the dependency.
#[tokio::test]
async fn missing_titles_come_from_the_title_service_and_its_outage_is_a_502() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let titles = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move { axum::serve(listener, bookmarks::titles_router()).await.unwrap() });
    let app = test_app(|config| config.titles_url = Some(titles.clone())).await;
    let untitled = || Some(json!({ "url": "https://example.org/rust-async_book" }));
    let saved = app.call(Method::POST, "/api/bookmarks", untitled()).await;
    assert_eq!(saved.status, StatusCode::CREATED, "{}", saved.body);
    assert_eq!(saved.body["title"], "Rust Async Book");
    let titled =
        app.call(Method::POST, "/api/bookmarks", Some(json!({ "url": "https://a.example/x", "title": "Mine" }))).await;
    assert_eq!(titled.body["title"], "Mine", "a given title is kept without asking");

    server.abort();
    let _ = server.await;
    let failed = app.call(Method::POST, "/api/bookmarks", untitled()).await;
    assert_eq!(failed.status, StatusCode::BAD_GATEWAY, "{}", failed.body);
    assert_eq!(failed.body["error"]["code"], "dependency_unavailable");
    let cause = failed.error_cause.expect("the cause is reported");
    assert_eq!(cause.kind, "dependency");
    assert!(cause.message.starts_with("dependency titles unavailable: GET "), "{}", cause.message);
    assert!(cause.message.ends_with("/title: connection refused"), "{}", cause.message);
    let titled =
        app.call(Method::POST, "/api/bookmarks", Some(json!({ "url": "https://a.example/y", "title": "Still" }))).await;
    assert_eq!(titled.status, StatusCode::CREATED, "only saves that need a title fail");
}
