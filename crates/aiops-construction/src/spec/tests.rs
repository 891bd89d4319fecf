//! Unit tests for spec parsing and validation: every error names its line.

use aiops_model::RiskLevel;

use super::*;

/// A valid command spec; tests break one thing at a time.
const COMMAND: &str = r#"name = "restart_worker"
version = 2
description = "Restarts one worker."
risk = "medium"
capability = "host.worker-restart"

[[params]]
name = "worker"
pattern = "word"

[kind]
type = "command"
argv = ["systemctl", "restart", "worker@{worker}", "--host={target.address}"]
"#;

/// Parses `text` expecting an `InvalidSpec`; returns its line and reason.
fn invalid(text: &str) -> (Option<usize>, String) {
    match parse_spec(text, "tools/x.toml") {
        Err(ConstructionError::InvalidSpec { origin, line, reason }) => {
            assert_eq!(origin, "tools/x.toml");
            (line, reason)
        }
        other => panic!("expected InvalidSpec, got {other:?}"),
    }
}

#[test]
fn valid_command_spec_parses_with_defaults() {
    let spec = parse_spec(COMMAND, "tools/x.toml").unwrap();
    assert_eq!(spec.name, "restart_worker");
    assert_eq!(spec.version, 2);
    assert_eq!(spec.risk, RiskLevel::Medium);
    assert_eq!(spec.timeout_ms, DEFAULT_TIMEOUT_MS);
    assert_eq!(spec.capability.as_deref(), Some("host.worker-restart"));
    assert_eq!(
        spec.params,
        vec![ParamSpec {
            name: "worker".into(),
            required: true,
            pattern: ParamPattern::Word,
            description: String::new(),
        }]
    );
    let ToolKind::Command(command) = &spec.kind else {
        panic!("expected a command kind, got {:?}", spec.kind);
    };
    assert_eq!(command.argv[2], "worker@{worker}");
}

#[test]
fn valid_http_spec_parses_body_and_headers() {
    let spec = parse_spec(
        r#"name = "set_flag"
version = 1
description = "Sets a feature flag."
risk = "high"
timeout_ms = 300000

[[params]]
name = "flag"
pattern = "word"

[[params]]
name = "level"
required = false
pattern = "integer"

[rollback]
tool = "set_flag"
params = { flag = "{flag}" }

[kind]
type = "http"
method = "PUT"
path = "/admin/flags/{flag}"
headers = { "X-Token" = "{secret:flag_token}", "X-Service" = "{target.service}" }

[kind.body]
level = "{level}"
nested = { list = ["{flag}", 1, true] }
"#,
        "inline",
    )
    .unwrap();
    let ToolKind::Http(http) = &spec.kind else {
        panic!("expected an http kind, got {:?}", spec.kind);
    };
    assert_eq!(http.method, HttpMethod::Put);
    assert_eq!(http.body, Some(serde_json::json!({"level": "{level}", "nested": {"list": ["{flag}", 1, true]}})));
    assert_eq!(http.headers["X-Token"], "{secret:flag_token}");
    assert_eq!(spec.rollback.as_ref().map(|r| r.tool.as_str()), Some("set_flag"));
}

#[test]
fn spec_round_trips_through_json() {
    let spec = parse_spec(COMMAND, "tools/x.toml").unwrap();
    let json = serde_json::to_string(&spec).unwrap();
    let back: ToolSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, spec);
    back.validate().unwrap();
}

#[test]
fn toml_syntax_error_names_its_line() {
    let text = COMMAND.replace("risk = \"medium\"", "risk = \"medium");
    let (line, reason) = invalid(&text);
    assert_eq!(line, Some(4), "{reason}");
}

#[test]
fn unknown_top_level_field_names_its_line() {
    let text = COMMAND.replace("capability =", "capabilty =");
    let (line, reason) = invalid(&text);
    assert_eq!(line, Some(5));
    assert!(reason.contains("unknown field `capabilty`"), "{reason}");
}

