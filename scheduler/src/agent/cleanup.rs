//! Cleanup of exited containers (issue 20), per app, at chosen times: an agent keeps the
//! exited containers of an app that has a cleanup policy (instead of removing them as soon as
//! the master no longer lists them), and removes them by that policy when its cleanup
//! schedule comes (an off-peak hour by default), at most `rate` removals per second so the
//! Docker engine is never swamped.
//!
//! A policy: the container labels `drover.cleanup.keep` (keep the newest N exited
//! containers of the app on this node) and/or `drover.cleanup.max-age` (keep those that
//! exited less than this long ago), from the app's labels; or the agent's
//! `--cleanup-keep`/`--cleanup-max-age` for apps without labels. A container is kept when
//! either rule keeps it. Running containers are never selected.
//!
//! [`select`] is pure (the unit tests); the loop around it is in `mod.rs`.
use std::{collections::BTreeMap, time::Duration};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// Label: keep the newest N exited containers of the app on each node.
pub const LABEL_KEEP: &str = "drover.cleanup.keep";
/// Label: keep exited containers younger than this (`30m`, `2h`, `7d`).
pub const LABEL_MAX_AGE: &str = "drover.cleanup.max-age";

/// How many exited containers of an app to keep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Keep the newest N.
    pub keep: Option<usize>,
    /// Keep those younger than this.
    pub max_age: Option<Duration>,
}

impl Policy {
    /// Nothing set: exited containers are not kept at all (removed at once, as without
    /// cleanup).
    pub fn is_none(&self) -> bool {
        self.keep.is_none() && self.max_age.is_none()
    }

    /// The policy of a container from its labels, else `default`. A label that does not
    /// read is an error naming it (the container is then left alone).
    pub fn from_labels(
        labels: &std::collections::HashMap<String, String>,
        default: Policy,
    ) -> Result<Policy, String> {
        let keep = labels
            .get(LABEL_KEEP)
            .map(|v| {
                v.trim().parse::<usize>().map_err(|_| {
                    format!("label {LABEL_KEEP}={v:?} is not a count of containers (0, 1, 2, …)")
                })
            })
            .transpose()?;
        let max_age = labels
            .get(LABEL_MAX_AGE)
            .map(|v| {
                drover_schema::time::parse_duration(v)
                    .map_err(|e| format!("label {LABEL_MAX_AGE}={v:?}: {e}"))
            })
            .transpose()?;
        let own = Policy { keep, max_age };
        Ok(if own.is_none() { default } else { own })
    }
}

/// An exited container as cleanup sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Exited {
    /// Container ID.
    pub id: String,
    /// Its app (`drover.app`).
    pub app: String,
    /// Its task.
    pub task: String,
    /// When it exited (when it was created, if the engine does not say).
    pub exited_at: DateTime<Utc>,
}

