//! Named secret values (API tokens) that HTTP tools may put in header values.
//!
//! A secret's value is only ever written into an outgoing header. `Debug` shows names only,
//! and [`Secrets::redact`] scrubs values out of any text a tool returns (a server may echo a
//! header back), so values never reach `ToolOutput`, errors or logs.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

/// What a redacted secret value is replaced with.
pub const REDACTED: &str = "[redacted]";

/// Secret values by name, e.g. `admin_token`. Cheap enough to clone per tool.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    values: HashMap<String, String>,
}

impl Secrets {
    /// No secrets.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds or replaces the secret `name`.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.values.insert(name.into(), value.into());
    }

    /// The value of the secret `name`, if configured.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Whether the secret `name` is configured.
    pub fn contains(&self, name: &str) -> bool {
        self.values.contains_key(name)
    }

    /// Names of the configured secrets, sorted.
    pub fn names(&self) -> Vec<&str> {
        let names: BTreeSet<&str> = self.values.keys().map(String::as_str).collect();
        names.into_iter().collect()
    }

    /// Whether no secret is configured.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every occurrence of every (non-empty) secret value replaced by
    /// [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        // Longest first, so a secret that contains another one is scrubbed whole.
        let mut values: Vec<&str> =
            self.values.values().map(String::as_str).filter(|value| !value.is_empty()).collect();
        values.sort_by_key(|value| std::cmp::Reverse(value.len()));
        let mut text = text.to_owned();
        for value in values {
            if text.contains(value) {
                text = text.replace(value, REDACTED);
            }
        }
        text
    }
}

impl From<HashMap<String, String>> for Secrets {
    fn from(values: HashMap<String, String>) -> Self {
        Self { values }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Secrets {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        Self { values: iter.into_iter().map(|(name, value)| (name.into(), value.into())).collect() }
    }
}

impl fmt::Debug for Secrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut map = f.debug_map();
        for name in self.names() {
            map.entry(&name, &REDACTED);
        }
        map.finish()
    }
}
