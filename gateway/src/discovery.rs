//! Following the scheduler: the master's event stream says *that* something changed, a read
//! of every app with its tasks says *what* is true now (level-triggered: a missed or
//! reordered event cannot leave a stale route), and a periodic full resync catches anything
//! else. Each read builds a new route table, swapped in whole.
use std::{sync::Arc, time::Duration};

use drover_scheduler::{
    client::{Client, ClientEvent},
    events::EventKind,
    model::MarathonApp,
};
use futures::StreamExt;
use tokio::{sync::watch, time::Instant};

use crate::{
    table::{build, AppView},
    Shared,
};

/// Events that arrive this close together are applied with one read.
const DEBOUNCE: Duration = Duration::from_millis(25);

/// Build a table from `apps` and swap it in.
pub fn apply(shared: &Shared, apps: &[AppView]) {
    let prev = shared.table.load_full();
    let table = {
        let mut reg = shared.registry.lock().unwrap_or_else(|e| e.into_inner());
        build(
            apps,
            &prev,
            &mut reg,
            &shared.cfg.groups,
            Instant::now(),
            shared.clock.now(),
        )
    };
    // Say what changed about refusals (a new bad label is an operator's business).
    for r in &table.refused {
        if !prev.refused.contains(r) {
            tracing::warn!(app = %r.app, host = ?r.host, path = ?r.path, reason = %r.reason, "route refused");
        }
    }
    let backends: usize = table
        .routes
        .iter()
        .flat_map(|r| r.groups.iter())
        .map(|g| g.backends.len())
        .sum();
    let m = &shared.metrics;
    m.routes.set(table.routes.len() as i64);
    m.refused.set(table.refused.len() as i64);
    m.backends.set(backends as i64);
    m.table_updates.inc();
    tracing::debug!(
        routes = table.routes.len(),
        refused = table.refused.len(),
        backends,
        "route table swapped"
    );
    shared.table.store(Arc::new(table));
}

fn apply_marathon(shared: &Shared, apps: &[MarathonApp]) {
    let views: Vec<AppView> = apps.iter().map(AppView::from_marathon).collect();
    apply(shared, &views);
    let mut s = shared.source.lock().unwrap_or_else(|e| e.into_inner());
    s.last_resync = Some(shared.clock.now());
    s.last_error = None;
}

fn set_status(shared: &Shared, f: impl FnOnce(&mut crate::SourceStatus)) {
    f(&mut shared.source.lock().unwrap_or_else(|e| e.into_inner()));
}

/// Follow `master` until `stop` turns true.
pub async fn follow(shared: Arc<Shared>, master: Client, mut stop: watch::Receiver<bool>) {
    set_status(&shared, |s| s.master = Some(master.base().to_string()));
    let mut events = master.events();
    let mut resync = tokio::time::interval(shared.cfg.resync_interval);
    resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    resync.tick().await; // the stream starts with a resync
    let mut dirty: Option<Instant> = None;
    loop {
        let refresh_at = dirty.map(|t| t + DEBOUNCE);
        tokio::select! {
            _ = crate::server::stopped(&mut stop) => return,
            item = events.next() => match item {
                Some(ClientEvent::Resync(apps)) => {
                    set_status(&shared, |s| s.connected = true);
                    apply_marathon(&shared, &apps);
                    dirty = None;
                }
                Some(ClientEvent::Event(e)) => {
                    if !matches!(e.kind, EventKind::StreamAttached { .. }) && dirty.is_none() {
                        dirty = Some(Instant::now());
                    }
                }
                Some(ClientEvent::Disconnected { error, retry_in }) => {
                    // Keep serving the last table: the apps still run.
                    tracing::warn!(master = %master.base(), error = %error, retry_in_ms = retry_in.as_millis() as u64, "lost the master's event stream; keeping the current routes");
                    set_status(&shared, |s| {
                        s.connected = false;
                        s.last_error = Some(error);
                    });
                }
                None => return,
            },
            _ = sleep_until(refresh_at) => {
                dirty = None;
                read(&shared, &master).await;
            }
            _ = resync.tick() => read(&shared, &master).await,
        }
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Read every app with its tasks and apply them; on failure keep the table.
async fn read(shared: &Shared, master: &Client) {
    match master.apps().await {
        Ok(apps) => apply_marathon(shared, &apps),
        Err(e) => {
            let msg = error_chain(&e);
            tracing::warn!(master = %master.base(), error = %msg, "cannot read the apps; keeping the current routes");
            set_status(shared, |s| s.last_error = Some(msg));
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(&format!(": {c}"));
        cause = c.source();
    }
    s
}
