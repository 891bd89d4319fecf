//! Checking a call's parameters against a spec, before anything runs.
//!
//! Parameters arrive as a JSON object (from the Healing agent, the API or an LLM tool call).
//! Each value must be a string or a number whose text matches its declared pattern. The
//! patterns are deliberately narrow: `word` and `path` cannot start with `-`, so a value
//! can't be read as an option by the program it is passed to.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{ConstructionError, ConstructionResult};
use crate::spec::{ParamPattern, ToolSpec};

/// Longest `word` value, in bytes.
const MAX_WORD_BYTES: usize = 128;
/// Longest `path` or `any_text` value, in bytes.
const MAX_TEXT_BYTES: usize = 4096;

/// One checked parameter value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ParamValue {
    /// The value as text, as substituted into strings.
    pub(crate) text: String,
    /// The value as given, substituted for a body string that is exactly its placeholder.
    pub(crate) json: Value,
    /// Whether `/` stays unescaped in a URL path (values of `path` parameters).
    pub(crate) keeps_slashes: bool,
}

/// Checked parameter values by name; absent optional parameters have no entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ParamValues {
    values: BTreeMap<String, ParamValue>,
}

impl ParamValues {
    /// The value of `name`, if given.
    pub(crate) fn get(&self, name: &str) -> Option<&ParamValue> {
        self.values.get(name)
    }

    /// The name of a parameter whose value is one of `texts`, if any.
    pub(crate) fn holding(&self, texts: &[&str]) -> Option<&str> {
        self.values.iter().find(|(_, value)| texts.contains(&value.text.as_str())).map(|(name, _)| name.as_str())
    }
}

impl ParamPattern {
    /// Checks `value` against the pattern; the error says what is wrong without repeating
    /// the value.
    pub fn check(self, value: &str) -> Result<(), String> {
        match self {
            Self::Word => {
                if value.is_empty() || value.len() > MAX_WORD_BYTES {
                    return Err(format!("must be 1 to {MAX_WORD_BYTES} bytes"));
                }
                if let Some(bad) = value.chars().find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
                {
                    return Err(format!("may only hold letters, digits, `_`, `.` and `-`, not {bad:?}"));
                }
                if value.starts_with('-') {
                    return Err("cannot start with `-`".to_owned());
                }
                if value.chars().all(|c| c == '.') {
                    return Err("cannot be only dots".to_owned());
                }
                Ok(())
            }
            Self::Integer => {
                let digits = value.strip_prefix('-').unwrap_or(value);
                if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
                    return Err("must be a whole number".to_owned());
                }
                value.parse::<i64>().map(drop).map_err(|_| "is out of range for a 64-bit integer".to_owned())
            }
            Self::Path => {
                if value.is_empty() || value.len() > MAX_TEXT_BYTES {
                    return Err(format!("must be 1 to {MAX_TEXT_BYTES} bytes"));
                }
                if value.chars().any(char::is_control) {
                    return Err("cannot hold control characters".to_owned());
                }
                if value.starts_with('-') {
                    return Err("cannot start with `-`".to_owned());
                }
                if value.split('/').any(|component| component == "..") {
                    return Err("cannot hold a `..` component".to_owned());
                }
                Ok(())
            }
            Self::AnyText => {
                if value.len() > MAX_TEXT_BYTES {
                    return Err(format!("must be at most {MAX_TEXT_BYTES} bytes"));
                }
                if value.chars().any(|c| c.is_control() && c != '\t') {
                    return Err("cannot hold control characters other than tab".to_owned());
                }
                Ok(())
            }
        }
    }
}

/// Checks `params` against `spec`: unknown names, missing required ones, values not
/// matching their pattern. `null` counts as no parameters.
pub(crate) fn resolve(spec: &ToolSpec, params: &Value) -> ConstructionResult<ParamValues> {
    let invalid = |reason: String| ConstructionError::InvalidParams { tool: spec.name.clone(), reason };
    let empty = serde_json::Map::new();
    let given = match params {
        Value::Null => &empty,
        Value::Object(map) => map,
        _ => return Err(invalid("params must be a JSON object".to_owned())),
    };
    let mut unknown: Vec<&str> =
        given.keys().map(String::as_str).filter(|name| !spec.params.iter().any(|param| param.name == *name)).collect();
    if !unknown.is_empty() {
        unknown.sort_unstable();
        return Err(invalid(format!("unknown param `{}`", unknown.join("`, `"))));
    }
    let mut values = BTreeMap::new();
    for param in &spec.params {
        let Some(value) = given.get(&param.name) else {
            if param.required {
                return Err(invalid(format!("missing required param `{}`", param.name)));
            }
            continue;
        };
        let text = match value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            _ => return Err(invalid(format!("param `{}` must be a string or a number", param.name))),
        };
        param.pattern.check(&text).map_err(|reason| {
            invalid(format!("param `{}` does not match pattern {}: it {reason}", param.name, param.pattern.as_str()))
        })?;
        // An integer goes into a JSON body as a number even when it was given as a string.
        let json = match (param.pattern, text.parse::<i64>()) {
            (ParamPattern::Integer, Ok(number)) => Value::from(number),
            _ => value.clone(),
        };
        values
            .insert(param.name.clone(), ParamValue { text, json, keeps_slashes: param.pattern == ParamPattern::Path });
    }
    Ok(ParamValues { values })
}

#[cfg(test)]
mod tests;