/// What one cleanup removes: per app, the exited containers its policy does not keep, oldest
/// first. `containers` are one node's exited containers; `policies` by app.
pub fn select(
    containers: &[Exited],
    policies: &BTreeMap<String, Policy>,
    now: DateTime<Utc>,
) -> Vec<Exited> {
    let mut by_app: BTreeMap<&str, Vec<&Exited>> = BTreeMap::new();
    for c in containers {
        by_app.entry(c.app.as_str()).or_default().push(c);
    }
    let mut out = Vec::new();
    for (app, mut cs) in by_app {
        let Some(p) = policies.get(app).filter(|p| !p.is_none()) else {
            continue;
        };
        // Newest first.
        cs.sort_by(|a, b| b.exited_at.cmp(&a.exited_at).then(a.id.cmp(&b.id)));
        for (i, c) in cs.iter().enumerate() {
            let kept_by_count = p.keep.is_some_and(|n| i < n);
            let kept_by_age = p.max_age.is_some_and(|d| {
                now - c.exited_at < chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
            });
            if !kept_by_count && !kept_by_age {
                out.push((*c).clone());
            }
        }
    }
    out.sort_by(|a, b| a.exited_at.cmp(&b.exited_at).then(a.id.cmp(&b.id)));
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn c(id: &str, app: &str, at: i64) -> Exited {
        Exited {
            id: id.into(),
            app: app.into(),
            task: format!("{id}-task"),
            exited_at: t(at),
        }
    }

    fn ids(v: &[Exited]) -> Vec<&str> {
        v.iter().map(|c| c.id.as_str()).collect()
    }

    #[test]
    fn keep_the_newest_n_per_app() {
        let cs = vec![
            c("a1", "/a", 1),
            c("a2", "/a", 2),
            c("a3", "/a", 3),
            c("a4", "/a", 4),
            c("b1", "/b", 1),
        ];
        let p = BTreeMap::from([
            (
                "/a".to_string(),
                Policy {
                    keep: Some(2),
                    max_age: None,
                },
            ),
            (
                "/b".to_string(),
                Policy {
                    keep: Some(2),
                    max_age: None,
                },
            ),
        ]);
        assert_eq!(ids(&select(&cs, &p, t(100))), ["a1", "a2"]);
        let p0 = BTreeMap::from([(
            "/a".to_string(),
            Policy {
                keep: Some(0),
                max_age: None,
            },
        )]);
        assert_eq!(
            ids(&select(&cs, &p0, t(100))),
            ["a1", "a2", "a3", "a4"],
            "keep 0: all of /a, none of /b (no policy)"
        );
    }

    #[test]
    fn keep_the_young_or_the_newest() {
        let cs = vec![
            c("a1", "/a", 0),
            c("a2", "/a", 50),
            c("a3", "/a", 90),
            c("a4", "/a", 95),
        ];
        let age = |s| Policy {
            keep: None,
            max_age: Some(Duration::from_secs(s)),
        };
        let p = BTreeMap::from([("/a".to_string(), age(30))]);
        assert_eq!(
            ids(&select(&cs, &p, t(100))),
            ["a1", "a2"],
            "younger than 30 s stay"
        );
        // Either rule keeps: the newest 3, or younger than 30 s.
        let p = BTreeMap::from([(
            "/a".to_string(),
            Policy {
                keep: Some(3),
                max_age: Some(Duration::from_secs(30)),
            },
        )]);
        assert_eq!(ids(&select(&cs, &p, t(100))), ["a1"]);
        assert!(
            select(&cs, &BTreeMap::new(), t(100)).is_empty(),
            "no policy, nothing selected"
        );
    }

    #[test]
    fn policies_from_labels_or_the_default() {
        let default = Policy {
            keep: Some(5),
            max_age: None,
        };
        let l = |kv: &[(&str, &str)]| {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<HashMap<_, _>>()
        };
        assert_eq!(Policy::from_labels(&l(&[]), default), Ok(default));
        assert_eq!(
            Policy::from_labels(&l(&[(LABEL_KEEP, "2"), (LABEL_MAX_AGE, "1h")]), default),
            Ok(Policy {
                keep: Some(2),
                max_age: Some(Duration::from_secs(3600))
            })
        );
        let e = Policy::from_labels(&l(&[(LABEL_KEEP, "-1")]), default).unwrap_err();
        assert!(
            e.contains("drover.cleanup.keep") && e.contains("count"),
            "{e}"
        );
        let e = Policy::from_labels(&l(&[(LABEL_MAX_AGE, "soon")]), default).unwrap_err();
        assert!(e.contains("drover.cleanup.max-age"), "{e}");
    }
}

// === at run time ===

/// An agent's cleanup settings.
#[derive(Debug, Clone)]
pub struct CleanupConfig {
    /// The policy of apps without cleanup labels (none: their exited containers are removed
    /// at once, as without cleanup).
    pub default: Policy,
    /// When cleanups run (a job schedule: cron or `R/start/period`); None = never (exited
    /// containers with a policy are then kept until removed by hand).
    pub schedule: Option<crate::jobs::schedule::Schedule>,
    /// Removals per second at most.
    pub rate: f64,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        Self {
            default: Policy::default(),
            schedule: None,
            rate: 2.0,
        }
    }
}

/// Is `c` an exited container its cleanup policy keeps for now (so the agent does not
/// remove it when the master stops listing it)?
pub fn retained(c: &super::docker::Owned, cfg: &CleanupConfig) -> bool {
    use bollard::models::ContainerSummaryStateEnum as S;
    matches!(c.state, S::EXITED | S::DEAD)
        && Policy::from_labels(&c.labels, cfg.default).is_ok_and(|p| !p.is_none())
}

