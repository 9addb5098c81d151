//! The master at run time: the state behind a lock, persisted to the store after every
//! change (before anyone sees it), events published to subscribers, and the reconciliation
//! loop.
pub mod state;

use std::{path::Path, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, watch};

pub use state::{MasterConfig, MasterError, NodeAction, State};

use crate::{
    clock::Clock,
    events::MarathonEvent,
    metrics::{MasterMetrics, StateLabel, StatusLabel},
    model::TaskState,
    store::{Snapshot, Store},
};

/// How many events [`Master::recent_events`] keeps.
pub const RECENT_EVENTS: usize = 1000;

/// The master: cheap to clone, shared by the API handlers and the loop.
#[derive(Debug, Clone)]
pub struct Master {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: std::sync::Mutex<State>,
    store: Option<Store>,
    clock: Arc<dyn Clock>,
    events: broadcast::Sender<Arc<MarathonEvent>>,
    /// The latest events, oldest first, for timelines (`/v1/events`).
    recent: std::sync::Mutex<std::collections::VecDeque<Arc<MarathonEvent>>>,
    closing: watch::Sender<bool>,
    metrics: MasterMetrics,
    started_at: DateTime<Utc>,
    cluster_id: String,
}

impl Master {
    /// Open the store in `dir` (`scheduler.redb`) and load what it holds.
    pub fn open(
        dir: &Path,
        cfg: MasterConfig,
        clock: Arc<dyn Clock>,
        metrics: MasterMetrics,
    ) -> Result<Self, MasterError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            MasterError::Store(crate::store::StoreError::Db {
                path: dir.display().to_string(),
                message: e.to_string(),
            })
        })?;
        let store = Store::open(&dir.join("scheduler.redb"))?;
        let cluster_id = cluster_id(dir)?;
        let snapshot = store.load()?;
        tracing::info!(
            apps = snapshot.apps.len(),
            tasks = snapshot.tasks.len(),
            nodes = snapshot.nodes.len(),
            "scheduler state loaded"
        );
        Ok(Self::build(
            snapshot,
            Some(store),
            cfg,
            clock,
            metrics,
            cluster_id,
        ))
    }

    /// A master without a store (tests, benchmarks).
    pub fn in_memory(cfg: MasterConfig, clock: Arc<dyn Clock>) -> Self {
        Self::build(
            Snapshot::default(),
            None,
            cfg,
            clock,
            MasterMetrics::default(),
            crate::model::uuid(),
        )
    }

    fn build(
        snapshot: Snapshot,
        store: Option<Store>,
        cfg: MasterConfig,
        clock: Arc<dyn Clock>,
        metrics: MasterMetrics,
        cluster_id: String,
    ) -> Self {
        let now = clock.now();
        let (events, _) = broadcast::channel(1024);
        let (closing, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                state: std::sync::Mutex::new(State::new(snapshot, cfg, now)),
                store,
                clock,
                events,
                recent: std::sync::Mutex::new(std::collections::VecDeque::with_capacity(
                    RECENT_EVENTS,
                )),
                closing,
                metrics,
                started_at: now,
                cluster_id,
            }),
        }
    }

    /// Now, by the master's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// When the master started.
    pub fn started_at(&self) -> DateTime<Utc> {
        self.inner.started_at
    }

    /// This cluster's ID (Marathon's `frameworkId`), made once per data dir. Agents put it on
    /// their containers and manage only those, so two clusters sharing a Docker engine (and
    /// a node ID) never touch each other's containers.
    pub fn cluster_id(&self) -> &str {
        &self.inner.cluster_id
    }

    /// The metrics.
    pub fn metrics(&self) -> &MasterMetrics {
        &self.inner.metrics
    }

    /// Read the state.
    pub fn read<R>(&self, f: impl FnOnce(&State) -> R) -> R {
        let s = self.inner.state.lock().expect("state lock");
        f(&s)
    }

    /// Change the state; what changed is saved before the lock is released (so no agent or
    /// client sees a task the store does not hold), then events are published.
    pub fn write<R>(
        &self,
        f: impl FnOnce(&mut State, DateTime<Utc>) -> Result<R, MasterError>,
    ) -> Result<R, MasterError> {
        let now = self.now();
        let (result, events) = {
            let mut s = self.inner.state.lock().expect("state lock");
            let result = f(&mut s, now);
            if s.dirty {
                if let Some(store) = &self.inner.store {
                    if let Err(e) = store.save(&s.snapshot()) {
                        tracing::error!(error = %e, "cannot save the scheduler state");
                        return Err(e.into());
                    }
                }
                s.dirty = false;
            }
            (result, std::mem::take(&mut s.events))
        };
        if !events.is_empty() {
            let mut recent = self.inner.recent.lock().expect("recent events lock");
            for e in events {
                if e.job_run().is_some() {
                    let event = e.event_type().trim_start_matches("job_run_").to_string();
                    self.inner
                        .metrics
                        .job_runs
                        .get_or_create(&crate::metrics::JobEventLabel { event })
                        .inc();
                }
                let e = Arc::new(e);
                if recent.len() == RECENT_EVENTS {
                    recent.pop_front();
                }
                recent.push_back(Arc::clone(&e));
                let _ = self.inner.events.send(e);
            }
        }
        result
    }

    /// The latest `limit` events (at most the last 1,000 kept in memory), newest first.
    pub fn recent_events(&self, limit: usize) -> Vec<Arc<MarathonEvent>> {
        let recent = self.inner.recent.lock().expect("recent events lock");
        recent.iter().rev().take(limit).cloned().collect()
    }

    /// Events as they happen.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<MarathonEvent>> {
        self.inner.events.subscribe()
    }

    /// Resolves once [`Master::close_event_streams`] was called (the server is stopping).
    pub fn closing(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.inner.closing.subscribe();
        async move {
            let _ = rx.wait_for(|c| *c).await;
        }
    }

    /// End every `/v2/events` stream, so a graceful HTTP shutdown does not wait for them.
    pub fn close_event_streams(&self) {
        let _ = self.inner.closing.send(true);
    }

    /// One reconciliation step.
    pub fn tick(&self) -> Result<(), MasterError> {
        let started = std::time::Instant::now();
        let launched_before = self.read(|s| s.tasks.len());
        self.write(|s, now| {
            s.tick(now);
            s.jobs_tick(now);
            Ok(())
        })?;
        let m = &self.inner.metrics;
        m.reconcile_seconds.observe(started.elapsed().as_secs_f64());
        self.read(|s| {
            m.apps.set(s.apps.len() as i64);
            m.deployments.set(s.deployments.len() as i64);
            m.jobs.set(s.jobs.jobs.len() as i64);
            if s.tasks.len() > launched_before {
                m.tasks_launched
                    .inc_by((s.tasks.len() - launched_before) as u64);
            }
            for st in [
                TaskState::Staging,
                TaskState::Starting,
                TaskState::Running,
                TaskState::Killing,
                TaskState::Unreachable,
            ] {
                let n = s.tasks.values().filter(|t| t.state == st).count();
                m.tasks
                    .get_or_create(&StateLabel {
                        state: st.name().to_string(),
                    })
                    .set(n as i64);
            }
            for status in ["ACTIVE", "CORDONED", "DRAINING", "UNREACHABLE"] {
                let n = s
                    .nodes
                    .values()
                    .filter(|n| !n.removed && n.status() == status)
                    .count();
                m.nodes
                    .get_or_create(&StatusLabel {
                        status: status.to_string(),
                    })
                    .set(n as i64);
            }
        });
        Ok(())
    }

    /// Reconcile every `interval` until `stop` turns true.
    pub async fn run(self, interval: Duration, mut stop: watch::Receiver<bool>) {
        let mut every = tokio::time::interval(interval);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {
                    if let Err(e) = self.tick() {
                        tracing::error!(error = %e, "reconciliation failed");
                    }
                }
                _ = stop.changed() => {
                    if *stop.borrow() {
                        return;
                    }
                }
            }
        }
    }
}

