//! Which containers to follow: list them, then follow Docker's events; reconnect with
//! backoff when the daemon goes away and pick up where we left off (followers resume from
//! their checkpoints, so a daemon restart loses nothing).
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock},
    time::Duration,
};

use bollard::{
    query_parameters::{EventsOptionsBuilder, ListContainersOptionsBuilder, StatsOptionsBuilder},
    Docker,
};
use drover_schema::{MetricRecord, Source};
use futures::StreamExt;
use tokio::task::JoinHandle;

use crate::{
    logs::follow::{follow, ContainerInfo, FollowCtx, FollowEnd},
    stats,
    tags::{self, AppIdSource},
};

/// A container being followed.
#[derive(Debug)]
struct Tracked {
    source: Arc<RwLock<Source>>,
    started_again: Arc<std::sync::atomic::AtomicBool>,
    cpu_limit: Option<f64>,
    handle: JoinHandle<FollowEnd>,
}

/// The set of followed containers, shared with the stats sampler.
#[derive(Debug, Clone, Default)]
pub struct Tracker(Arc<Mutex<HashMap<String, Tracked>>>);

impl Tracker {
    /// Containers whose follower still runs: (id, tags, cpu limit).
    fn running(&self) -> Vec<(String, Source, Option<f64>)> {
        self.0
            .lock()
            .expect("tracker lock")
            .iter()
            .filter(|(_, t)| !t.handle.is_finished())
            .map(|(id, t)| {
                (
                    id.clone(),
                    t.source.read().expect("source lock").clone(),
                    t.cpu_limit,
                )
            })
            .collect()
    }

    fn count(&self) -> usize {
        self.0
            .lock()
            .expect("tracker lock")
            .values()
            .filter(|t| !t.handle.is_finished())
            .count()
    }
}

/// Settings of discovery.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// Host name put on every record.
    pub host: String,
    /// Where to find the app ID, in order.
    pub app_id_order: Vec<AppIdSource>,
    /// Only containers with all these labels (`KEY` or `KEY=VALUE`); empty: all.
    pub include_labels: Vec<String>,
    /// At the first listing, stopped containers created at or after this (Unix seconds) are
    /// followed too: they may have printed while no collector ran. The previous run's last
    /// checkpoint save, or this process's start on a first run (a container that starts and
    /// exits while the collector waits for Kafka).
    pub created_since: i64,
}

impl DiscoveryConfig {
    fn filters(&self, kind: Option<&str>) -> HashMap<String, Vec<String>> {
        let mut f = HashMap::new();
        if let Some(k) = kind {
            f.insert("type".to_string(), vec![k.to_string()]);
        }
        if !self.include_labels.is_empty() {
            f.insert("label".to_string(), self.include_labels.clone());
        }
        f
    }
}

/// Follow every container of the engine until shutdown.
pub async fn run(ctx: FollowCtx, cfg: DiscoveryConfig, tracker: Tracker) {
    let mut shutdown = ctx.shutdown.clone();
    let mut backoff = Duration::from_millis(500);
    let mut first = true;
    let mut first_sync = true;
    loop {
        if !first {
            ctx.metrics.reconnects.inc();
            tokio::select! {
                _ = shutdown.changed() => break,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
        first = false;
        if let Err(e) = ctx.docker.ping().await {
            tracing::warn!(error = %e, retry_in = ?backoff, "docker engine unreachable");
            continue;
        }
        let filters = cfg.filters(Some("container"));
        let mut events = ctx.docker.events(Some(
            EventsOptionsBuilder::default().filters(&filters).build(),
        ));
        // Later listings (after a Docker reconnect) only need what was created since the
        // last save; the first also covers the time no collector ran.
        let since = if first_sync {
            cfg.created_since
        } else {
            ctx.sink.saved_at()
        };
        if let Err(e) = sync_all(&ctx, &cfg, &tracker, since).await {
            tracing::warn!(error = %e, "cannot list containers");
            continue;
        }
        first_sync = false;
        tracing::info!(containers = tracker.count(), "following docker events");
        backoff = Duration::from_millis(500);
        let mut reap = tokio::time::interval(Duration::from_secs(2));
        loop {
            tokio::select! {
                _ = shutdown.changed() => return wait_followers(&tracker).await,
                ev = events.next() => match ev {
                    Some(Ok(ev)) => {
                        let id = ev.actor.as_ref().and_then(|a| a.id.clone()).unwrap_or_default();
                        tracing::debug!(container = %id, action = ?ev.action, "docker event");
                        match ev.action.as_deref() {
                            Some("start") | Some("restart") => ensure(&ctx, &cfg, &tracker, &id).await,
                            Some("rename") => rename(&ctx, &tracker, &id).await,
                            Some("destroy") => forget(&ctx, &tracker, &id),
                            _ => {}
                        }
                    }
                    Some(Err(e)) => {
                        ctx.metrics.errors("docker_events").inc();
                        tracing::warn!(error = %e, "docker event stream failed; reconnecting");
                        break;
                    }
                    None => {
                        tracing::warn!("docker event stream ended; reconnecting");
                        break;
                    }
                },
                _ = reap.tick() => {
                    reap_finished(&ctx, &cfg, &tracker).await;
                    ctx.metrics.containers.set(tracker.count() as i64);
                }
            }
        }
    }
    wait_followers(&tracker).await;
}

/// Drop finished followers; start a new one for a container that runs again (its start
/// event may have arrived while the old follower was finishing).
async fn reap_finished(ctx: &FollowCtx, cfg: &DiscoveryConfig, tracker: &Tracker) {
    let finished: Vec<(String, bool)> = tracker
        .0
        .lock()
        .expect("tracker lock")
        .iter()
        .filter(|(_, t)| t.handle.is_finished())
        .map(|(id, t)| {
            (
                id.clone(),
                t.started_again.load(std::sync::atomic::Ordering::SeqCst),
            )
        })
        .collect();
    for (id, started_again) in finished {
        let running = matches!(
            ctx.docker.inspect_container(&id, None).await,
            Ok(i) if i.state.as_ref().and_then(|s| s.running) == Some(true)
        );
        if running || started_again {
            ensure(ctx, cfg, tracker, &id).await;
        } else {
            tracker.0.lock().expect("tracker lock").remove(&id);
        }
    }
}

async fn wait_followers(tracker: &Tracker) {
    let handles: Vec<JoinHandle<FollowEnd>> = tracker
        .0
        .lock()
        .expect("tracker lock")
        .drain()
        .map(|(_, t)| t.handle)
        .collect();
    for h in handles {
        let _ = h.await;
    }
}

/// Start following every running container, and the stopped ones that may hold lines not
/// yet delivered (known from the checkpoints, or finished after the last save).
async fn sync_all(
    ctx: &FollowCtx,
    cfg: &DiscoveryConfig,
    tracker: &Tracker,
    since: i64,
) -> Result<(), bollard::errors::Error> {
    let list = ctx
        .docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&cfg.filters(None))
                .build(),
        ))
        .await?;
    for c in list {
        let Some(id) = c.id else { continue };
        let running = c.state.as_ref().map(|s| s.to_string()) == Some("running".to_string());
        let maybe_unread = ctx.sink.knows(&id) || (since > 0 && c.created.unwrap_or(0) >= since);
        if running || maybe_unread {
            ensure(ctx, cfg, tracker, &id).await;
        }
    }
    Ok(())
}

