//! The conformance suite of the [`Tool`] contract: one check per `# Contract` bullet that
//! can be observed from outside, run against every tool kind.
//!
//! Each kind's `tests.rs` builds a [`Fixture`] (a tool whose effect it can count, a target,
//! good and bad parameters) and stamps out one test per check with
//! [`tool_conformance!`](crate::tool_conformance). Checks branch on what a fixture can
//! observe ([`Fixture::effects`], [`Fixture::slow_tool`]), never on the kind's name.
//! Compiled for this crate's tests, and for other crates with the `conformance` feature.

use std::any::Any;
use std::sync::Arc;

use serde_json::Value;

use crate::error::ConstructionError;
use crate::tool::{RunMode, Tool, ToolTarget};

/// Counts how many times a fixture's tool has acted (files created, requests received).
pub type EffectCounter = Box<dyn Fn() -> usize + Send + Sync>;

/// A tool set up so the suite can run it and observe what it did.
pub struct Fixture {
    /// The tool under test. Its spec must name a capability and take a required parameter.
    pub tool: Arc<dyn Tool>,
    /// A tool of the same kind whose run outlasts its `timeout_ms` of at most 500, if the
    /// kind can be made slow.
    pub slow_tool: Option<Arc<dyn Tool>>,
    /// A target advertising the tool's capability.
    pub target: ToolTarget,
    /// Parameters the tool accepts.
    pub valid_params: Value,
    /// Parameters the tool must refuse (a value not matching its pattern).
    pub invalid_params: Value,
    /// How many times the tool has acted so far, if that is observable.
    pub effects: Option<EffectCounter>,
    /// Whatever must live as long as the fixture (a temporary directory, a server).
    pub guard: Box<dyn Any + Send>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").field("tool", &self.tool).field("target", &self.target).finish_non_exhaustive()
    }
}

impl Fixture {
    fn effects(&self) -> Option<usize> {
        self.effects.as_ref().map(|count| count())
    }
}

/// Bad, unknown and missing parameters are refused with `InvalidParams` in both modes, and
/// nothing runs.
pub async fn params_are_checked_before_anything_runs(fixture: &Fixture) {
    let Value::Object(valid) = &fixture.valid_params else {
        panic!("valid_params must be an object");
    };
    let mut unknown = valid.clone();
    unknown.insert("no_such_param".to_owned(), Value::from("x"));
    let cases = [
        fixture.invalid_params.clone(),
        Value::Object(unknown),
        serde_json::json!({}),
        serde_json::json!(["not", "an", "object"]),
    ];
    for mode in [RunMode::Execute, RunMode::DryRun] {
        for params in &cases {
            let res = fixture.tool.run(&fixture.target, params, mode).await;
            assert!(
                matches!(res, Err(ConstructionError::InvalidParams { .. })),
                "{mode:?} with {params}: expected InvalidParams, got {res:?}"
            );
        }
    }
    assert_eq!(fixture.effects().unwrap_or(0), 0, "a refused call ran");
}

/// A target that does not advertise the spec's capability is refused, and nothing runs.
pub async fn target_must_advertise_the_capability(fixture: &Fixture) {
    let capability =
        fixture.tool.spec().capability.clone().unwrap_or_else(|| panic!("a fixture's spec must name a capability"));
    let mut target = fixture.target.clone();
    target.capabilities.retain(|cap| *cap != capability);
    for mode in [RunMode::Execute, RunMode::DryRun] {
        let res = fixture.tool.run(&target, &fixture.valid_params, mode).await;
        assert!(
            matches!(&res, Err(ConstructionError::MissingCapability { capability: missing, .. }) if *missing == capability),
            "{mode:?}: expected MissingCapability, got {res:?}"
        );
    }
    assert_eq!(fixture.effects().unwrap_or(0), 0, "a refused call ran");
}

/// `DryRun` resolves the call and reports it, and touches nothing.
pub async fn dry_run_touches_nothing(fixture: &Fixture) {
    let out = fixture
        .tool
        .run(&fixture.target, &fixture.valid_params, RunMode::DryRun)
        .await
        .unwrap_or_else(|err| panic!("dry run failed: {err}"));
    assert!(!out.resolved.is_empty(), "a dry run says what it would run");
    assert_eq!(out.exit_code, None);
    assert_eq!(out.http_status, None);
    assert_eq!(fixture.effects().unwrap_or(0), 0, "a dry run acted");
}

/// `Execute` with valid parameters acts exactly once and reports success.
pub async fn execute_acts_once(fixture: &Fixture) {
    let out = fixture
        .tool
        .run(&fixture.target, &fixture.valid_params, RunMode::Execute)
        .await
        .unwrap_or_else(|err| panic!("run failed: {err}"));
    assert!(out.success, "{out:?}");
    assert!(!out.resolved.is_empty());
    if let Some(effects) = fixture.effects() {
        assert_eq!(effects, 1, "the tool should have acted once");
    }
}

/// A run longer than `timeout_ms` ends soon after the deadline as `Timeout`.
pub async fn run_longer_than_timeout_is_a_timeout(fixture: &Fixture) {
    let Some(slow) = &fixture.slow_tool else {
        return;
    };
    let timeout_ms = slow.spec().timeout_ms;
    assert!(timeout_ms <= 500, "the slow tool's timeout_ms must be at most 500");
    let start = std::time::Instant::now();
    let res = slow.run(&fixture.target, &fixture.valid_params, RunMode::Execute).await;
    assert!(
        matches!(&res, Err(ConstructionError::Timeout { after_ms, .. }) if *after_ms == timeout_ms),
        "expected Timeout, got {res:?}"
    );
    assert!(start.elapsed() < std::time::Duration::from_millis(timeout_ms + 2_000), "took {:?}", start.elapsed());
}

/// Stamps out one `#[tokio::test]` per conformance check; `$fixture` is an expression
/// (it may `.await`) giving a fresh [`Fixture`] for each test.
#[macro_export]
macro_rules! tool_conformance {
    ($fixture:expr) => {
        $crate::tool_conformance!(@each $fixture;
            params_are_checked_before_anything_runs,
            target_must_advertise_the_capability,
            dry_run_touches_nothing,
            execute_acts_once,
            run_longer_than_timeout_is_a_timeout);
    };
    (@each $fixture:expr; $($check:ident),+) => {$(
        #[tokio::test]
        async fn $check() {
            let fixture = $fixture;
            $crate::conformance::$check(&fixture).await;
        }
    )+};
}
