//! Unit tests of the kit's own logic: ports, binary lookup and error messages. Starting real
//! servers is covered by `tests/smoke.rs`.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::postgres::{bin_dir_from, require_programs};
use crate::process::{is_port_clash, run, spawn_error};
use crate::{free_port, TestkitError, DEFAULT_PG_BIN, INSTALL_COMMAND};

#[test]
fn free_port_can_be_bound_again() {
    // Tests of this binary start servers concurrently, and one of them may take the port in the
    // moment between `free_port` and the bind (the race its doc describes): a few tries tell a
    // broken `free_port` from that.
    let bound = (0..5).any(|_| {
        let port = free_port().expect("free port");
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
    });
    assert!(bound, "five ports from free_port could not be bound");
}

#[test]
fn pg_bin_dir_defaults_when_env_is_unset_or_empty() {
    assert_eq!(bin_dir_from(None), PathBuf::from(DEFAULT_PG_BIN));
    assert_eq!(bin_dir_from(Some("".into())), PathBuf::from(DEFAULT_PG_BIN));
    assert_eq!(bin_dir_from(Some("/x/bin".into())), PathBuf::from("/x/bin"));
}

#[test]
fn missing_postgres_names_the_install_command() {
    let err = require_programs(Path::new("/nonexistent/aiops-pg/bin")).expect_err("no binaries there");
    assert!(matches!(&err, TestkitError::MissingBinary { binary, .. } if binary == "postgres"), "{err:?}");
    let message = err.to_string();
    assert!(message.contains(INSTALL_COMMAND), "{message}");
    assert!(message.contains("/nonexistent/aiops-pg/bin"), "{message}");
    // Tests call `.expect(...)`, which prints `Debug`: it must say the same.
    assert!(format!("{err:?}").contains(INSTALL_COMMAND), "{err:?}");
}

#[test]
fn debug_shows_the_message_and_its_cause() {
    let err = TestkitError::Io { action: "opening x".to_owned(), source: std::io::Error::other("disk on fire") };
    assert_eq!(format!("{err:?}"), "opening x\n  caused by: disk on fire");
}

#[test]
fn program_not_on_path_names_the_install_command() {
    let mut cmd = Command::new("aiops-testkit-no-such-program");
    let err = run("aiops-testkit-no-such-program", &mut cmd).expect_err("not installed");
    assert!(matches!(err, TestkitError::MissingBinary { .. }), "{err:?}");
    assert!(err.to_string().contains(INSTALL_COMMAND), "{err}");
}

#[test]
fn other_spawn_failures_are_io_errors() {
    let err = spawn_error("x", "PATH", std::io::Error::from(std::io::ErrorKind::PermissionDenied));
    assert!(matches!(err, TestkitError::Io { .. }), "{err:?}");
}

#[test]
fn missing_user_names_the_install_command() {
    let err = TestkitError::MissingUser { user: "aiops-pg".to_owned() };
    assert!(err.to_string().contains(INSTALL_COMMAND), "{err}");
}

#[test]
fn failed_command_carries_its_output() {
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "echo to-stdout; echo to-stderr >&2; exit 3"]);
    let err = run("sh", &mut cmd).expect_err("exit 3");
    let message = err.to_string();
    assert!(message.contains("to-stdout") && message.contains("to-stderr"), "{message}");
    assert!(message.contains("exit status: 3"), "{message}");
}

#[test]
fn only_address_in_use_counts_as_a_port_clash() {
    let clash = TestkitError::NotReady {
        service: "redis-server",
        waited: Duration::ZERO,
        log_path: PathBuf::from("redis.log"),
        log: "Could not create server TCP listening socket 127.0.0.1:1: bind: Address already in use".to_owned(),
    };
    assert!(is_port_clash(&clash));
    let other = TestkitError::CommandFailed {
        command: "pg_ctl start".to_owned(),
        status: "exit status: 1".to_owned(),
        output: "FATAL: data directory has wrong ownership".to_owned(),
    };
    assert!(!is_port_clash(&other));
}
