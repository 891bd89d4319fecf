//! Unit tests for parameter patterns and checks.

use serde_json::json;

use super::*;
use crate::spec::parse_spec;

#[test]
fn word_pattern() {
    for ok in ["abc", "A-1_b.c", "v1.2.3", "x"] {
        ParamPattern::Word.check(ok).unwrap();
    }
    for bad in ["", "-rf", "a b", "a;b", "..", ".", "a/b", "é", &"a".repeat(129)] {
        assert!(ParamPattern::Word.check(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn integer_pattern() {
    for ok in ["0", "-12", "9223372036854775807"] {
        ParamPattern::Integer.check(ok).unwrap();
    }
    for bad in ["", "-", "1.5", "1e3", " 1", "9223372036854775808", "0x10"] {
        assert!(ParamPattern::Integer.check(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn path_pattern() {
    for ok in ["/var/lib/app.db", "data/app.db", "/tmp/with space", "./x"] {
        ParamPattern::Path.check(ok).unwrap();
    }
    for bad in ["", "-rf", "/etc/../shadow", "..", "a\nb", "a\0b"] {
        assert!(ParamPattern::Path.check(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn any_text_pattern() {
    for ok in ["", "; rm -rf /", "$(whoami) `id` | & > <", "tab\tok"] {
        ParamPattern::AnyText.check(ok).unwrap();
    }
    for bad in ["line\nbreak", "cr\r", "nul\0", &"x".repeat(4097)] {
        assert!(ParamPattern::AnyText.check(bad).is_err(), "{bad:?}");
    }
}

fn spec() -> ToolSpec {
    parse_spec(
        r#"name = "t"
version = 1
description = "d"
risk = "low"

[[params]]
name = "name"
pattern = "word"

[[params]]
name = "count"
pattern = "integer"
required = false

[kind]
type = "command"
argv = ["echo", "{name}", "{count}"]
"#,
        "x",
    )
    .unwrap()
}

fn reason(params: serde_json::Value) -> String {
    match resolve(&spec(), &params) {
        Err(ConstructionError::InvalidParams { tool, reason }) => {
            assert_eq!(tool, "t");
            reason
        }
        other => panic!("expected InvalidParams, got {other:?}"),
    }
}

#[test]
fn valid_params_resolve() {
    let values = resolve(&spec(), &json!({"name": "web", "count": 3})).unwrap();
    assert_eq!(values.get("name").map(|v| v.text.as_str()), Some("web"));
    assert_eq!(values.get("count").map(|v| v.text.as_str()), Some("3"));
    let values = resolve(&spec(), &json!({"name": "web", "count": "4"})).unwrap();
    assert_eq!(values.get("count").map(|v| v.json.clone()), Some(json!(4)));
    let values = resolve(&spec(), &json!({"name": "web"})).unwrap();
    assert_eq!(values.get("count"), None);
}

#[test]
fn bad_params_are_explained() {
    assert_eq!(reason(json!({})), "missing required param `name`");
    assert_eq!(reason(json!(null)), "missing required param `name`");
    assert_eq!(reason(json!({"name": "a", "zz": 1, "aa": 2})), "unknown param `aa`, `zz`");
    assert_eq!(reason(json!(["a"])), "params must be a JSON object");
    assert_eq!(reason(json!({"name": true})), "param `name` must be a string or a number");
    assert_eq!(reason(json!({"name": "-rf"})), "param `name` does not match pattern word: it cannot start with `-`");
    assert_eq!(
        reason(json!({"name": "a", "count": "ten"})),
        "param `count` does not match pattern integer: it must be a whole number"
    );
}
