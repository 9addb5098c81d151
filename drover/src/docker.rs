//! The one way every role connects to a Docker engine: the collector, the agent and the demo
//! check take the connected client from here.
use anyhow::Context;
use bollard::{Docker, API_DEFAULT_VERSION};

/// Connect to the engine at `addr` (`""` = `$DOCKER_HOST` or the local socket,
/// `unix:///PATH`, `tcp://HOST:PORT`) and agree on the API version. An engine that does not
/// answer yet is not an error: the client keeps the default version and the role retries its
/// calls.
pub async fn connect(addr: &str) -> anyhow::Result<Docker> {
    let docker = if addr.is_empty() {
        Docker::connect_with_local_defaults()
    } else if let Some(path) = addr.strip_prefix("unix://") {
        Docker::connect_with_unix(path, 120, API_DEFAULT_VERSION)
    } else {
        Docker::connect_with_http(addr, 120, API_DEFAULT_VERSION)
    }
    .with_context(|| {
        format!(
            "cannot use the Docker engine at {addr:?}; pass --docker unix:///var/run/docker.sock or tcp://HOST:PORT"
        )
    })?;
    Ok(match docker.clone().negotiate_version().await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(error = %e, addr, "docker engine not answering yet; will keep trying");
            docker
        }
    })
}
