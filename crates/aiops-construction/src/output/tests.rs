//! Unit tests for output capping.

use super::*;

#[test]
fn short_output_is_kept_whole() {
    assert_eq!(cap_text(b"hello", Some(5), 100), "hello");
}

#[test]
fn long_output_is_cut_with_a_note_within_the_limit() {
    let bytes = vec![b'x'; 1000];
    let text = cap_text(&bytes, Some(5000), 200);
    assert!(text.len() <= 200, "{}", text.len());
    assert!(text.ends_with(" of 5000 bytes shown]"), "{text}");
    assert!(text.starts_with("xxx"));
}

#[test]
fn unknown_total_is_noted_as_cut() {
    let text = cap_text(&[b'y'; 100], None, 100);
    assert!(text.len() <= 100);
    assert!(text.contains("[output cut after"), "{text}");
}

#[test]
fn cut_respects_char_boundaries() {
    let bytes = "é".repeat(200).into_bytes();
    let text = cap_text(&bytes, Some(bytes.len() as u64), 101);
    assert!(text.len() <= 101);
    assert!(text.starts_with('é'));
}

#[test]
fn stderr_keeps_room_when_stdout_floods() {
    let stdout = Captured { bytes: vec![b'o'; OUTPUT_LIMIT_BYTES], total: 10 * OUTPUT_LIMIT_BYTES as u64 };
    let stderr = Captured { bytes: b"fatal: disk full".to_vec(), total: 16 };
    let text = combine_streams(&stdout, &stderr);
    assert!(text.len() <= OUTPUT_LIMIT_BYTES, "{}", text.len());
    assert!(text.ends_with("\n[stderr]\nfatal: disk full"), "{}", &text[text.len() - 100..]);
    assert!(text.contains("[output cut:"));
}

#[test]
fn both_streams_flooding_stay_within_the_limit() {
    let flood = |byte| Captured { bytes: vec![byte; OUTPUT_LIMIT_BYTES], total: 2 * OUTPUT_LIMIT_BYTES as u64 };
    let text = combine_streams(&flood(b'o'), &flood(b'e'));
    assert!(text.len() <= OUTPUT_LIMIT_BYTES, "{}", text.len());
    assert!(text.contains("\n[stderr]\n"));
}

#[tokio::test]
async fn read_capped_drains_past_the_cap() {
    let data = vec![7u8; 50_000];
    let captured = read_capped(Some(&data[..]), 1000).await.unwrap();
    assert_eq!(captured.bytes.len(), 1000);
    assert_eq!(captured.total, 50_000);
}
