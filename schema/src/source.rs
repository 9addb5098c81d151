use serde::{Deserialize, Serialize};

/// Where a log line or a container sample comes from: the tags every record carries so
/// that logs and metrics split by app, group, task, node and container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Source {
    /// Hostname of the machine the collector runs on.
    pub host: String,
    /// Drover node ID of the agent that owns the container, if Drover started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// App ID (`/shop/web`), from the `drover.app` label, `DROVER_APP_ID`/`MARATHON_APP_ID`,
    /// the compose service, or the container name, in the collector's configured order.
    pub app: String,
    /// Drover task ID, if Drover started the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Scaling group of the app (`g1`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Full Docker container ID.
    pub container_id: String,
    /// Container name without the leading `/`.
    pub container_name: String,
    /// Image reference the container was created from.
    #[serde(default)]
    pub image: String,
}
