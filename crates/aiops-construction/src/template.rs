//! Placeholders in spec strings: `{param}`, `{target.address}`, `{target.service}`,
//! `{target.instance_id}` and, in HTTP header values only, `{secret:NAME}`.
//!
//! A placeholder is `{`, one or more of `[A-Za-z0-9_.:-]`, then `}`; any other brace is
//! literal text, so JSON-looking strings need no escaping. Substitution happens inside one
//! string at a time (one argv element, one header value, one body string, the URL path):
//! values are never concatenated into a command line, and values put into a URL path are
//! percent-encoded so they cannot add segments, a query or a fragment.

use crate::error::{ConstructionError, ConstructionResult};
use crate::params::ParamValues;
use crate::secrets::Secrets;
use crate::tool::ToolTarget;

/// A field of the target that a spec may refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TargetField {
    Address,
    Service,
    InstanceId,
}

/// One parsed placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placeholder<'a> {
    /// A declared parameter.
    Param(&'a str),
    /// A field of the target.
    Target(TargetField),
    /// A configured secret (allowed in header values only).
    Secret(&'a str),
}

/// A piece of a template string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    Literal(&'a str),
    Placeholder(Placeholder<'a>),
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

/// Whether `name` is a valid parameter name: `[a-z0-9_]{1,64}`.
pub(crate) fn is_param_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

fn is_secret_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Splits `text` into literals and placeholders; the error names the bad placeholder.
pub(crate) fn parse(text: &str) -> Result<Vec<Piece<'_>>, String> {
    let mut pieces = Vec::new();
    let mut literal_start = 0;
    let mut search_from = 0;
    while let Some(offset) = text[search_from..].find('{') {
        let open = search_from + offset;
        let rest = &text[open + 1..];
        let token_len = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        if token_len == 0 || !rest[token_len..].starts_with('}') {
            // Not a placeholder: the brace is literal text.
            search_from = open + 1;
            continue;
        }
        let token = &rest[..token_len];
        let placeholder = classify(token)?;
        if literal_start < open {
            pieces.push(Piece::Literal(&text[literal_start..open]));
        }
        pieces.push(Piece::Placeholder(placeholder));
        literal_start = open + 1 + token_len + 1;
        search_from = literal_start;
    }
    if literal_start < text.len() {
        pieces.push(Piece::Literal(&text[literal_start..]));
    }
    Ok(pieces)
}

fn classify(token: &str) -> Result<Placeholder<'_>, String> {
    if let Some(field) = token.strip_prefix("target.") {
        return match field {
            "address" => Ok(Placeholder::Target(TargetField::Address)),
            "service" => Ok(Placeholder::Target(TargetField::Service)),
            "instance_id" => Ok(Placeholder::Target(TargetField::InstanceId)),
            _ => Err(format!(
                "unknown placeholder `{{{token}}}`: a target offers {{target.address}}, \
                 {{target.service}} and {{target.instance_id}}"
            )),
        };
    }
    if let Some(name) = token.strip_prefix("secret:") {
        return if is_secret_name(name) {
            Ok(Placeholder::Secret(name))
        } else {
            Err(format!("placeholder `{{{token}}}`: a secret name is 1 to 64 letters, digits or `_`"))
        };
    }
    if is_param_name(token) {
        Ok(Placeholder::Param(token))
    } else {
        Err(format!(
            "placeholder `{{{token}}}` is neither a parameter name ([a-z0-9_]), \
             a {{target.*}} field nor a {{secret:NAME}}"
        ))
    }
}

/// If `text` is exactly one parameter placeholder, its name.
pub(crate) fn sole_param(text: &str) -> Option<&str> {
    match parse(text).ok()?.as_slice() {
        [Piece::Placeholder(Placeholder::Param(name))] => Some(name),
        _ => None,
    }
}

/// How substituted values are written into the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Escape {
    /// As they are (argv elements, header values, body strings).
    Raw,
    /// Percent-encoded for a URL path: everything but unreserved characters, and `/` only
    /// for values of `path` parameters.
    UrlPath,
}

/// What a template is rendered against.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub(crate) tool: &'a str,
    pub(crate) params: &'a ParamValues,
    pub(crate) target: &'a ToolTarget,
    /// `Some` only where secrets are allowed (header values).
    pub(crate) secrets: Option<&'a Secrets>,
}

