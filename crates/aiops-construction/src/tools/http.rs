//! `HttpTool`: calls the target's HTTP API with a shared `reqwest::Client`.
//!
//! The URL is the target's address (or the spec's `base_url`, a management API acting on
//! the target) plus the spec's path, with substituted values percent-encoded. Secrets go into header values only, are marked sensitive so `reqwest`
//! never prints them, and are scrubbed from `resolved`, `output` and error text in case a
//! server echoes them. Success is a 2xx status; the body is read up to
//! [`OUTPUT_LIMIT_BYTES`] and the rest is not downloaded.

use std::time::Instant;

use async_trait::async_trait;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};

use crate::error::{ConstructionError, ConstructionResult};
use crate::output::{cap_text, OUTPUT_LIMIT_BYTES};
use crate::params::ParamValues;
use crate::secrets::Secrets;
use crate::spec::{HttpMethod, HttpSpec, ToolKind, ToolSpec};
use crate::template::{self, Escape};
use crate::tool::{elapsed_ms, prepare, RunMode, Tool, ToolOutput, ToolTarget};

/// A tool of `[kind] type = "http"`. `Debug` shows secret names, never values.
#[derive(Debug)]
pub struct HttpTool {
    spec: ToolSpec,
    http: HttpSpec,
    client: reqwest::Client,
    secrets: Secrets,
}

/// A request with everything substituted, ready to send or to describe.
struct ResolvedRequest {
    method: reqwest::Method,
    url: reqwest::Url,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<serde_json::Value>,
}

impl HttpTool {
    /// Builds the tool, validating `spec`. `client` is shared by all HTTP tools; `secrets`
    /// are the values `{secret:NAME}` and `bearer_secret` refer to.
    ///
    /// # Errors
    /// [`ConstructionError::InvalidSpec`] when the spec does not validate or is not of kind
    /// `http`.
    pub fn new(spec: ToolSpec, client: reqwest::Client, secrets: Secrets) -> ConstructionResult<Self> {
        spec.validate()?;
        let ToolKind::Http(http) = &spec.kind else {
            return Err(ConstructionError::InvalidSpec {
                origin: format!("tool {}", spec.name),
                line: None,
                reason: format!("an http tool needs kind http, not {}", spec.kind.as_str()),
            });
        };
        let http = http.clone();
        Ok(Self { spec, http, client, secrets })
    }

    fn resolve(&self, target: &ToolTarget, values: &ParamValues) -> ConstructionResult<ResolvedRequest> {
        let invalid_target = |reason: String| ConstructionError::InvalidTarget { tool: self.spec.name.clone(), reason };
        let address = self.http.base_url.as_deref().unwrap_or(&target.address);
        let base = reqwest::Url::parse(address)
            .map_err(|err| invalid_target(format!("address `{address}` is not a URL: {err}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.query().is_some() || base.fragment().is_some() {
            return Err(invalid_target(format!(
                "address `{address}` must be an http:// or https:// base URL without query or fragment"
            )));
        }

        let plain = template::Context { tool: &self.spec.name, params: values, target, secrets: None };
        let with_secrets = template::Context { secrets: Some(&self.secrets), ..plain };
        let path = template::render(&self.http.path, &plain, Escape::UrlPath)?;
        let joined = format!("{}{path}", address.trim_end_matches('/'));
        let url =
            reqwest::Url::parse(&joined).map_err(|err| invalid_target(format!("`{joined}` is not a URL: {err}")))?;

        let mut headers = Vec::with_capacity(self.http.headers.len() + 1);
        for (name, value_template) in &self.http.headers {
            let header_name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| ConstructionError::InvalidSpec {
                origin: format!("tool {}", self.spec.name),
                line: None,
                reason: format!("`{name}` is not a valid header name"),
            })?;
            let value = template::render(value_template, &with_secrets, Escape::Raw)?;
            let mut header_value = HeaderValue::from_str(&value).map_err(|_| ConstructionError::InvalidParams {
                tool: self.spec.name.clone(),
                reason: format!("header `{name}` would not be a valid header value"),
            })?;
            if value_template.contains("{secret:") {
                header_value.set_sensitive(true);
            }
            headers.push((header_name, header_value));
        }
        if let Some(token) = self.http.bearer_secret.as_deref().and_then(|name| self.secrets.get(name)) {
            let mut header_value =
                HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| ConstructionError::Failed {
                    tool: self.spec.name.clone(),
                    reason: "the bearer secret is not a valid header value".to_owned(),
                })?;
            header_value.set_sensitive(true);
            headers.push((AUTHORIZATION, header_value));
        }
        let body = match &self.http.body {
            Some(body) => Some(template::render_json(body, &plain)?),
            None => None,
        };
        Ok(ResolvedRequest { method: method(self.http.method), url, headers, body })
    }

