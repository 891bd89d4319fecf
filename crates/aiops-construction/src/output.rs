//! Capturing what a tool prints or returns, capped at [`OUTPUT_LIMIT_BYTES`].
//!
//! Readers keep draining past the cap (a child blocked on a full pipe would never exit) but
//! keep only the first bytes. The cut is noted at the end of the text, and the note counts
//! towards the limit, so an output is never longer than the limit.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Most bytes of output a [`ToolOutput`](crate::ToolOutput) carries, including the note
/// that says it was cut.
pub const OUTPUT_LIMIT_BYTES: usize = 64 * 1024;

/// The first bytes of a stream, and how long the stream really was.
#[derive(Debug, Default)]
pub(crate) struct Captured {
    /// At most the `keep` bytes asked for.
    pub(crate) bytes: Vec<u8>,
    /// Bytes the stream produced in total.
    pub(crate) total: u64,
}

/// Reads `reader` to its end, keeping at most `keep` bytes.
pub(crate) async fn read_capped<R: AsyncRead + Unpin>(reader: Option<R>, keep: usize) -> std::io::Result<Captured> {
    let mut captured = Captured::default();
    let Some(mut reader) = reader else {
        return Ok(captured);
    };
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        let n_read = reader.read(&mut buf).await?;
        if n_read == 0 {
            return Ok(captured);
        }
        captured.total += n_read as u64;
        let room = keep.saturating_sub(captured.bytes.len());
        captured.bytes.extend_from_slice(&buf[..n_read.min(room)]);
    }
}

/// Text of `bytes` (lossy UTF-8), cut to fit `limit` bytes, with a note when it was cut.
/// `total` is how many bytes the source produced; `None` means more followed than `bytes`
/// but how much is unknown (a response body that was not read to its end).
pub(crate) fn cap_text(bytes: &[u8], total: Option<u64>, limit: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let complete = total.is_some_and(|total| total <= bytes.len() as u64);
    if complete && text.len() <= limit {
        return text.into_owned();
    }
    let note_for = |shown: usize| match total {
        Some(total) => format!("\n[output cut: {shown} of {total} bytes shown]"),
        None => format!("\n[output cut after {shown} bytes]"),
    };
    // The note's length depends on the number it prints; sizing with the limit itself gives
    // an upper bound.
    let mut keep = limit.saturating_sub(note_for(limit).len()).min(text.len());
    while !text.is_char_boundary(keep) {
        keep -= 1;
    }
    let mut out = text[..keep].to_owned();
    out.push_str(&note_for(keep));
    out
}

/// Output of a command: stdout, then stderr under a `[stderr]` marker, within
/// [`OUTPUT_LIMIT_BYTES`]. When both do not fit, stderr keeps up to half the room because
/// it usually says why a command failed.
pub(crate) fn combine_streams(stdout: &Captured, stderr: &Captured) -> String {
    const MARKER: &str = "\n[stderr]\n";
    if stderr.total == 0 {
        return cap_text(&stdout.bytes, Some(stdout.total), OUTPUT_LIMIT_BYTES);
    }
    if stdout.total == 0 {
        return format!("[stderr]\n{}", cap_text(&stderr.bytes, Some(stderr.total), OUTPUT_LIMIT_BYTES - MARKER.len()));
    }
    let room = OUTPUT_LIMIT_BYTES - MARKER.len();
    // Stderr is sure of up to half; whatever stdout leaves unused goes to stderr too.
    let stderr_room = stderr.total.min(room as u64 / 2) as usize;
    let stdout_text = cap_text(&stdout.bytes, Some(stdout.total), room - stderr_room);
    let stderr_room = room - stdout_text.len();
    let stderr_text = cap_text(&stderr.bytes, Some(stderr.total), stderr_room);
    format!("{stdout_text}{MARKER}{stderr_text}")
}

#[cfg(test)]
mod tests;
