//! Admin endpoints: bearer-token guard, cache clearing, fault status.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::{error_code, request, test_app};

#[tokio::test]
async fn admin_endpoints_require_the_bearer_token_when_one_is_set() {
    let app = test_app(|config| config.admin_token = Some("s3cret".into())).await;
    for (method, uri) in [
        (Method::POST, "/admin/db/reset-pool"),
        (Method::POST, "/admin/cache/clear"),
        (Method::GET, "/admin/faults"),
        (Method::POST, "/admin/faults"),
    ] {
        for token in [None, Some("wrong"), Some("S3CRET"), Some("s3cret2")] {
            let body = (method == Method::POST && uri == "/admin/faults").then(|| json!({"fault": "none"}));
            let answer = app.send(request(method.clone(), uri, body, token)).await;
            assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{method} {uri} with {token:?}");
            assert_eq!(error_code(&answer), "unauthorized");
        }
    }
    let answer = app.send(request(Method::GET, "/admin/faults", None, Some("s3cret"))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["active"], json!([]));
    // The public API and health stay open.
    assert_eq!(app.call(Method::GET, "/api/bookmarks", None).await.status, StatusCode::OK);
    assert_eq!(app.call(Method::GET, "/health", None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn admin_endpoints_are_open_without_a_token() {
    let app = test_app(|_| {}).await;
    app.call(Method::GET, "/api/bookmarks?q=x", None).await;
    app.call(Method::GET, "/api/bookmarks?q=y", None).await;
    let cleared = app.call(Method::POST, "/admin/cache/clear", None).await;
    assert_eq!(cleared.status, StatusCode::OK);
    assert_eq!(cleared.body, json!({"cleared": 2}));
    let reset = app.call(Method::POST, "/admin/db/reset-pool", None).await;
    assert_eq!(reset.status, StatusCode::OK);
    assert_eq!(reset.body, json!({"released": 0, "pool_size": 4}));
    let unknown_fault = app.call(Method::POST, "/admin/faults", Some(json!({"fault": "meteor"}))).await;
    assert_eq!(unknown_fault.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error_code(&unknown_fault), "invalid_body");
}
