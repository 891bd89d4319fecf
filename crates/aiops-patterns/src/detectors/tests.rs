//! Detector behaviour on synthetic request streams, by event time.

use aiops_model::{ProblemKind, RequestRecord};
use chrono::{DateTime, TimeZone, Utc};

use super::*;
use crate::{Detector, Observation};

fn at(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(1_700_000_000_000 + ms).unwrap()
}

fn request(ms: i64, status: u16, duration_ms: f64) -> Observation {
    Observation::Request {
        service: "svc".into(),
        at: at(ms),
        record: RequestRecord {
            method: "GET".into(),
            route: "/x".into(),
            status,
            duration_ms,
            trace_id: None,
            rejected: None,
        },
    }
}

#[test]
fn error_ratio_fires_once_then_clears_with_hysteresis() {
    let mut detector = ErrorRatioDetector::new(WindowConfig::default(), 0.2);
    // 30 good requests: nothing.
    for n in 0..30 {
        assert!(detector.observe(&request(n * 10, 200, 5.0)).is_none());
    }
    // Errors start; the finding comes once the ratio reaches 20% (8 of 38 = 21%).
    let mut fired = Vec::new();
    for n in 30..60 {
        if let Some(finding) = detector.observe(&request(n * 10, 503, 5.0)) {
            fired.push((n, finding));
        }
    }
    assert_eq!(fired.len(), 1, "must report once while firing");
    let (n, finding) = &fired[0];
    assert_eq!(*n, 37);
    assert_eq!(finding.kind, ProblemKind::HttpErrorRatio);
    assert_eq!(finding.first_seen, at(300));
    assert!((finding.metrics["error_ratio"] - 8.0 / 38.0).abs() < 1e-9);
    // After the window passes with good requests it clears and can fire again.
    for n in 0..40 {
        assert!(detector.observe(&request(20_000 + n * 10, 200, 5.0)).is_none());
    }
    let again = (0..40).filter_map(|n| detector.observe(&request(21_000 + n * 10, 500, 5.0))).count();
    assert_eq!(again, 1);
}

#[test]
fn too_few_requests_never_fire_and_old_samples_leave_the_window() {
    let mut detector = ErrorRatioDetector::new(WindowConfig { min_requests: 20, ..WindowConfig::default() }, 0.2);
    // 10 errors, 11 s apart each: never 20 in one 10 s window.
    for n in 0..10 {
        assert!(detector.observe(&request(n * 11_000, 500, 1.0)).is_none());
    }
}

#[test]
fn latency_p95_fires_on_slow_tail() {
    let mut detector = LatencyDetector::new(WindowConfig::default(), 500.0);
    for n in 0..40 {
        assert!(detector.observe(&request(n * 10, 200, 20.0)).is_none());
    }
    let mut found = None;
    for n in 40..60 {
        if let Some(f) = detector.observe(&request(n * 10, 200, 900.0)) {
            found = Some(f);
            break;
        }
    }
    let finding = found.expect("slow tail not detected");
    assert_eq!(finding.kind, ProblemKind::HttpLatency);
    assert!(finding.metrics["p95_ms"] >= 500.0);
    detector.reset("svc");
    assert!(detector.observe(&request(700, 200, 900.0)).is_none(), "reset window needs min_requests again");
}
