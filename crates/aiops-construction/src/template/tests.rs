//! Unit tests for placeholder parsing and substitution.

use serde_json::json;

use super::*;
use crate::spec::parse_spec;

#[test]
fn parse_splits_literals_and_placeholders() {
    assert_eq!(
        parse("a{x}b{target.service}{secret:tok}").unwrap(),
        vec![
            Piece::Literal("a"),
            Piece::Placeholder(Placeholder::Param("x")),
            Piece::Literal("b"),
            Piece::Placeholder(Placeholder::Target(TargetField::Service)),
            Piece::Placeholder(Placeholder::Secret("tok")),
        ]
    );
}

#[test]
fn braces_that_are_not_placeholders_stay_literal() {
    for text in ["{}", "{ x }", "{\"a\": 1}", "{{", "}{", "{x", "x}"] {
        assert_eq!(parse(text).unwrap(), vec![Piece::Literal(text)], "{text}");
    }
}

#[test]
fn malformed_placeholders_are_errors() {
    assert!(parse("{target.host}").is_err());
    assert!(parse("{secret:}").is_err());
    assert!(parse("{Upper}").is_err());
    assert!(parse("{a.b}").is_err());
}

#[test]
fn sole_param_only_matches_a_lone_placeholder() {
    assert_eq!(sole_param("{x}"), Some("x"));
    assert_eq!(sole_param("-{x}"), None);
    assert_eq!(sole_param("{target.address}"), None);
}

fn context_fixture() -> (crate::spec::ToolSpec, ToolTarget) {
    let spec = parse_spec(
        r#"name = "t"
version = 1
description = "d"
risk = "low"

[[params]]
name = "file"
pattern = "path"

[[params]]
name = "word"
pattern = "word"
required = false

[[params]]
name = "count"
pattern = "integer"
required = false

[kind]
type = "http"
method = "POST"
path = "/files/{file}/{word}/{count}"
"#,
        "x",
    )
    .unwrap();
    let target = ToolTarget {
        service: "svc a".into(),
        instance_id: "..".into(),
        address: "http://127.0.0.1:9".into(),
        capabilities: vec![],
    };
    (spec, target)
}

#[test]
fn url_path_values_are_percent_encoded() {
    let (spec, target) = context_fixture();
    let values = crate::params::resolve(&spec, &json!({"file": "a b/c?d#e", "word": "x.y", "count": "7"})).unwrap();
    let ctx = Context { tool: "t", params: &values, target: &target, secrets: None };
    assert_eq!(
        render("/files/{file}/{word}/{count}?s={target.service}", &ctx, Escape::UrlPath).unwrap(),
        "/files/a%20b/c%3Fd%23e/x.y/7?s=svc%20a"
    );
    // A dot segment would be resolved away by the URL parser.
    assert!(matches!(
        render("/{target.instance_id}", &ctx, Escape::UrlPath),
        Err(ConstructionError::InvalidParams { .. })
    ));
}

#[test]
fn json_body_keeps_types_of_lone_placeholders() {
    let (spec, target) = context_fixture();
    let values = crate::params::resolve(&spec, &json!({"file": "/a", "count": "42"})).unwrap();
    let ctx = Context { tool: "t", params: &values, target: &target, secrets: None };
    let body = json!({
        "count": "{count}",
        "missing": "{word}",
        "text": "file={file} on {target.service}",
        "list": ["{file}", 1, null],
    });
    assert_eq!(
        render_json(&body, &ctx).unwrap(),
        json!({
            "count": 42,
            "missing": null,
            "text": "file=/a on svc a",
            "list": ["/a", 1, null],
        })
    );
}

#[test]
fn missing_secret_is_reported_by_name_only() {
    let (spec, target) = context_fixture();
    let values = crate::params::resolve(&spec, &json!({"file": "/a"})).unwrap();
    let secrets = Secrets::from_iter([("present", "s3cr3t")]);
    let ctx = Context { tool: "t", params: &values, target: &target, secrets: Some(&secrets) };
    assert_eq!(render("Bearer {secret:present}", &ctx, Escape::Raw).unwrap(), "Bearer s3cr3t");
    match render("{secret:absent}", &ctx, Escape::Raw) {
        Err(ConstructionError::MissingSecret { tool, secret }) => {
            assert_eq!((tool.as_str(), secret.as_str()), ("t", "absent"));
        }
        other => panic!("expected MissingSecret, got {other:?}"),
    }
}
