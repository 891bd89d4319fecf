//! `aiops kb`: a knowledge graph moves from SQLite to PostgreSQL with export and import, and
//! can be shown and searched there.

use std::process::Command;

use aiops_testkit::PostgresServer;

fn aiops(args: &[&str], envs: &[(&str, &str)]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_aiops")).args(args).envs(envs.iter().copied()).output().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_graph_moves_from_sqlite_to_postgres_and_is_searchable_there() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let seed = dir.path().join("seed.jsonl");
    // Problems carry the embedding of their text by the default embedder, as the Learning agent
    // stores them.
    let embedder = aiops_ai::EmbedderConfig::default().build().unwrap();
    let embed = |text: &str| {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        serde_json::to_string(&runtime.block_on(embedder.embed(&[text.to_owned()])).unwrap()[0]).unwrap()
    };
    let node = |id: &str, kind: &str, name: &str, data: &str| {
        format!(
            r#"{{"record":"node","id":"{id}","kind":"{kind}","name":"{name}","data":{data},"embedding":{}}}"#,
            embed(name)
        )
    };
    let lines = [
        node("p1", "problem", "bookmarks pool timed out", r#"{"service":"bookmarks","kind":"http_error_ratio"}"#),
        node("p2", "problem", "billing disk full", r#"{"service":"billing","kind":"health_check_failing"}"#),
        node("solution:reset_db_pool", "solution", "reset_db_pool()", r#"{"tool":"reset_db_pool"}"#),
        r#"{"record":"outcome","action_id":"a1","problem_id":"p1","solution_id":"solution:reset_db_pool","success":true,"recover_ms":900,"at":"2026-11-01T10:00:00Z"}"#.to_owned(),
    ];
    std::fs::write(&seed, lines.join("\n")).unwrap();
    let sqlite_env = [("AIOPS__DATA_DIR", data)];
    let (ok, stdout, stderr) = aiops(&["kb", "import", seed.to_str().unwrap()], &sqlite_env);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "imported 3 nodes, 1 outcomes, 0 edges, 0 audit entries");
    let export = dir.path().join("export.jsonl");
    // `--data-dir` names the same store as the variable (and as `aiops serve --data-dir`).
    let (ok, _, stderr) = aiops(&["kb", "export", "--data-dir", data, "--output", export.to_str().unwrap()], &[]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("exported 3 nodes, 1 outcomes, 1 edges"), "{stderr}");

    let pg = PostgresServer::start().expect("start postgres with pgvector");
    let url = pg.url();
    let pg_env =
        [("AIOPS__DATA_DIR", data), ("AIOPS__KNOWLEDGE__BACKEND", "postgres"), ("AIOPS_KNOWLEDGE_URL", url.as_str())];
    let (ok, stdout, stderr) = aiops(&["kb", "import", export.to_str().unwrap()], &pg_env);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "imported 3 nodes, 1 outcomes, 1 edges, 0 audit entries");
    let (ok, stdout, stderr) = aiops(&["kb", "show", "solution:reset_db_pool"], &pg_env);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("stats: 1 of 1 healed, mean time to recover 900 ms"), "{stdout}");
    assert!(stdout.contains("→ solves p1"), "{stdout}");
    let (ok, stdout, stderr) = aiops(&["kb", "search", "bookmarks pool timed out", "--kind", "problem"], &pg_env);
    assert!(ok, "{stderr}");
    assert!(stdout.lines().next().unwrap_or_default().contains("p1"), "{stdout}");
    // Without the URL the error says what to set.
    let (ok, _, stderr) =
        aiops(&["kb", "show", "p1"], &[("AIOPS__DATA_DIR", data), ("AIOPS__KNOWLEDGE__BACKEND", "postgres")]);
    assert!(!ok);
    assert!(stderr.contains("AIOPS_KNOWLEDGE_URL"), "{stderr}");
}

#[test]
fn reembed_replaces_stale_vectors_with_the_configured_embedders() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("AIOPS__DATA_DIR", data.to_str().unwrap())];
    // Vectors from some other model: the same for both problems, so search cannot tell them apart.
    let stale = serde_json::to_string(&vec![1.0f32 / (384f32).sqrt(); 384]).unwrap();
    let seed = dir.path().join("seed.jsonl");
    let lines = [
        format!(
            r#"{{"record":"node","id":"p1","kind":"problem","name":"pool","data":{{"service":"bookmarks","kind":"http_error_ratio","signature":"bookmarks pool timed out waiting for a connection"}},"embedding":{stale}}}"#
        ),
        format!(
            r#"{{"record":"node","id":"p2","kind":"problem","name":"disk","data":{{"service":"billing","kind":"health_check_failing","signature":"billing disk full no space left on device"}},"embedding":{stale}}}"#
        ),
        r#"{"record":"node","id":"solution:noop","kind":"solution","name":"noop()","data":{"tool":"noop_probe"}}"#
            .to_owned(),
    ];
    std::fs::write(&seed, lines.join("\n")).unwrap();
    assert!(aiops(&["kb", "import", seed.to_str().unwrap()], &env).0);

    let (ok, stdout, stderr) = aiops(&["kb", "reembed"], &env);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim(), "re-embedded 2 nodes with all-MiniLM-L6-v2", "nodes without a vector stay without");

    let (ok, stdout, stderr) = aiops(&["kb", "search", "the volume ran out of storage", "--k", "2"], &env);
    assert!(ok, "{stderr}");
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.contains("p2"), "the re-embedded signature must now be found by meaning: {stdout}");
}

#[test]
fn sources_shows_how_often_each_diagnosis_source_was_right() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let env = [("AIOPS__DATA_DIR", data.to_str().unwrap())];
    let seed = dir.path().join("seed.jsonl");
    let insight = |source: &str| {
        format!(
            r#"{{"record":"node","id":"insight:diagnosis-source:{source}","kind":"insight","name":"{source}","data":{{"text":"t"}}}}"#
        )
    };
    let problem = |id: &str| {
        format!(
            r#"{{"record":"node","id":"{id}","kind":"problem","name":"{id}","data":{{"service":"bookmarks","kind":"http_error_ratio"}}}}"#
        )
    };
    let validates = |source: &str, problem: &str, right: bool| {
        format!(
            r#"{{"record":"edge","from":"insight:diagnosis-source:{source}","to":"{problem}","relation":"validates","weight":1.0,"data":{{"right":{right}}}}}"#
        )
    };
    let lines = [
        insight("llm"),
        insight("rules"),
        problem("p1"),
        problem("p2"),
        validates("llm", "p1", true),
        validates("llm", "p2", true),
        validates("rules", "p1", false),
        validates("rules", "p2", true),
    ];
    std::fs::write(&seed, lines.join("\n")).unwrap();
    let (ok, _, stderr) = aiops(&["kb", "import", seed.to_str().unwrap()], &env);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = aiops(&["kb", "sources"], &env);
    assert!(ok, "{stderr}");
    let rows: Vec<Vec<&str>> = stdout.lines().skip(1).map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows,
        vec![vec!["rules", "1", "1", "50%"], vec!["knowledge", "0", "0", "-"], vec!["llm", "2", "0", "100%"]],
        "{stdout}"
    );
}
