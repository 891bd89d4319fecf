//! Server-sent events as both vendors stream them: `event:` and `data:` lines, events separated
//! by a blank line, `:` comments ignored.

/// One event: its `event:` name (if any) and its `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SseEvent {
    pub(crate) event: Option<String>,
    pub(crate) data: String,
}

/// Splits a complete body into events. An event not closed by a blank line (a stream cut in
/// the middle of an event) is dropped: the callers then miss their end marker and say so.
pub(crate) fn parse(body: &str) -> Vec<SseEvent> {
    let mut events = Vec::new();
    let mut event: Option<String> = None;
    let mut data: Vec<&str> = Vec::new();
    for line in body.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if event.is_some() || !data.is_empty() {
                events.push(SseEvent { event: event.take(), data: data.join("\n") });
                data.clear();
            }
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = Some(value.to_owned()),
            "data" => data.push(value),
            _ => {}
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_comments_and_an_unfinished_tail() {
        let body = "event: ping\ndata: {\"type\": \"ping\"}\n\n: keep-alive\n\ndata: a\r\ndata: b\r\n\r\nevent: message_stop\ndata: {";
        assert_eq!(
            parse(body),
            vec![
                SseEvent { event: Some("ping".into()), data: "{\"type\": \"ping\"}".into() },
                SseEvent { event: None, data: "a\nb".into() },
            ]
        );
    }
}