#[test]
fn unknown_field_in_kind_names_its_line() {
    let text = COMMAND.replace("argv =", "argvv =");
    let (line, reason) = invalid(&text);
    assert_eq!(line, Some(13), "{reason}");
    assert!(reason.contains("unknown field `argvv`"), "{reason}");
    let err = parse_spec(&text, "tools/x.toml").unwrap_err();
    assert!(err.to_string().starts_with("tools/x.toml:13: unknown field `argvv`"), "{err}");
}

#[test]
fn unknown_field_in_params_names_its_line() {
    let text = COMMAND.replace("pattern = \"word\"", "pattern = \"word\"\nrequird = false");
    let (line, reason) = invalid(&text);
    assert_eq!(line, Some(10), "{reason}");
}

#[test]
fn unknown_kind_type_is_rejected() {
    let text = COMMAND.replace("type = \"command\"", "type = \"script\"");
    let (line, reason) = invalid(&text);
    assert!(reason.contains("script"), "{reason}");
    assert!(line.is_some());
}

#[test]
fn wrong_type_names_its_line() {
    let text = COMMAND.replace("version = 2", "version = \"two\"");
    let (line, _) = invalid(&text);
    assert_eq!(line, Some(2));
}

#[test]
fn missing_field_is_reported() {
    let text = COMMAND.replace("risk = \"medium\"\n", "");
    let (_, reason) = invalid(&text);
    assert!(reason.contains("missing field `risk`"), "{reason}");
}

