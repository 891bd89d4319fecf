//! Bearer-token authentication with scopes.
//!
//! With no tokens configured the API is open; that is the embedded default, bound to
//! loopback. Once tokens are configured, every `/v1` route needs one carrying the route's
//! scope. Token values are compared in constant time and never logged.

use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};

use crate::ApiError;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Read events, problems, services, knowledge, audit.
    Read,
    /// Send events, register services and heartbeats.
    Ingest,
    /// Propose tools and everything else that changes the core itself.
    Admin,
}

/// One accepted token.
#[derive(Clone)]
pub struct ApiToken {
    /// Name for the audit log (never the secret).
    pub name: String,
    /// The secret value.
    pub secret: String,
    /// What it may do; `admin` implies the others.
    pub scopes: Vec<Scope>,
}

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiToken")
            .field("name", &self.name)
            .field("secret", &"[redacted]")
            .field("scopes", &self.scopes)
            .finish()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The configured token the request presents, if any.
fn presented<'a>(tokens: &'a [ApiToken], headers: &HeaderMap) -> Option<&'a ApiToken> {
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))?;
    tokens.iter().find(|t| constant_time_eq(t.secret.as_bytes(), presented.trim().as_bytes()))
}

/// Whether the request may reach a token-protected route at all: no tokens are configured,
/// or it presents one of them (whatever its scopes).
pub(crate) fn authenticated(tokens: &[ApiToken], headers: &HeaderMap) -> bool {
    tokens.is_empty() || presented(tokens, headers).is_some()
}

/// Checks the request's bearer token for `scope`; returns the token's name (or `anonymous`).
///
/// # Errors
/// 401 without a valid token, 403 when the token lacks the scope.
pub(crate) fn authorize(tokens: &[ApiToken], headers: &HeaderMap, scope: Scope) -> Result<String, ApiError> {
    if tokens.is_empty() {
        return Ok("anonymous".into());
    }
    let token = presented(tokens, headers).ok_or(ApiError::Unauthorized)?;
    if token.scopes.contains(&scope) || token.scopes.contains(&Scope::Admin) {
        Ok(token.name.clone())
    } else {
        Err(ApiError::Forbidden(format!("token {} lacks the {scope:?} scope", token.name).to_lowercase()))
    }
}