    fn failed(&self, reason: &str) -> ConstructionError {
        ConstructionError::Failed { tool: self.spec.name.clone(), reason: self.secrets.redact(reason) }
    }
}

fn method(method: HttpMethod) -> reqwest::Method {
    match method {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Delete => reqwest::Method::DELETE,
    }
}

/// `err` and its sources, joined with `: `, skipping a source whose text its parent
/// already holds.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[async_trait]
impl Tool for HttpTool {
    fn spec(&self) -> &ToolSpec {
        &self.spec
    }

    async fn run(
        &self,
        target: &ToolTarget,
        params: &serde_json::Value,
        mode: RunMode,
    ) -> ConstructionResult<ToolOutput> {
        let values = prepare(&self.spec, target, params)?;
        let request = self.resolve(target, &values)?;
        let mut resolved = format!("{} {}", request.method, request.url);
        if let Some(body) = &request.body {
            resolved.push(' ');
            resolved.push_str(&body.to_string());
        }
        let resolved = self.secrets.redact(&resolved);

        if mode == RunMode::DryRun {
            let names: Vec<&str> = request.headers.iter().map(|(name, _)| name.as_str()).collect();
            let output = if names.is_empty() {
                format!("dry run: would send {resolved}")
            } else {
                format!("dry run: would send {resolved} with headers {}", names.join(", "))
            };
            return Ok(ToolOutput {
                success: true,
                exit_code: None,
                http_status: None,
                output,
                duration_ms: 0,
                resolved,
            });
        }

        tracing::debug!(tool = %self.spec.name, resolved = %resolved, "Running http tool.");
        let start = Instant::now();
        let mut builder = self.client.request(request.method, request.url);
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let exchange = async {
            let mut response = builder.send().await?;
            let status = response.status();
            let mut bytes = Vec::new();
            let mut cut = false;
            while let Some(chunk) = response.chunk().await? {
                let room = OUTPUT_LIMIT_BYTES - bytes.len();
                if chunk.len() > room {
                    bytes.extend_from_slice(&chunk[..room]);
                    cut = true;
                    break;
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok::<_, reqwest::Error>((status, bytes, cut))
        };
        let timeout = || ConstructionError::Timeout { tool: self.spec.name.clone(), after_ms: self.spec.timeout_ms };
        let (status, bytes, cut) = match tokio::time::timeout(self.spec.timeout(), exchange).await {
            Err(_) => return Err(timeout()),
            Ok(Err(err)) if err.is_timeout() => return Err(timeout()),
            Ok(Err(err)) => return Err(self.failed(&error_chain(&err))),
            Ok(Ok(exchange)) => exchange,
        };
        let total = (!cut).then_some(bytes.len() as u64);
        Ok(ToolOutput {
            success: status.is_success(),
            exit_code: None,
            http_status: Some(status.as_u16()),
            output: self.secrets.redact(&cap_text(&bytes, total, OUTPUT_LIMIT_BYTES)),
            duration_ms: elapsed_ms(start),
            resolved,
        })
    }
}

#[cfg(test)]
mod tests;
