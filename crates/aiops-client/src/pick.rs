//! Finding an instance of another service to call: the core picks one among the healthy
//! instances (`GET /v1/services/{name}/pick`), so callers never hold a stale list.

use aiops_model::PickStrategy;
use serde::Deserialize;

use crate::AiopsClient;

/// An instance the core picked.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PickedInstance {
    /// Its service.
    #[serde(rename = "name")]
    pub service: String,
    /// Its instance id.
    pub instance_id: String,
    /// Its base URL, `http://host:port`.
    pub address: String,
}

/// Why no instance was picked.
#[derive(Debug, thiserror::Error)]
pub enum PickError {
    /// Nothing by that name is registered.
    #[error("no instance of service {0} is registered")]
    UnknownService(String),
    /// Instances exist, but none is passing or warning.
    #[error("no healthy instance of service {service}: {message}")]
    NoHealthyInstance {
        /// The service.
        service: String,
        /// The core's explanation.
        message: String,
    },
    /// The core could not be reached or refused the request.
    #[error("the core could not pick an instance: {0}")]
    Core(String),
}

#[derive(Deserialize)]
struct PickAnswer {
    instance: PickedInstance,
}

impl AiopsClient {
    /// Asks the core for a healthy instance of `service`. With
    /// [`PickStrategy::LeastOutstanding`], call [`AiopsClient::release`] when the call to it
    /// is done; [`PickStrategy::ConsistentHash`] needs a `key`.
    ///
    /// # Errors
    /// [`PickError`]: unknown service, no healthy instance, or the core unreachable.
    pub async fn pick(
        &self,
        service: &str,
        strategy: PickStrategy,
        key: Option<&str>,
    ) -> Result<PickedInstance, PickError> {
        let mut url = self.endpoints().instance(service, &["pick"]);
        url.query_pairs_mut().append_pair("strategy", strategy.as_str());
        if let Some(key) = key {
            url.query_pairs_mut().append_pair("key", key);
        }
        let response = self.http().get(url).send().await.map_err(|err| PickError::Core(err.to_string()))?;
        let status = response.status();
        if status.is_success() {
            let answer: PickAnswer = response.json().await.map_err(|err| PickError::Core(err.to_string()))?;
            return Ok(answer.instance);
        }
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        let message = body["error"]["message"].as_str().unwrap_or("no error message").to_owned();
        Err(match status.as_u16() {
            404 => PickError::UnknownService(service.to_owned()),
            503 => PickError::NoHealthyInstance { service: service.to_owned(), message },
            _ => PickError::Core(format!("{status}: {message}")),
        })
    }

    /// Ends a [`PickStrategy::LeastOutstanding`] pick. A failure is only logged: the core
    /// then counts the instance as a little busier than it is.
    pub async fn release(&self, picked: &PickedInstance) {
        let url = self.endpoints().instance(&picked.instance_id, &["release"]);
        if let Err(err) = self.http().post(url).send().await.and_then(reqwest::Response::error_for_status) {
            tracing::debug!(instance = %picked.instance_id, error = %err, "Releasing a pick failed.");
        }
    }
}
