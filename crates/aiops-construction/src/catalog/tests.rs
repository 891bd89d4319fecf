//! Unit tests for the catalog: version rules, directory loading, the shipped specs.

use std::collections::BTreeSet;

use aiops_model::RiskLevel;

use super::*;
use crate::spec::{HttpMethod, ToolKind};

fn catalog() -> ToolCatalog {
    ToolCatalog::new(reqwest::Client::new(), Secrets::new())
}

fn probe(version: u32, description: &str) -> ToolSpec {
    parse_spec(
        &format!(
            r#"name = "probe"
version = {version}
description = "{description}"
risk = "low"

[kind]
type = "builtin"
name = "noop_probe"
"#
        ),
        "inline",
    )
    .unwrap()
}

#[test]
fn higher_version_replaces_and_older_stays_reachable() {
    let catalog = catalog();
    assert_eq!(catalog.register(probe(1, "one")).unwrap(), 1);
    assert_eq!(catalog.register(probe(3, "three")).unwrap(), 3);
    assert_eq!(catalog.get("probe").unwrap().spec().version, 3);
    assert_eq!(catalog.get_version("probe", 1).unwrap().spec().description, "one");
    assert_eq!(catalog.versions("probe"), vec![1, 3]);
    assert_eq!(catalog.specs().len(), 1);
    assert!(catalog.get("nope").is_none());
}

#[test]
fn same_or_lower_version_is_a_conflict() {
    let catalog = catalog();
    catalog.register(probe(2, "two")).unwrap();
    for (version, description) in [(2, "changed"), (1, "older")] {
        match catalog.register(probe(version, description)) {
            Err(ConstructionError::VersionConflict { name, registered, offered }) => {
                assert_eq!((name.as_str(), registered, offered), ("probe", 2, version));
            }
            other => panic!("expected VersionConflict, got {other:?}"),
        }
    }
    assert_eq!(catalog.get("probe").unwrap().spec().description, "two");
}

#[test]
fn identical_re_registration_is_a_no_op() {
    let catalog = catalog();
    catalog.register(probe(1, "one")).unwrap();
    catalog.register(probe(2, "two")).unwrap();
    assert_eq!(catalog.register(probe(2, "two")).unwrap(), 2);
    assert_eq!(catalog.register(probe(1, "one")).unwrap(), 1);
    assert_eq!(catalog.versions("probe"), vec![1, 2]);
}

#[test]
fn invalid_spec_is_not_registered() {
    let catalog = catalog();
    let mut spec = probe(1, "one");
    spec.name = "Bad Name".into();
    assert!(matches!(catalog.register(spec), Err(ConstructionError::InvalidSpec { line: None, .. })));
    assert!(catalog.specs().is_empty());
}

#[test]
fn clones_share_tools() {
    let catalog = catalog();
    let clone = catalog.clone();
    clone.register(probe(1, "one")).unwrap();
    assert!(catalog.get("probe").is_some());
}

#[test]
fn every_shipped_spec_parses_and_validates() {
    let specs = shipped_specs().unwrap();
    for spec in &specs {
        spec.validate().unwrap();
    }
    let catalog = catalog().with_shipped_tools().unwrap();
    let names: Vec<String> = catalog.specs().into_iter().map(|spec| spec.name).collect();
    assert_eq!(
        names,
        [
            "clear_cache",
            "clear_faults",
            "free_disk_space",
            "noop_probe",
            "rebuild_indexes",
            "reload_certificate",
            "reset_db_pool",
            "restart_service",
            "rollback_config",
            "rollback_deploy",
            "rollback_frontend",
            "scale_workers",
            "sqlite_integrity_check",
            "start_service",
            "throttle_upstream",
            "warm_cache"
        ]
    );
    // Every shipped tool that acts on a service needs a capability, so it only runs where
    // the service says it can take it.
    for spec in specs.iter().filter(|s| matches!(s.kind, crate::ToolKind::Http(_))) {
        assert!(spec.capability.is_some(), "{} has no capability", spec.name);
    }
}

#[test]
fn shipped_specs_say_what_the_design_asks() {
    let specs = shipped_specs().unwrap();
    let find = |name: &str| specs.iter().find(|spec| spec.name == name).unwrap();
    let http = |name: &str| match &find(name).kind {
        ToolKind::Http(http) => http.clone(),
        other => panic!("{name} should be http, is {other:?}"),
    };

    let clear_cache = find("clear_cache");
    assert_eq!(clear_cache.risk, RiskLevel::Low);
    assert_eq!(clear_cache.capability.as_deref(), Some("cache.clear"));
    assert_eq!(http("clear_cache").method, HttpMethod::Post);
    assert_eq!(http("clear_cache").path, "/admin/cache/clear");

    let reset = find("reset_db_pool");
    assert_eq!(reset.risk, RiskLevel::Medium);
    assert_eq!(reset.capability.as_deref(), Some("db.reset_pool"));
    assert_eq!(http("reset_db_pool").path, "/admin/db/reset-pool");

    let faults = find("clear_faults");
    assert_eq!(faults.capability.as_deref(), Some("faults.inject"));
    assert_eq!(http("clear_faults").path, "/admin/faults");
    assert_eq!(http("clear_faults").body, Some(serde_json::json!({"fault": "none"})));

    for name in ["clear_cache", "reset_db_pool", "clear_faults"] {
        assert_eq!(http(name).bearer_secret.as_deref(), Some("admin_token"), "{name}");
    }

    let sqlite = find("sqlite_integrity_check");
    assert_eq!(sqlite.risk, RiskLevel::Low);
    assert!(matches!(&sqlite.kind, ToolKind::Command(command) if command.argv[0] == "sqlite3"));
}

#[test]
fn every_file_in_the_tools_folder_is_shipped() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools");
    let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".toml"))
        .collect();
    let shipped: BTreeSet<String> = SHIPPED_TOOLS.iter().map(|(file, _)| (*file).to_owned()).collect();
    assert_eq!(on_disk, shipped, "add new files in tools/ to SHIPPED_TOOLS");
    // And the shipped folder loads as a directory too.
    let loaded = catalog().load_dir(&dir).unwrap();
    assert_eq!(loaded.len(), SHIPPED_TOOLS.len());
}

#[test]
fn load_dir_reads_toml_files_only_and_registers_nothing_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let write = |file: &str, text: &str| std::fs::write(dir.path().join(file), text).unwrap();
    write("b_v2.toml", &toml::to_string(&probe(2, "two")).unwrap());
    write("a_v1.toml", &toml::to_string(&probe(1, "one")).unwrap());
    write("notes.md", "not a spec");

    let catalog = catalog();
    let specs = catalog.load_dir(dir.path()).unwrap();
    assert_eq!(specs.iter().map(|spec| spec.version).collect::<Vec<_>>(), vec![1, 2]);
    assert_eq!(catalog.get("probe").unwrap().spec().version, 2);

    write("c_broken.toml", "name = \"other\"\nversion = 1\nbogus = true\n");
    let fresh = ToolCatalog::new(reqwest::Client::new(), Secrets::new());
    match fresh.load_dir(dir.path()) {
        Err(ConstructionError::InvalidSpec { origin, line, .. }) => {
            assert!(origin.ends_with("c_broken.toml"), "{origin}");
            assert_eq!(line, Some(3));
        }
        other => panic!("expected InvalidSpec, got {other:?}"),
    }
    assert!(fresh.specs().is_empty(), "a broken file registers nothing");
}

#[test]
fn load_dir_of_a_missing_folder_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    assert!(matches!(
        catalog().load_dir(&missing),
        Err(ConstructionError::Io { path, .. }) if path == missing
    ));
}