#[test]
fn shell_dash_c_is_rejected() {
    for argv in [
        r#"["sh", "-c", "echo {worker}"]"#,
        r#"["/bin/bash", "-c", "echo {worker}"]"#,
        r#"["bash", "-ec", "echo {worker}"]"#,
        r#"["env", "FOO=1", "zsh", "-c", "echo {worker}"]"#,
        r#"["sudo", "-n", "/usr/bin/dash", "-c", "echo {worker}"]"#,
        r#"["env", "-S", "echo {worker}"]"#,
    ] {
        let text = COMMAND.replace(r#"["systemctl", "restart", "worker@{worker}", "--host={target.address}"]"#, argv);
        let (line, reason) = invalid(&text);
        assert_eq!(line, Some(13), "{argv}: {reason}");
        assert!(reason.contains("never a shell string"), "{argv}: {reason}");
    }
}

#[test]
fn shell_running_a_script_file_is_allowed() {
    let text = COMMAND.replace(
        r#"["systemctl", "restart", "worker@{worker}", "--host={target.address}"]"#,
        r#"["bash", "/opt/scripts/restart.sh", "{worker}"]"#,
    );
    parse_spec(&text, "x").unwrap();
    // A `-c` that belongs to another program is not a shell's.
    let text = COMMAND.replace(
        r#"["systemctl", "restart", "worker@{worker}", "--host={target.address}"]"#,
        r#"["grep", "-c", "sh", "{worker}"]"#,
    );
    parse_spec(&text, "x").unwrap();
}

#[test]
fn empty_argv_is_rejected() {
    let text = COMMAND.replace(r#"["systemctl", "restart", "worker@{worker}", "--host={target.address}"]"#, "[]");
    let (line, reason) = invalid(&text);
    assert_eq!(line, Some(13));
    assert_eq!(reason, "argv must not be empty");
}

#[test]
fn placeholder_as_program_is_rejected() {
    let text = COMMAND.replace(r#"["systemctl", "#, r#"["{worker}", "#);
    let (_, reason) = invalid(&text);
    assert!(reason.contains("fixed program"), "{reason}");
}

#[test]
fn undeclared_placeholder_names_its_line() {
    let text = COMMAND.replace("worker@{worker}", "worker@{workr}");
    let (line, reason) = invalid(&text);
    assert_eq!(line, Some(13));
    assert_eq!(reason, "placeholder `{workr}` refers to no declared param");
}

#[test]
fn unknown_target_field_is_rejected() {
    let text = COMMAND.replace("{target.address}", "{target.host}");
    let (line, reason) = invalid(&text);
    assert_eq!(line, Some(13));
    assert!(reason.contains("{target.host}"), "{reason}");
}

#[test]
fn unused_param_names_its_line() {
    let text = COMMAND
        .replace("pattern = \"word\"\n", "pattern = \"word\"\n\n[[params]]\nname = \"spare\"\npattern = \"integer\"\n");
    let (line, reason) = invalid(&text);
    assert_eq!(line, Some(12), "{reason}");
    assert_eq!(reason, "param `spare` is declared but never used as `{spare}`");
}

#[test]
fn secret_outside_headers_is_rejected() {
    let text = COMMAND.replace("--host={target.address}", "--token={secret:admin_token}");
    let (line, reason) = invalid(&text);
    assert_eq!(line, Some(13));
    assert!(reason.contains("only appear in header values"), "{reason}");
}

#[test]
fn semantic_rules_name_their_lines() {
    let cases = [
        ("name = \"restart_worker\"", "name = \"Restart-Worker\"", 1),
        ("version = 2", "version = 0", 2),
        ("description = \"Restarts one worker.\"", "description = \"  \"", 3),
        ("risk = \"medium\"", "risk = \"medium\"\ntimeout_ms = 300001", 5),
        ("capability = \"host.worker-restart\"", "capability = \"Worker Restart\"", 5),
        ("name = \"worker\"", "name = \"Worker\"", 8),
    ];
    for (from, to, expected_line) in cases {
        let (line, reason) = invalid(&COMMAND.replacen(from, to, 1));
        assert_eq!(line, Some(expected_line), "{to}: {reason}");
    }
}

#[test]
fn duplicate_param_is_rejected() {
    let text = COMMAND
        .replace("pattern = \"word\"\n", "pattern = \"word\"\n\n[[params]]\nname = \"worker\"\npattern = \"word\"\n");
    let (_, reason) = invalid(&text);
    assert_eq!(reason, "param `worker` is declared twice");
}

const HTTP: &str = r#"name = "clear_cache"
version = 1
description = "Clears the cache."
risk = "low"

[kind]
type = "http"
method = "POST"
path = "/admin/cache/clear"
"#;

#[test]
fn http_path_must_be_relative_to_the_address() {
    let text = HTTP.replace("path = \"/admin", "path = \"admin");
    let (line, reason) = invalid(&text);
    assert_eq!(line, Some(9));
    assert!(reason.contains("must start with `/`"), "{reason}");
}

#[test]
fn http_method_must_be_known() {
    let text = HTTP.replace("\"POST\"", "\"PATCH\"");
    let (line, reason) = invalid(&text);
    assert!(reason.contains("PATCH"), "{reason}");
    assert!(line.is_some());
}

#[test]
fn http_get_carries_no_body() {
    let text = HTTP.replace("\"POST\"", "\"GET\"") + "body = { a = 1 }\n";
    let (line, reason) = invalid(&text);
    assert_eq!(line, Some(10));
    assert_eq!(reason, "a GET request carries no body");
}

#[test]
fn bearer_secret_conflicts_with_an_authorization_header() {
    let text = HTTP.to_owned() + "bearer_secret = \"admin_token\"\nheaders = { Authorization = \"Basic x\" }\n";
    let (_, reason) = invalid(&text);
    assert!(reason.contains("conflicts with `bearer_secret`"), "{reason}");
}

#[test]
fn invalid_header_name_is_rejected() {
    let text = HTTP.to_owned() + "headers = { \"X Bad\" = \"1\" }\n";
    let (line, reason) = invalid(&text);
    assert_eq!(line, Some(10));
    assert!(reason.contains("not a valid header name"), "{reason}");
}

#[test]
fn placeholder_in_body_must_be_declared() {
    let text = HTTP.to_owned() + "\n[kind.body]\nfault = \"{fault}\"\n";
    let (line, reason) = invalid(&text);
    assert_eq!(line, Some(12));
    assert_eq!(reason, "placeholder `{fault}` refers to no declared param");
}

#[test]
fn unknown_builtin_is_rejected() {
    let text = r#"name = "probe"
version = 1
description = "Probes."
risk = "low"

[kind]
type = "builtin"
name = "rm_everything"
"#;
    let (line, reason) = invalid(text);
    assert_eq!(line, Some(8));
    assert!(reason.contains("unknown builtin `rm_everything`"), "{reason}");
}

#[test]
fn literal_braces_are_not_placeholders() {
    let text = HTTP.to_owned() + "\n[kind.body]\nnote = \"{ not a placeholder } {}\"\n";
    parse_spec(&text, "x").unwrap();
}

#[test]
fn validate_without_source_has_no_line() {
    let mut spec = parse_spec(COMMAND, "x").unwrap();
    spec.timeout_ms = 0;
    match spec.validate() {
        Err(ConstructionError::InvalidSpec { origin, line, reason }) => {
            assert_eq!(origin, "tool restart_worker");
            assert_eq!(line, None);
            assert!(reason.starts_with("timeout_ms must be between 1 and 300000"), "{reason}");
        }
        other => panic!("expected InvalidSpec, got {other:?}"),
    }
}

#[test]
fn capability_is_checked_against_the_target() {
    let spec = parse_spec(COMMAND, "x").unwrap();
    let mut target = ToolTarget {
        service: "worker".into(),
        instance_id: "w1".into(),
        address: "http://127.0.0.1:1".into(),
        capabilities: vec!["cache.clear".into()],
    };
    match spec.check_target(&target) {
        Err(ConstructionError::MissingCapability { tool, capability, service }) => {
            assert_eq!(
                (tool.as_str(), capability.as_str(), service.as_str()),
                ("restart_worker", "host.worker-restart", "worker")
            );
        }
        other => panic!("expected MissingCapability, got {other:?}"),
    }
    target.capabilities.push("host.worker-restart".into());
    spec.check_target(&target).unwrap();
}

#[test]
fn rollback_call_substitutes_params() {
    let text = COMMAND.replace(
        "[kind]",
        "[rollback]\ntool = \"start_worker\"\nparams = { worker = \"{worker}\", on = \"{target.instance_id}\", n = 3 }\n\n[kind]",
    );
    let spec = parse_spec(&text, "x").unwrap();
    let target = ToolTarget {
        service: "worker".into(),
        instance_id: "w1".into(),
        address: "http://127.0.0.1:1".into(),
        capabilities: vec![],
    };
    let call = spec.rollback_call(&target, &serde_json::json!({"worker": "alpha"})).unwrap();
    assert_eq!(call, Some(("start_worker".to_owned(), serde_json::json!({"worker": "alpha", "on": "w1", "n": 3}))));
}

#[test]
fn a_command_that_names_its_target_needs_a_host_capability() {
    // It runs on the core's machine for whichever service is the target; without a `host.`
    // capability, any service an ingest token registered could be that target.
    for capability in ["capability = \"worker.restart\"", ""] {
        let text = COMMAND.replacen("capability = \"host.worker-restart\"", capability, 1);
        let (line, reason) = invalid(&text);
        assert!(reason.contains("must require a `host.` capability"), "{capability}: {line:?} {reason}");
    }
    // A command that does not name its target is not bound by it.
    let fixed = COMMAND.replacen(" \"--host={target.address}\"", "", 1).replacen(
        "capability = \"host.worker-restart\"\n",
        "",
        1,
    );
    parse_spec(&fixed, "x").unwrap();
}
