//! Health checks run by the agent, with Marathon's semantics: HTTP/HTTPS (2xx–3xx is
//! healthy; 1xx with ignoreHttp1xx), TCP (connects), COMMAND (exit 0 inside the container).
//! Failures during `gracePeriodSeconds` after the start are ignored until the first success.
use std::time::Duration;

use bollard::{
    exec::{CreateExecOptions, StartExecResults},
    Docker,
};
use chrono::{DateTime, Utc};
use futures::StreamExt;

use crate::model::{HealthCheck, TaskSpec};

/// The health of one task, as reported to the master.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// None until a result counts.
    pub healthy: Option<bool>,
    /// Failures in a row (outside the grace period).
    pub consecutive_failures: u32,
    /// Last success.
    pub last_success: Option<DateTime<Utc>>,
    /// Last failure.
    pub last_failure: Option<DateTime<Utc>>,
    /// Why it last failed.
    pub last_failure_cause: Option<String>,
}

impl Health {
    /// Take a result in: `started` is when the task started, `now` the check's time.
    pub fn record(
        &mut self,
        result: Result<(), String>,
        hc: &HealthCheck,
        started: DateTime<Utc>,
        now: DateTime<Utc>,
    ) {
        match result {
            Ok(()) => {
                self.healthy = Some(true);
                self.consecutive_failures = 0;
                self.last_success = Some(now);
            }
            Err(cause) => {
                let in_grace = self.last_success.is_none()
                    && (now - started).num_milliseconds() as f64
                        <= hc.grace_period_seconds * 1000.0;
                if in_grace {
                    return;
                }
                self.healthy = Some(false);
                self.consecutive_failures += 1;
                self.last_failure = Some(now);
                self.last_failure_cause = Some(cause);
            }
        }
    }
}

/// The port a check targets.
pub fn check_port(hc: &HealthCheck, spec: &TaskSpec) -> Option<u16> {
    if let Some(p) = hc.port {
        return u16::try_from(p).ok();
    }
    spec.host_ports
        .get(hc.port_index.unwrap_or(0).max(0) as usize)
        .copied()
}

/// Run one check once.
pub async fn check_once(
    hc: &HealthCheck,
    spec: &TaskSpec,
    container_id: &str,
    docker: &Docker,
    http: &reqwest::Client,
) -> Result<(), String> {
    let timeout = Duration::from_secs_f64(hc.timeout_seconds.max(0.001));
    let proto = hc.protocol.to_ascii_uppercase();
    let run = async {
        match proto.as_str() {
            "COMMAND" => {
                let cmd = hc
                    .command
                    .as_ref()
                    .map(|c| c.value.clone())
                    .unwrap_or_default();
                command_check(docker, container_id, &cmd).await
            }
            "TCP" | "MESOS_TCP" => {
                let port = check_port(hc, spec).ok_or("the task has no such port")?;
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("TCP connect to port {port}: {e}"))
            }
            _ => {
                let port = check_port(hc, spec).ok_or("the task has no such port")?;
                let scheme = if proto.ends_with("HTTPS") {
                    "https"
                } else {
                    "http"
                };
                let url = format!("{scheme}://127.0.0.1:{port}{}", hc.path);
                let resp = http
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| format!("GET {url}: {e}"))?;
                let code = resp.status().as_u16();
                if (200..400).contains(&code) || (hc.ignore_http1xx && (100..200).contains(&code)) {
                    Ok(())
                } else {
                    Err(format!("GET {url}: status {code}"))
                }
            }
        }
    };
    match tokio::time::timeout(timeout, run).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {}s", hc.timeout_seconds)),
    }
}

async fn command_check(docker: &Docker, container_id: &str, cmd: &str) -> Result<(), String> {
    let exec = docker
        .create_exec(
            container_id,
            CreateExecOptions {
                cmd: Some(vec!["sh", "-c", cmd]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("exec {cmd:?}: {e}"))?;
    if let StartExecResults::Attached { mut output, .. } =
        docker
            .start_exec(&exec.id, None)
            .await
            .map_err(|e| format!("exec {cmd:?}: {e}"))?
    {
        while output.next().await.is_some() {}
    }
    let inspect = docker
        .inspect_exec(&exec.id)
        .await
        .map_err(|e| format!("exec {cmd:?}: {e}"))?;
    match inspect.exit_code {
        Some(0) => Ok(()),
        Some(c) => Err(format!("command {cmd:?} exited with {c}")),
        None => Err(format!("command {cmd:?}: no exit code")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(grace: f64) -> HealthCheck {
        let mut h: HealthCheck = serde_json::from_str("{}").unwrap();
        h.grace_period_seconds = grace;
        h
    }

    #[test]
    fn failures_in_grace_are_ignored_until_a_success() {
        let t0: DateTime<Utc> = "2026-01-01T00:00:00Z".parse().unwrap();
        let s = |x: i64| t0 + chrono::Duration::seconds(x);
        let mut h = Health::default();
        h.record(Err("x".into()), &hc(10.0), t0, s(5));
        assert_eq!(h.healthy, None);
        assert_eq!(h.consecutive_failures, 0);
        h.record(Err("x".into()), &hc(10.0), t0, s(11));
        assert_eq!(h.healthy, Some(false));
        assert_eq!(h.consecutive_failures, 1);
        h.record(Ok(()), &hc(10.0), t0, s(12));
        assert_eq!(h.healthy, Some(true));
        assert_eq!(h.consecutive_failures, 0);
        // after a success, the grace period no longer applies
        let mut h = Health::default();
        h.record(Ok(()), &hc(10.0), t0, s(1));
        h.record(Err("x".into()), &hc(10.0), t0, s(2));
        assert_eq!(h.consecutive_failures, 1);
    }
}
