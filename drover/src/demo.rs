//! `drover up --demo`: deploy the demo app (`/demo`, two instances of `drover-demo:latest`
//! logging plain and JSON lines) and send it a little traffic (a few requests a second, 5 %
//! answered 500), so a first-time user sees live logs, access-log fields and charts without
//! writing any config.
use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use tokio::sync::watch;

/// The demo app's ID.
pub const APP_ID: &str = "/demo";
/// The image the demo app runs by default (built by `tests/images/build.sh demo`, which
/// `./dev up --demo` runs).
pub const IMAGE: &str = "drover-demo:latest";

/// The demo app's definition (Marathon JSON) running `image`.
pub fn definition(image: &str) -> Value {
    json!({
        "id": APP_ID,
        "instances": 2,
        "cpus": 0.1,
        "mem": 64,
        "container": {"type": "DOCKER", "docker": {"image": image}},
        "env": {
            "LOG_RATE": "2", "LOG_FORMAT": "mixed", "ERROR_RATE": "0.05",
            "LATENCY_MS": "5", "LATENCY_JITTER_MS": "60"
        },
        // Routed by the gateway (drover up --gateway): curl -H 'Host: demo.localhost' 127.0.0.1:8000
        "labels": {"drover.demo": "true", "drover.gateway.host": "demo.localhost"},
        "healthChecks": [{"protocol": "HTTP", "path": "/healthz", "portIndex": 0,
            "gracePeriodSeconds": 10, "intervalSeconds": 5, "timeoutSeconds": 2,
            "maxConsecutiveFailures": 3}],
        "upgradeStrategy": {"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.5},
        "taskKillGracePeriodSeconds": 2
    })
}

/// Fails with what to do when the Docker engine cannot be reached or lacks `image`.
pub async fn check_image(docker_addr: &str, image: &str) -> anyhow::Result<()> {
    let docker = crate::docker::connect(docker_addr).await.with_context(|| {
        format!("--demo: cannot connect to Docker at {docker_addr:?}; is dockerd running? (--docker URI picks another engine)")
    })?;
    match docker.inspect_image(image).await {
        Ok(_) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {
            let build = if image == IMAGE {
                "build it with `tests/images/build.sh demo` (./dev up --demo does it for you)"
            } else {
                "load or build it first, or leave out --demo-image to use drover-demo:latest"
            };
            anyhow::bail!("--demo needs the image {image}, which this Docker engine does not have: {build}")
        }
        Err(e) => anyhow::bail!(
            "--demo: cannot ask the Docker engine for the image {image} ({e}); is dockerd running? (--docker URI picks another engine)"
        ),
    }
}

/// Deploy the demo app through the server's own Marathon API at `base` (unless it is
/// already there) and send it traffic until `stop`.
pub fn spawn(
    base: String,
    image: String,
    mut stop: watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .default_headers(drover_auth::client::default_headers())
            .build()
            .expect("HTTP client");
        tokio::select! {
            r = deploy(&client, &base, &image) => if let Err(e) = r {
                eprintln!("warning: could not deploy the demo app: {e:#}");
                return;
            },
            _ = stop.wait_for(|s| *s) => return,
        }
        tokio::select! {
            _ = traffic(&client, &base) => {}
            _ = stop.wait_for(|s| *s) => {}
        }
    })
}

async fn deploy(client: &reqwest::Client, base: &str, image: &str) -> anyhow::Result<()> {
    let url = format!("{base}/v2/apps{APP_ID}");
    // The server starts accepting as this runs: retry for a few seconds.
    let mut last = None;
    for _ in 0..50 {
        match client.get(&url).send().await {
            Ok(r) if r.status().is_success() => {
                tracing::info!(app = APP_ID, "the demo app is already deployed");
                return Ok(());
            }
            Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {
                let r = client
                    .post(format!("{base}/v2/apps"))
                    .json(&definition(image))
                    .send()
                    .await?;
                if !r.status().is_success() {
                    anyhow::bail!("the master refused the demo app: {}", r.text().await?);
                }
                tracing::info!(app = APP_ID, "demo app deployed");
                return Ok(());
            }
            Ok(r) => last = Some(anyhow::anyhow!("HTTP {}", r.status())),
            Err(e) => last = Some(e.into()),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no answer")))
}

/// A few requests a second to each running instance, forever.
async fn traffic(client: &reqwest::Client, base: &str) {
    let mut targets: Vec<String> = Vec::new();
    let mut refreshed = tokio::time::Instant::now() - Duration::from_secs(60);
    loop {
        if refreshed.elapsed() > Duration::from_secs(5) {
            refreshed = tokio::time::Instant::now();
            if let Ok(r) = client
                .get(format!("{base}/v2/apps{APP_ID}/tasks"))
                .send()
                .await
            {
                if let Ok(v) = r.json::<Value>().await {
                    targets = running_endpoints(&v);
                }
            }
        }
        for t in &targets {
            // Only `GET /` prints an access-log line (with its query string).
            let path = ["/", "/", "/?user=42", "/?page=2", "/?q=shoes"][fastrand::usize(..5)];
            let _ = client.get(format!("http://{t}{path}")).send().await;
        }
        tokio::time::sleep(Duration::from_millis(400 + fastrand::u64(..400))).await;
    }
}

/// `127.0.0.1:port` of each running task in a `/v2/apps/{id}/tasks` answer (the demo runs
/// on `drover up`'s own agent, so on this machine, whatever its hostname resolves to).
fn running_endpoints(tasks: &Value) -> Vec<String> {
    tasks["tasks"]
        .as_array()
        .map(|ts| {
            ts.iter()
                .filter(|t| t["state"] == "TASK_RUNNING")
                .filter_map(|t| {
                    let port = t["ports"].as_array()?.first()?.as_u64()?;
                    Some(format!("127.0.0.1:{port}"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_is_valid() {
        let app = drover_scheduler::validate::parse_app(definition(IMAGE)).expect("parses");
        let errs = drover_scheduler::validate::validate_app(&app, None);
        assert!(errs.is_empty(), "{errs}");
    }

    #[test]
    fn endpoints_of_running_tasks_only() {
        let v = json!({"tasks": [
            {"state": "TASK_RUNNING", "host": "10.0.0.5", "ports": [31001]},
            {"state": "TASK_STAGING", "host": "10.0.0.5", "ports": [31002]},
            {"state": "TASK_RUNNING", "host": "", "ports": [31003]},
            {"state": "TASK_RUNNING", "host": "h", "ports": []}
        ]});
        assert_eq!(
            running_endpoints(&v),
            vec!["127.0.0.1:31001", "127.0.0.1:31003"]
        );
    }
}