async fn ensure(ctx: &FollowCtx, cfg: &DiscoveryConfig, tracker: &Tracker, id: &str) {
    if id.is_empty() {
        return;
    }
    if let Some(t) = tracker.0.lock().expect("tracker lock").get(id) {
        // Flag first, then look: a follower that is still finishing sees the flag and goes
        // on; one that already stopped is replaced below (or by the reaper).
        t.started_again
            .store(true, std::sync::atomic::Ordering::SeqCst);
        if !t.handle.is_finished() {
            return;
        }
    }
    let inspect = match ctx.docker.inspect_container(id, None).await {
        Ok(i) => i,
        Err(e) => {
            tracing::debug!(container = id, error = %e, "cannot inspect container");
            return;
        }
    };
    let source = tags::source_from_inspect(&inspect, &cfg.host, &cfg.app_id_order);
    let multiline = match tags::multiline_rule(&inspect) {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(container = %source.container_name, error = %e, "ignoring the drover.multiline label");
            None
        }
    };
    let started_again = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let info = ContainerInfo {
        started_again: started_again.clone(),
        id: id.into(),
        source: Arc::new(RwLock::new(source.clone())),
        tty: tags::is_tty(&inspect),
        multiline,
    };
    tracing::info!(container = %source.container_name, app = %source.app, "collecting");
    let tracked = Tracked {
        started_again,
        source: info.source.clone(),
        cpu_limit: tags::cpu_limit(&inspect),
        handle: tokio::spawn(follow(ctx.clone(), info)),
    };
    tracker
        .0
        .lock()
        .expect("tracker lock")
        .insert(id.to_string(), tracked);
    ctx.metrics.containers.set(tracker.count() as i64);
}

async fn rename(ctx: &FollowCtx, tracker: &Tracker, id: &str) {
    let Ok(inspect) = ctx.docker.inspect_container(id, None).await else {
        return;
    };
    let name = inspect
        .name
        .as_deref()
        .unwrap_or_default()
        .trim_start_matches('/')
        .to_string();
    if let Some(t) = tracker.0.lock().expect("tracker lock").get(id) {
        let mut s = t.source.write().expect("source lock");
        if s.app == s.container_name {
            s.app = name.clone();
        }
        s.container_name = name;
    }
}

fn forget(ctx: &FollowCtx, tracker: &Tracker, id: &str) {
    let removed = tracker.0.lock().expect("tracker lock").remove(id);
    if let Some(t) = removed {
        let name = t.source.read().expect("source lock").container_name.clone();
        ctx.metrics.remove(&name);
    }
    if ctx.sink.pending(id) == 0 {
        ctx.sink.forget(id);
    }
}

/// Sample every followed container's stats each interval and send them.
pub async fn sample_stats(ctx: FollowCtx, docker: Docker, tracker: Tracker, interval: Duration) {
    let mut shutdown = ctx.shutdown.clone();
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tick.tick() => {}
        }
        let containers = tracker.running();
        futures::stream::iter(containers)
            .for_each_concurrent(16, |(id, source, cpu_limit)| {
                let docker = docker.clone();
                let ctx = ctx.clone();
                async move {
                    let opts = StatsOptionsBuilder::default().stream(false).one_shot(false).build();
                    match docker.stats(&id, Some(opts)).next().await {
                        Some(Ok(s)) => {
                            if let Some(sample) = stats::compute(&s, &source, cpu_limit) {
                                ctx.sink.send_metric(&MetricRecord::Container(sample)).await;
                            }
                        }
                        Some(Err(e)) => {
                            ctx.metrics.errors("stats").inc();
                            tracing::debug!(container = %source.container_name, error = %e, "stats failed");
                        }
                        None => {}
                    }
                }
            })
            .await;
    }
}
