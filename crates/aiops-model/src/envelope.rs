//! The CloudEvents 1.0 shaped envelope that every event on the mesh travels in.
//!
//! The JSON form is the CloudEvents structured-mode JSON format with the required attributes
//! `specversion`, `id`, `source`, `type`, the optional `time`, `subject`, `datacontenttype`
//! and `data`, plus one extension attribute, `severity`. Unknown attributes are refused so
//! that a misspelt attribute is an error at ingest instead of a silently lost field.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::Severity;

/// Upper bound on the serialized `data` of one event, in bytes.
pub const MAX_DATA_BYTES: usize = 256 * 1024;

const MAX_ID_LEN: usize = 128;
const MAX_ATTRIBUTE_LEN: usize = 512;

/// One event: who said what happened, when, about which subject.
///
/// The `id` is stable and unique per `source`; the event mesh uses it to drop duplicates, so a
/// producer that retries a publish with the same id stores the event once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    /// Always `"1.0"`.
    #[serde(default = "default_specversion")]
    pub specversion: String,
    /// Unique id of the event; duplicates are dropped by the mesh.
    pub id: String,
    /// Who produced the event, e.g. `bookmarks/instance-1` or `aiops/monitor`.
    pub source: String,
    /// What happened, e.g. `http.request` or `problem.detected` (see [`crate::event_type`]).
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened. Filled with the time of receipt when a producer leaves it out.
    #[serde(default = "Utc::now")]
    pub time: DateTime<Utc>,
    /// What the event is about, usually the service name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Media type of `data`; only `application/json` is accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datacontenttype: Option<String>,
    /// How urgent the event is (CloudEvents extension attribute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// The payload.
    #[serde(default)]
    pub data: serde_json::Value,
}

fn default_specversion() -> String {
    "1.0".to_owned()
}

/// Why an envelope is not acceptable. The message names the offending attribute.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// `specversion` is not `1.0`.
    #[error("specversion must be \"1.0\", got {0:?}")]
    SpecVersion(String),
    /// A required attribute is empty.
    #[error("attribute `{0}` must not be empty")]
    Empty(&'static str),
    /// An attribute is longer than allowed.
    #[error("attribute `{name}` is {len} bytes long, at most {max} are allowed")]
    TooLong {
        /// The attribute.
        name: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// `type` has characters outside `[a-z0-9_.-]` or empty segments.
    #[error("attribute `type` must be dot-separated segments of [a-z0-9_-], got {0:?}")]
    BadType(String),
    /// `datacontenttype` is something other than JSON.
    #[error("datacontenttype must be application/json, got {0:?}")]
    ContentType(String),
    /// `data` is larger than [`MAX_DATA_BYTES`].
    #[error("data is {0} bytes, at most {MAX_DATA_BYTES} are allowed")]
    DataTooLarge(usize),
}

impl Envelope {
    /// A new event with a fresh id and the current time.
    pub fn new(source: impl Into<String>, event_type: &str, data: serde_json::Value) -> Self {
        Self {
            specversion: default_specversion(),
            id: crate::new_id(),
            source: source.into(),
            event_type: event_type.to_owned(),
            time: Utc::now(),
            subject: None,
            datacontenttype: None,
            severity: None,
            data,
        }
    }

    /// Sets the subject.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Sets the severity.
    pub fn with_severity(mut self, severity: Severity) -> Self {
        self.severity = Some(severity);
        self
    }

    /// Deserializes `data` into a typed payload.
    ///
    /// # Errors
    /// When `data` does not have the payload's shape.
    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        T::deserialize(&self.data)
    }

    /// Checks every attribute; the first problem found is returned.
    ///
    /// # Errors
    /// An [`EnvelopeError`] naming the attribute that is wrong.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        if self.specversion != "1.0" {
            return Err(EnvelopeError::SpecVersion(self.specversion.clone()));
        }
        check_text("id", &self.id, MAX_ID_LEN)?;
        check_text("source", &self.source, MAX_ATTRIBUTE_LEN)?;
        check_text("type", &self.event_type, MAX_ATTRIBUTE_LEN)?;
        if let Some(subject) = &self.subject {
            check_text("subject", subject, MAX_ATTRIBUTE_LEN)?;
        }
        let type_ok = self.event_type.split('.').all(|segment| {
            !segment.is_empty()
                && segment.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        });
        if !type_ok {
            return Err(EnvelopeError::BadType(self.event_type.clone()));
        }
        if let Some(content_type) = &self.datacontenttype {
            if !content_type.starts_with("application/json") {
                return Err(EnvelopeError::ContentType(content_type.clone()));
            }
        }
        let data_len = serde_json::to_vec(&self.data).map(|v| v.len()).unwrap_or(usize::MAX);
        if data_len > MAX_DATA_BYTES {
            return Err(EnvelopeError::DataTooLarge(data_len));
        }
        Ok(())
    }
}

fn check_text(name: &'static str, value: &str, max: usize) -> Result<(), EnvelopeError> {
    if value.trim().is_empty() {
        return Err(EnvelopeError::Empty(name));
    }
    if value.len() > max {
        return Err(EnvelopeError::TooLong { name, len: value.len(), max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_json_round_trips_and_unknown_attributes_are_refused() {
        let json = r#"{"specversion":"1.0","id":"e1","source":"svc","type":"http.request",
            "time":"2026-01-01T00:00:00Z","subject":"bookmarks","data":{"status":200}}"#;
        let envelope: Envelope = serde_json::from_str(json).unwrap();
        assert_eq!(envelope.event_type, "http.request");
        assert_eq!(envelope.data["status"], 200);
        envelope.validate().unwrap();
        let again: Envelope = serde_json::from_str(&serde_json::to_string(&envelope).unwrap()).unwrap();
        assert_eq!(again, envelope);

        let err = serde_json::from_str::<Envelope>(r#"{"id":"e","source":"s","type":"a","sujbect":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("sujbect"), "{err}");
    }

    #[test]
    fn validation_names_the_bad_attribute() {
        let mut envelope = Envelope::new("svc", "http.request", serde_json::json!({}));
        envelope.event_type = "Http..Request".into();
        assert_eq!(envelope.validate(), Err(EnvelopeError::BadType("Http..Request".into())));
        envelope.event_type = "ok.type".into();
        envelope.id = " ".into();
        assert_eq!(envelope.validate(), Err(EnvelopeError::Empty("id")));
        envelope.id = "x".repeat(200);
        assert!(matches!(envelope.validate(), Err(EnvelopeError::TooLong { name: "id", .. })));
        envelope.id = "ok".into();
        envelope.data = serde_json::Value::String("y".repeat(MAX_DATA_BYTES + 1));
        assert!(matches!(envelope.validate(), Err(EnvelopeError::DataTooLarge(_))));
    }
}