/// The exited containers that a cleanup would remove now, among those labelled with
/// `labels` (e.g. this agent's node and cluster), oldest first — the dry run of
/// `drover cleanup plan`, and what the agent's cleanup removes.
pub async fn plan(
    docker: &bollard::Docker,
    labels: &[String],
    default: Policy,
    now: DateTime<Utc>,
) -> Result<(Vec<Exited>, Vec<String>), bollard::errors::Error> {
    use bollard::query_parameters::{InspectContainerOptions, ListContainersOptionsBuilder};
    let mut label_filter = labels.to_vec();
    label_filter.push(super::docker::LABEL_TASK.to_string());
    let filters = std::collections::HashMap::from([
        ("label".to_string(), label_filter),
        (
            "status".to_string(),
            vec!["exited".to_string(), "dead".to_string()],
        ),
    ]);
    let list = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await?;
    let mut exited = Vec::new();
    let mut policies = BTreeMap::new();
    let mut problems = Vec::new();
    for c in list {
        let labels = c.labels.clone().unwrap_or_default();
        let (Some(id), Some(task)) = (c.id.clone(), labels.get(super::docker::LABEL_TASK)) else {
            continue;
        };
        let app = labels
            .get(super::docker::LABEL_APP)
            .cloned()
            .unwrap_or_default();
        match Policy::from_labels(&labels, default) {
            Ok(p) => {
                policies.entry(app.clone()).or_insert(p);
            }
            Err(e) => {
                problems.push(format!(
                    "container {} of {app}: {e}",
                    &id[..12.min(id.len())]
                ));
                continue;
            }
        }
        // When it exited (the list has only when it was created).
        let finished = docker
            .inspect_container(&id, None::<InspectContainerOptions>)
            .await
            .ok()
            .and_then(|i| i.state?.finished_at)
            .and_then(|f| DateTime::parse_from_rfc3339(&f).ok())
            .map(|f| f.with_timezone(&Utc))
            .filter(|f| f.timestamp() > 0);
        let created = c.created.and_then(|s| DateTime::from_timestamp(s, 0));
        let Some(exited_at) = finished.or(created) else {
            continue;
        };
        exited.push(Exited {
            id,
            app,
            task: task.clone(),
            exited_at,
        });
    }
    Ok((select(&exited, &policies, now), problems))
}

impl super::Agent {
    /// Run a cleanup each time the schedule comes.
    pub(super) async fn cleanup_loop(
        self: std::sync::Arc<Self>,
        schedule: crate::jobs::schedule::Schedule,
    ) {
        loop {
            let now = Utc::now();
            let Some(next) = schedule.next_after(now) else {
                tracing::info!("the cleanup schedule has no more times");
                return;
            };
            tracing::debug!(next = %next, "next cleanup of exited containers");
            tokio::time::sleep((next - now).to_std().unwrap_or_default()).await;
            let cluster = self.cluster.lock().expect("agent lock").clone();
            if cluster.is_empty() {
                continue;
            }
            self.cleanup_once(&cluster).await;
        }
    }

    async fn cleanup_once(&self, cluster: &str) {
        let labels = [
            format!("{}={}", super::docker::LABEL_NODE, self.cfg.node_id),
            format!("{}={cluster}", super::docker::LABEL_CLUSTER),
        ];
        let (doomed, problems) =
            match plan(&self.docker, &labels, self.cfg.cleanup.default, Utc::now()).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "cleanup: cannot list the exited containers");
                    return;
                }
            };
        for p in problems {
            tracing::warn!(problem = %p, "cleanup: a policy label does not read; its container is left alone");
        }
        let pause = Duration::from_secs_f64(1.0 / self.cfg.cleanup.rate.max(0.01));
        let mut removed = Vec::new();
        for (i, c) in doomed.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(pause).await;
            }
            match super::docker::remove(&self.docker, &c.id).await {
                Ok(()) => {
                    self.metrics.cleanup_removed.inc();
                    tracing::info!(container = %&c.id[..12.min(c.id.len())], app = %c.app, task = %c.task, "cleanup: exited container removed");
                    removed.push(c.clone());
                }
                Err(e) => {
                    self.metrics.cleanup_failures.inc();
                    tracing::warn!(container = %c.id, error = %e, "cleanup: cannot remove an exited container");
                }
            }
        }
        tracing::info!(
            removed = removed.len(),
            selected = doomed.len(),
            "cleanup of exited containers done"
        );
        if removed.is_empty() {
            return;
        }
        // Recorded as an event by the master.
        let base = self.cfg.master.trim_end_matches('/');
        let url = format!("{base}/v1/agents/{}/cleanup", self.cfg.node_id);
        let body = serde_json::json!({"removed": removed});
        if let Err(e) = self.http.post(&url).json(&body).send().await {
            tracing::warn!(error = %e, "cleanup: cannot tell the master what was removed");
        }
    }
}
