//! The agent's side of the Docker engine: the containers it owns (labelled with its node
//! ID), creating and starting a task's container, stopping and removing one.
use std::collections::{BTreeMap, HashMap};

use bollard::{
    models::{ContainerCreateBody, ContainerSummaryStateEnum, HostConfig, PortBinding},
    query_parameters::{
        CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
        RemoveContainerOptionsBuilder, StopContainerOptions,
    },
    Docker,
};
use chrono::{DateTime, TimeZone, Utc};
use futures::StreamExt;

use crate::model::TaskSpec;

pub use drover_schema::labels::{
    APP as LABEL_APP, CLUSTER as LABEL_CLUSTER, GROUP as LABEL_GROUP,
    KILL_GRACE as LABEL_KILL_GRACE, NODE as LABEL_NODE, TASK as LABEL_TASK,
    VERSION as LABEL_VERSION,
};

/// Why a task's container could not be started (the message becomes the task's failure
/// reason on the master).
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// `forcePullImage` and the pull failed.
    #[error("cannot pull {image}: {source}")]
    Pull {
        /// The image.
        image: String,
        /// Docker's error.
        source: bollard::errors::Error,
    },
    /// A host port of the task is taken on this node.
    #[error("host port {port} is not free on this node: {source}")]
    PortTaken {
        /// The port.
        port: u16,
        /// The bind error.
        source: std::io::Error,
    },
    /// The image is not on this node's engine.
    #[error("image {image} is not on this node's Docker engine (Drover does not pull unless container.docker.forcePullImage is set): {source}")]
    NoImage {
        /// The image.
        image: String,
        /// Docker's error.
        source: bollard::errors::Error,
    },
    /// Creating the container failed.
    #[error("cannot create the container: {source}")]
    Create {
        /// Docker's error.
        source: bollard::errors::Error,
    },
    /// Starting the container failed (it was removed again).
    #[error("cannot start the container: {source}")]
    Start {
        /// Docker's error.
        source: bollard::errors::Error,
    },
}

/// One container the agent owns, as the engine lists it.
#[derive(Debug, Clone)]
pub struct Owned {
    /// Container ID.
    pub id: String,
    /// Task ID (label).
    pub task_id: String,
    /// App ID (label).
    pub app_id: String,
    /// running, created, exited, …
    pub state: ContainerSummaryStateEnum,
    /// Exit status of an exited container (parsed from the status line).
    pub exit_code: Option<i64>,
    /// When it was created.
    pub created: Option<DateTime<Utc>>,
    /// Seconds between SIGTERM and SIGKILL.
    pub kill_grace: f64,
    /// Its labels (the app's, e.g. a cleanup policy, and Drover's).
    pub labels: HashMap<String, String>,
}

/// Every container labelled with this node ID and cluster ID, running or not.
pub async fn list_owned(
    docker: &Docker,
    node_id: &str,
    cluster_id: &str,
) -> Result<Vec<Owned>, bollard::errors::Error> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![
            format!("{LABEL_NODE}={node_id}"),
            format!("{LABEL_CLUSTER}={cluster_id}"),
        ],
    )]);
    let list = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await?;
    Ok(list
        .into_iter()
        .filter_map(|c| {
            let labels = c.labels.unwrap_or_default();
            let task_id = labels.get(LABEL_TASK)?.clone();
            Some(Owned {
                id: c.id?,
                task_id,
                app_id: labels.get(LABEL_APP).cloned().unwrap_or_default(),
                state: c.state.unwrap_or(ContainerSummaryStateEnum::EMPTY),
                exit_code: c.status.as_deref().and_then(parse_exit_code),
                created: c.created.and_then(|s| Utc.timestamp_opt(s, 0).single()),
                kill_grace: labels
                    .get(LABEL_KILL_GRACE)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(3.0),
                labels,
            })
        })
        .collect())
}

/// `Exited (137) 2 seconds ago` → 137.
fn parse_exit_code(status: &str) -> Option<i64> {
    let rest = status.strip_prefix("Exited (")?;
    rest[..rest.find(')')?].parse().ok()
}

/// The container name of a task.
pub fn container_name(task_id: &str) -> String {
    let clean: String = task_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("drover-{clean}")
}