/// The cluster ID kept in `dir/cluster-id`, made on first use.
fn cluster_id(dir: &Path) -> Result<String, MasterError> {
    let path = dir.join("cluster-id");
    let err = |e: std::io::Error| {
        MasterError::Store(crate::store::StoreError::Db {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    };
    if path.exists() {
        let s = std::fs::read_to_string(&path).map_err(err)?;
        if !s.trim().is_empty() {
            return Ok(s.trim().to_string());
        }
    }
    let id = crate::model::uuid();
    std::fs::write(&path, format!("{id}\n")).map_err(err)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;
    use crate::{
        clock::ManualClock,
        model::{AgentReport, Resources, TaskReport},
    };

    fn report(tasks: Vec<TaskReport>) -> AgentReport {
        AgentReport {
            node_id: "n1".into(),
            hostname: "h".into(),
            resources: Resources {
                cpus: 2.0,
                mem: 1024.0,
                disk: 0.0,
            },
            port_range: (31000, 31010),
            attributes: BTreeMap::new(),
            tasks,
        }
    }

    /// Backoff and heartbeat timeouts run on the injected clock: seconds pass in no time.
    #[test]
    fn backoff_and_heartbeat_timeout_follow_the_clock() {
        let clock = ManualClock::new("2026-01-01T00:00:00Z".parse().unwrap());
        let cfg = MasterConfig {
            heartbeat_timeout: Duration::from_secs(15),
            ..MasterConfig::default()
        };
        let m = Master::in_memory(cfg, Arc::new(clock.clone()));
        let mut events = m.subscribe();
        m.write(|s, now| Ok(s.heartbeat(report(vec![]), true, now)))
            .unwrap();
        m.write(|s, now| {
            let def =
                crate::validate::parse_app(json!({"id": "/a", "cmd": "x", "cpus": 0.5, "mem": 64}))
                    .unwrap();
            s.create_app(def, now)
        })
        .unwrap();
        m.tick().unwrap();
        let spec = m.read(|s| s.tasks.values().next().unwrap().spec.clone());
        let failed = TaskReport {
            task_id: spec.task_id.clone(),
            app_id: spec.app_id.clone(),
            state: TaskState::Failed,
            container_id: None,
            message: Some("exit 1".into()),
            started_at: None,
            healthy: None,
            consecutive_failures: 0,
            last_success: None,
            last_failure: None,
            last_failure_cause: None,
        };
        m.write(|s, now| Ok(s.heartbeat(report(vec![failed]), false, now)))
            .unwrap();
        clock.advance(Duration::from_millis(900));
        m.tick().unwrap();
        assert_eq!(m.read(|s| s.tasks.len()), 0, "still within the 1 s backoff");
        clock.advance(Duration::from_millis(200));
        m.tick().unwrap();
        assert_eq!(m.read(|s| s.tasks.len()), 1, "relaunched after the backoff");
        clock.advance(Duration::from_secs(16));
        m.tick().unwrap();
        assert!(m.read(|s| s.nodes["n1"].unreachable));
        let mut kinds = Vec::new();
        while let Ok(e) = events.try_recv() {
            kinds.push(e.event_type().to_string());
        }
        for k in [
            "api_post_event",
            "deployment_info",
            "status_update_event",
            "node_unreachable_event",
        ] {
            assert!(kinds.iter().any(|x| x == k), "{k} not in {kinds:?}");
        }
    }
}
