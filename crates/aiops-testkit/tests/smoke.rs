//! Smoke tests that start the real servers: Redis Streams with a consumer group through
//! `redis-cli`, pgvector KNN through `psql`, and restarts of both.
//!
//! They never skip: a missing binary fails the test with the install command in its message.

use std::process::Command;

use aiops_testkit::{PostgresServer, RedisOptions, RedisServer};

/// Runs `redis-cli -p PORT ARGS...` and returns its output, trimmed. Without a terminal,
/// redis-cli prints raw replies: one line per element, an empty line for nil.
fn redis_cli(redis: &RedisServer, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .arg("-p")
        .arg(redis.port().to_string())
        .args(args)
        .output()
        .expect("run redis-cli (install it with `bash scripts/install-test-deps.sh`)");
    assert!(output.status.success(), "redis-cli {args:?} failed: {output:?}");
    let stdout = String::from_utf8(output.stdout).expect("redis-cli prints UTF-8");
    assert!(!stdout.starts_with("ERR") && !stdout.starts_with("WRONGTYPE"), "redis-cli {args:?}: {stdout}");
    stdout.trim_end().to_owned()
}

#[test]
fn redis_stream_entry_is_read_and_acked_through_a_consumer_group() {
    let redis = RedisServer::start().expect("start redis-server");
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));

    let id = redis_cli(&redis, &["XADD", "s", "*", "kind", "problem.detected"]);
    assert!(id.contains('-'), "XADD returns an entry id, got {id:?}");
    assert_eq!(redis_cli(&redis, &["XGROUP", "CREATE", "s", "g", "0"]), "OK");

    let read = redis_cli(&redis, &["XREADGROUP", "GROUP", "g", "c", "COUNT", "1", "STREAMS", "s", ">"]);
    let read: Vec<&str> = read.lines().collect();
    assert_eq!(read, ["s", id.as_str(), "kind", "problem.detected"]);
    // Read but not acked: pending.
    assert_eq!(first_line(&redis_cli(&redis, &["XPENDING", "s", "g"])), "1");

    assert_eq!(redis_cli(&redis, &["XACK", "s", "g", &id]), "1");
    let pending = redis_cli(&redis, &["XPENDING", "s", "g"]);
    assert_eq!(first_line(&pending), "0", "XPENDING after XACK: {pending:?}");
}

#[test]
fn redis_restart_keeps_port_and_aof_data() {
    let mut redis = RedisServer::start_with(RedisOptions::default().aof(true)).expect("start redis-server with AOF");
    let url = redis.url();
    assert_eq!(redis_cli(&redis, &["SET", "k", "v"]), "OK");

    redis.restart().expect("restart redis-server");
    assert!(redis.is_running());
    assert_eq!(redis.url(), url);
    assert_eq!(redis_cli(&redis, &["GET", "k"]), "v");

    redis.stop().expect("stop redis-server");
    assert!(!redis.is_running());
    redis.stop().expect("stopping twice is fine");
    redis.restart().expect("start a stopped redis-server");
    assert_eq!(redis_cli(&redis, &["GET", "k"]), "v");
}

#[test]
fn redis_without_aof_restarts_empty() {
    let mut redis = RedisServer::start().expect("start redis-server");
    assert_eq!(redis_cli(&redis, &["SET", "k", "v"]), "OK");
    redis.kill().expect("kill redis-server");
    redis.restart().expect("restart redis-server");
    assert_eq!(redis_cli(&redis, &["EXISTS", "k"]), "0");
    assert_eq!(redis_cli(&redis, &["PING"]), "PONG");
}

#[test]
fn postgres_knn_query_orders_by_vector_distance() {
    let postgres = PostgresServer::start().expect("start postgres");
    assert_eq!(postgres.url(), format!("postgres://postgres@127.0.0.1:{}/aiops", postgres.port()));
    assert_eq!(postgres.psql("SELECT extname FROM pg_extension WHERE extname = 'vector'").expect("psql"), "vector\n");

    postgres
        .psql(
            "CREATE TABLE items (id int PRIMARY KEY, embedding vector(3));
             INSERT INTO items VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0.9,0.1,0]');
             CREATE INDEX ON items USING hnsw (embedding vector_l2_ops);",
        )
        .expect("create, fill and index a vector table");
    let nearest = postgres.psql("SELECT id FROM items ORDER BY embedding <-> '[1,0.05,0]' LIMIT 2").expect("KNN query");
    assert_eq!(nearest, "1\n3\n");

    let err = postgres.psql("SELECT * FROM no_such_table").expect_err("bad SQL fails");
    assert!(err.to_string().contains("no_such_table"), "{err}");
}

#[test]
fn postgres_restart_keeps_port_and_data() {
    let mut postgres = PostgresServer::start().expect("start postgres");
    let url = postgres.url();
    postgres
        .psql("CREATE TABLE t (id int, embedding vector(2)); INSERT INTO t VALUES (7, '[1,2]');")
        .expect("create and fill a table");

    postgres.restart().expect("restart postgres");
    assert!(postgres.is_running());
    assert_eq!(postgres.url(), url);
    assert_eq!(postgres.psql("SELECT id, embedding FROM t").expect("select"), "7|[1,2]\n");

    postgres.stop().expect("stop postgres");
    assert!(postgres.psql("SELECT 1").is_err(), "a stopped server answers nothing");
    postgres.restart().expect("start a stopped postgres");
    assert_eq!(postgres.psql("SELECT count(*) FROM t").expect("count"), "1\n");
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}
