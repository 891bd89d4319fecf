//! A `tower` layer that records every request an axum router handles as an `http.request`
//! event, and reports errors that handlers attach to their responses.
//!
//! Add it with `Router::layer`, not around the finished router: axum sets the
//! [`MatchedPath`] (the route template) only after routing, so a layer outside the router
//! would see no template and record `unmatched` for everything. The raw path is never
//! recorded: it carries ids, which would make every request its own series.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use aiops_model::{RequestRecord, RequestRejection, ServiceError};
use axum::extract::MatchedPath;
use axum::http::{Request, Response};
use tower::{Layer, Service};

use crate::AiopsClient;

/// Route recorded for requests that matched no route (the router's fallback).
const UNMATCHED_ROUTE: &str = "unmatched";

/// A layer recording every request through `client`. Apply it with `Router::layer`.
///
/// For each response it records an `http.request` event (method, route template or
/// `"unmatched"`, status, duration until the response head, trace id from a W3C
/// `traceparent` header); a request dropped before its response because the client went
/// away is recorded with status 499 ([`CLIENT_CLOSED_REQUEST`]), and a refused one with the
/// reason its handler gave (an [`aiops_model::RequestRejection`] extension). When the response carries an [`aiops_model::ServiceError`] in its
/// extensions, it also reports that error, with `route` filled in when the handler left it
/// empty: this is how handlers report their 5xx causes without a client at hand.
pub fn track_requests(client: AiopsClient) -> TrackRequestsLayer {
    TrackRequestsLayer { client }
}

/// The layer returned by [`track_requests`].
#[derive(Debug, Clone)]
pub struct TrackRequestsLayer {
    client: AiopsClient,
}

impl<S> Layer<S> for TrackRequestsLayer {
    type Service = TrackRequests<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TrackRequests { inner, client: self.client.clone() }
    }
}

/// The service wrapper made by [`TrackRequestsLayer`].
#[derive(Debug, Clone)]
pub struct TrackRequests<S> {
    inner: S,
    client: AiopsClient,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for TrackRequests<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ResBody>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let started = Instant::now();
        let method = request.method().as_str().to_owned();
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| UNMATCHED_ROUTE.to_owned(), |path| path.as_str().to_owned());
        let trace_id =
            request.headers().get("traceparent").and_then(|value| value.to_str().ok()).and_then(parse_traceparent);
        let client = self.client.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            // Dropped before the response: the client went away and the server dropped the
            // request. Recorded as nginx does, 499 "client closed request", so a page that
            // gives up early still shows on the service's side.
            let mut pending = Abandoned { record: Some((method, route, trace_id, started)), client: client.clone() };
            let response = response.await?;
            let (method, route, trace_id, started) = pending.record.take().expect("taken once");
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            if let Some(error) = response.extensions().get::<ServiceError>() {
                let mut error = error.clone();
                if error.route.is_none() {
                    error.route = Some(route.clone());
                }
                client.report_error(error);
            }
            client.record_request(RequestRecord {
                method,
                route,
                status: response.status().as_u16(),
                duration_ms,
                trace_id,
                rejected: response.extensions().get::<RequestRejection>().map(|r| r.0.clone()),
            });
            Ok(response)
        })
    }
}

/// Status recorded for a request whose client went away before the answer.
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// Records a request dropped before its response (see [`CLIENT_CLOSED_REQUEST`]).
struct Abandoned {
    record: Option<(String, String, Option<String>, Instant)>,
    client: AiopsClient,
}

impl Drop for Abandoned {
    fn drop(&mut self) {
        if let Some((method, route, trace_id, started)) = self.record.take() {
            let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
            self.client.record_request(RequestRecord {
                method,
                route,
                status: CLIENT_CLOSED_REQUEST,
                duration_ms,
                trace_id,
                rejected: None,
            });
        }
    }
}

/// The trace id of a W3C `traceparent` header value
/// (`{version}-{trace-id}-{parent-id}-{flags}`), or `None` when the value is malformed or
/// the trace id is all zeros, as the Trace Context spec says to treat it.
pub fn parse_traceparent(value: &str) -> Option<String> {
    fn is_hex(text: &str, len: usize) -> bool {
        text.len() == len && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }
    let mut parts = value.trim().split('-');
    let version = parts.next()?;
    let trace_id = parts.next()?;
    let parent_id = parts.next()?;
    let flags = parts.next()?;
    // Version 00 has exactly four fields; later versions may append more.
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let valid = is_hex(version, 2)
        && version != "ff"
        && is_hex(trace_id, 32)
        && is_hex(parent_id, 16)
        && is_hex(flags, 2)
        && trace_id.bytes().any(|b| b != b'0')
        && parent_id.bytes().any(|b| b != b'0');
    valid.then(|| trace_id.to_owned())
}

#[cfg(test)]
mod tests {
    use super::parse_traceparent;

    #[test]
    fn traceparent_yields_the_trace_id_only_when_well_formed() {
        assert_eq!(
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ] {
            assert_eq!(parse_traceparent(bad), None, "{bad:?}");
        }
        assert!(parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x").is_some());
    }
}