impl Context<'_> {
    fn invalid_params(&self, reason: String) -> ConstructionError {
        ConstructionError::InvalidParams { tool: self.tool.to_owned(), reason }
    }

    fn spec_bug(&self, reason: String) -> ConstructionError {
        // Specs are validated before a tool is built, so this is reached only by a spec that
        // skipped validation.
        ConstructionError::InvalidSpec { origin: format!("tool {}", self.tool), line: None, reason }
    }
}

/// `text` with its placeholders substituted. An absent optional parameter renders as "".
pub(crate) fn render(text: &str, ctx: &Context<'_>, escape: Escape) -> ConstructionResult<String> {
    let pieces = parse(text).map_err(|reason| ctx.spec_bug(reason))?;
    let mut out = String::with_capacity(text.len());
    for piece in pieces {
        match piece {
            Piece::Literal(literal) => out.push_str(literal),
            Piece::Placeholder(Placeholder::Param(name)) => {
                if let Some(value) = ctx.params.get(name) {
                    push_escaped(&mut out, &value.text, escape, value.keeps_slashes)
                        .map_err(|reason| ctx.invalid_params(format!("param `{name}` {reason}")))?;
                }
            }
            Piece::Placeholder(Placeholder::Target(field)) => {
                let value = match field {
                    TargetField::Address => &ctx.target.address,
                    TargetField::Service => &ctx.target.service,
                    TargetField::InstanceId => &ctx.target.instance_id,
                };
                push_escaped(&mut out, value, escape, false)
                    .map_err(|reason| ctx.invalid_params(format!("target field {reason}")))?;
            }
            Piece::Placeholder(Placeholder::Secret(name)) => {
                let Some(secrets) = ctx.secrets else {
                    return Err(ctx.spec_bug(format!("`{{secret:{name}}}` may only appear in header values")));
                };
                let Some(value) = secrets.get(name) else {
                    return Err(ConstructionError::MissingSecret {
                        tool: ctx.tool.to_owned(),
                        secret: name.to_owned(),
                    });
                };
                push_escaped(&mut out, value, escape, false)
                    .map_err(|_| ctx.invalid_params(format!("secret {name} cannot go there")))?;
            }
        }
    }
    Ok(out)
}

/// A JSON body with placeholders substituted in its string values (keys are literal). A
/// string that is exactly one parameter placeholder becomes that parameter's JSON value
/// (so an `integer` parameter stays a number), or `null` when the parameter is absent.
pub(crate) fn render_json(value: &serde_json::Value, ctx: &Context<'_>) -> ConstructionResult<serde_json::Value> {
    use serde_json::Value;
    Ok(match value {
        Value::String(text) => match sole_param(text) {
            Some(name) => ctx.params.get(name).map_or(Value::Null, |param| param.json.clone()),
            None => Value::String(render(text, ctx, Escape::Raw)?),
        },
        Value::Array(items) => {
            Value::Array(items.iter().map(|item| render_json(item, ctx)).collect::<ConstructionResult<_>>()?)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, item)| Ok((key.clone(), render_json(item, ctx)?)))
                .collect::<ConstructionResult<_>>()?,
        ),
        other => other.clone(),
    })
}

fn push_escaped(out: &mut String, value: &str, escape: Escape, keep_slashes: bool) -> Result<(), String> {
    match escape {
        Escape::Raw => out.push_str(value),
        Escape::UrlPath => {
            // URL parsers resolve `.` and `..` segments (even percent-encoded ones), which
            // would let a value climb out of the spec's path.
            let dot_segment = |segment: &str| segment == "." || segment == "..";
            let dotted = if keep_slashes { value.split('/').any(dot_segment) } else { dot_segment(value) };
            if dotted {
                return Err("cannot be `.` or `..` in a URL path".to_owned());
            }
            for byte in value.bytes() {
                let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~');
                if unreserved || (keep_slashes && byte == b'/') {
                    out.push(char::from(byte));
                } else {
                    out.push_str(&format!("%{byte:02X}"));
                }
            }
        }
    }
    Ok(())
}

/// Every placeholder in `text`, or the reason `text` holds an invalid one.
pub(crate) fn placeholders(text: &str) -> Result<Vec<Placeholder<'_>>, String> {
    Ok(parse(text)?
        .into_iter()
        .filter_map(|piece| match piece {
            Piece::Placeholder(placeholder) => Some(placeholder),
            Piece::Literal(_) => None,
        })
        .collect())
}

#[cfg(test)]
mod tests;