/// The environment of a task: its app's env plus Marathon's variables.
pub fn task_env(spec: &TaskSpec, node_id: &str, host: &str) -> Vec<String> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    let mut set = |k: &str, v: String| {
        env.insert(k.to_string(), v);
    };
    set(drover_schema::labels::ENV_APP_ID, spec.app_id.clone());
    set("DROVER_TASK_ID", spec.task_id.clone());
    set("DROVER_NODE_ID", node_id.to_string());
    set(
        drover_schema::labels::ENV_MARATHON_APP_ID,
        spec.app_id.clone(),
    );
    set(
        "MARATHON_APP_VERSION",
        crate::model::ts(spec.config_version),
    );
    set("MESOS_TASK_ID", spec.task_id.clone());
    set("HOST", host.to_string());
    let ports: Vec<String> = spec.host_ports.iter().map(|p| p.to_string()).collect();
    for (i, p) in ports.iter().enumerate() {
        set(&format!("PORT{i}"), p.clone());
    }
    if let Some(first) = ports.first() {
        set("PORT", first.clone());
    }
    set("PORTS", ports.join(","));
    for (i, (cp, _)) in spec.container_ports.iter().enumerate() {
        if let Some(hp) = spec.host_ports.get(i) {
            set(&format!("PORT_{cp}"), hp.to_string());
        }
    }
    // The app's own env wins (e.g. PORT=8080 for the container port of a bridge app).
    env.extend(spec.env.clone());
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// Create and start the container of a task. Returns its ID.
pub async fn launch(
    docker: &Docker,
    spec: &TaskSpec,
    node_id: &str,
    cluster_id: &str,
    host: &str,
    default_image: &str,
) -> Result<String, LaunchError> {
    let image = spec
        .image
        .clone()
        .unwrap_or_else(|| default_image.to_string());
    if spec.force_pull {
        let (repo, tag) = image.rsplit_once(':').unwrap_or((image.as_str(), "latest"));
        let mut pull = docker.create_image(
            Some(
                CreateImageOptionsBuilder::default()
                    .from_image(repo)
                    .tag(tag)
                    .build(),
            ),
            None,
            None,
        );
        while let Some(r) = pull.next().await {
            r.map_err(|source| LaunchError::Pull {
                image: image.clone(),
                source,
            })?;
        }
    }
    // A host port something else took (another program, another agent on this host) fails
    // the task now with a clear reason; the master places its replacement on other ports.
    for p in &spec.host_ports {
        if let Err(source) = std::net::TcpListener::bind(("0.0.0.0", *p)) {
            return Err(LaunchError::PortTaken { port: *p, source });
        }
    }
    let mut labels: HashMap<String, String> = spec.labels.clone().into_iter().collect();
    labels.insert(LABEL_APP.into(), spec.app_id.clone());
    labels.insert(LABEL_TASK.into(), spec.task_id.clone());
    labels.insert(LABEL_GROUP.into(), spec.group.clone());
    labels.insert(LABEL_NODE.into(), node_id.to_string());
    labels.insert(LABEL_CLUSTER.into(), cluster_id.to_string());
    labels.insert(LABEL_VERSION.into(), crate::model::ts(spec.config_version));
    labels.insert(LABEL_KILL_GRACE.into(), spec.kill_grace_secs.to_string());
    let cmd = match (&spec.cmd, &spec.args) {
        (Some(c), _) => Some(vec!["sh".to_string(), "-c".to_string(), c.clone()]),
        (None, Some(a)) => Some(a.clone()),
        (None, None) => None,
    };
    let mut host_config = HostConfig {
        memory: (spec.mem > 0.0).then_some((spec.mem * 1024.0 * 1024.0) as i64),
        cpu_shares: (spec.cpus > 0.0).then(|| ((spec.cpus * 1024.0) as i64).max(2)),
        privileged: Some(spec.privileged),
        ..Default::default()
    };
    let mut exposed = None;
    if spec.bridge {
        let mut bindings = HashMap::new();
        let mut ex = Vec::new();
        for (i, (cp, proto)) in spec.container_ports.iter().enumerate() {
            let Some(hp) = spec.host_ports.get(i) else {
                continue;
            };
            let key = format!("{cp}/{proto}");
            bindings.insert(
                key.clone(),
                Some(vec![PortBinding {
                    host_ip: None,
                    host_port: Some(hp.to_string()),
                }]),
            );
            ex.push(key);
        }
        host_config.port_bindings = Some(bindings);
        exposed = Some(ex);
    } else {
        host_config.network_mode = Some("host".into());
    }
    let body = ContainerCreateBody {
        image: Some(image.clone()),
        cmd,
        env: Some(task_env(spec, node_id, host)),
        labels: Some(labels),
        user: spec.user.clone(),
        exposed_ports: exposed,
        host_config: Some(host_config),
        ..Default::default()
    };
    let name = container_name(&spec.task_id);
    let created = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(&name).build()),
            body,
        )
        .await
        .map_err(|source| match &source {
            bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            } => LaunchError::NoImage {
                image: image.clone(),
                source,
            },
            _ => LaunchError::Create { source },
        })?;
    if let Err(source) = docker.start_container(&created.id, None).await {
        let _ = remove(docker, &created.id).await;
        return Err(LaunchError::Start { source });
    }
    Ok(created.id)
}

/// Stop (SIGTERM, then SIGKILL after `grace` seconds) and remove a container.
pub async fn stop_and_remove(
    docker: &Docker,
    id: &str,
    grace: f64,
) -> Result<(), bollard::errors::Error> {
    let opts = StopContainerOptions {
        signal: None,
        t: Some(grace.ceil().max(0.0) as i32),
    };
    match docker.stop_container(id, Some(opts)).await {
        Ok(()) => {}
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 304 | 404,
            ..
        }) => {}
        Err(e) => return Err(e),
    }
    remove(docker, id).await
}

/// Remove a (stopped) container.
pub async fn remove(docker: &Docker, id: &str) -> Result<(), bollard::errors::Error> {
    match docker
        .remove_container(
            id,
            Some(
                RemoveContainerOptionsBuilder::default()
                    .force(true)
                    .v(true)
                    .build(),
            ),
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404 | 409,
            ..
        }) => Ok(()),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes() {
        assert_eq!(parse_exit_code("Exited (137) 2 seconds ago"), Some(137));
        assert_eq!(parse_exit_code("Exited (0) About a minute ago"), Some(0));
        assert_eq!(parse_exit_code("Up 3 seconds"), None);
    }

    #[test]
    fn names_are_docker_safe() {
        assert_eq!(container_name("shop_web.ab-12"), "drover-shop_web.ab-12");
        assert_eq!(container_name("a/b"), "drover-a_b");
    }
}
