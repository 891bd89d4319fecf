//! `aiops demo --json` starts the real bookmark manager process and must heal it twice, the
//! second time from knowledge and faster.

use serde_json::Value;

#[test]
fn demo_heals_the_bookmark_manager_twice_and_faster_from_knowledge() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_aiops"))
        .args(["demo", "--json"])
        .output()
        .expect("running aiops demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let last = stdout.lines().last().expect("no output");
    let report: Value = serde_json::from_str(last).expect("last line is JSON");
    let scenarios = report["scenarios"].as_array().expect("scenarios");
    assert_eq!(scenarios.len(), 2, "{stdout}");
    for (idx, scenario) in scenarios.iter().enumerate() {
        assert_eq!(scenario["fault"], "db_pool_exhausted");
        assert_eq!(scenario["occurrence"], idx as u64 + 1);
        assert_eq!(scenario["verified"], true, "{stdout}");
        assert_eq!(scenario["action"], "reset_db_pool", "{stdout}");
        for key in ["detected_ms", "diagnosed_ms", "healed_ms"] {
            assert!(scenario[key].as_i64().is_some(), "{key} missing: {scenario}");
        }
        assert!(scenario["detected_ms"].as_i64() <= scenario["diagnosed_ms"].as_i64());
        assert!(scenario["diagnosed_ms"].as_i64() <= scenario["healed_ms"].as_i64());
    }
    // Without history the least invasive plausible fix goes first and fails verification;
    // the second time knowledge picks the fix that worked, first try.
    let tools = |s: &Value| {
        s["attempts"].as_array().unwrap().iter().map(|a| a["tool"].as_str().unwrap().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(tools(&scenarios[0]), vec!["clear_cache", "reset_db_pool"], "{stdout}");
    assert_eq!(tools(&scenarios[1]), vec!["reset_db_pool"], "{stdout}");
    assert!(scenarios[1]["healed_ms"].as_i64() < scenarios[0]["healed_ms"].as_i64(), "{stdout}");
    assert_eq!(report["second_faster"], true);
    assert!(stdout.contains("similar past problems"), "the second diagnosis must cite knowledge:\n{stdout}");
}

/// The fault-scenario suite: every fault is detected, diagnosed, healed by its own fix and
/// verified, and its second occurrence is healed by the first attempt.
#[test]
fn every_fault_scenario_heals_and_its_second_occurrence_takes_one_attempt() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_aiops"))
        .args(["demo", "--json", "--fault", "all"])
        .env("AIOPS_LOG", "error")
        .output()
        .expect("running aiops demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "demo failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap()).expect("last line is JSON");
    let scenarios = report["scenarios"].as_array().expect("scenarios");
    let expected = [
        ("db_pool_exhausted", "reset_db_pool"),
        ("bad_release", "rollback_deploy"),
        ("disk_full", "free_disk_space"),
        ("memory_leak", "restart_service"),
        ("bad_config", "rollback_config"),
        ("slow_queries", "rebuild_indexes"),
        ("crash_loop", "rollback_config"),
        ("dependency_down", "start_service"),
        // Played by a user in headless Chromium, which the test command installs.
        ("frontend_skew", "rollback_frontend"),
    ];
    assert_eq!(scenarios.len(), expected.len() * 2, "{stdout}");
    for (pair, (fault, fix)) in scenarios.chunks(2).zip(expected) {
        for scenario in pair {
            assert_eq!(
                (scenario["fault"].as_str(), scenario["verified"].as_bool()),
                (Some(fault), Some(true)),
                "{stdout}"
            );
            assert_eq!(scenario["action"], fix, "{stdout}");
        }
        assert_eq!(pair[1]["attempts"].as_array().unwrap().len(), 1, "{fault}, second time: {stdout}");
    }
    // restart_service is high risk: the operator (the demo) approved it.
    assert!(stdout.contains("approval   restart_service asks a human"), "{stdout}");
}
