//! Who reads and changes the apps: one small trait, [`Scaler`], implemented over the
//! scheduler's typed client ([`SchedulerScaler`]: Marathon's `/v2` API) and by a fake for
//! tests ([`FakeScaler`]).
//!
//! - read: the app (`GET /v2/apps/{id}`), or the service's child apps (`GET /v2/apps`,
//!   those directly under the group, in group-number order), with instances asked for,
//!   instances ready (healthy when the app has health checks, else running), and whether a
//!   deployment other than a plain scale is in progress (`GET /v2/deployments`): a restart
//!   or an update pauses the policy; a scale — the autoscaler's own, or an operator's —
//!   does not;
//! - scale: `PUT /v2/apps/{id}?force=true` with `{"instances": n}` (a scale replaces a
//!   scale in progress);
//! - add a group: the template app's definition under the new ID (`POST /v2/apps`; Marathon
//!   creates the group path), so it claims the same host and path and the gateway routes it
//!   as one more instance group once its tasks are healthy;
//! - remove a group: first scaled to 0 (the gateway drops each backend as its task stops
//!   and the scheduler kills them gracefully), then deleted (`DELETE /v2/apps/{id}`).
//!
//! A group just added runs a StartApplication deployment until its tasks run: the service's
//! policy waits for it (no decision on a half-started service).
use std::{collections::BTreeMap, sync::Mutex};

use drover_scheduler::{
    client::{Client, ClientError},
    model::{DeploymentPlan, MarathonApp},
};
use futures::future::BoxFuture;
use serde_json::json;

use crate::{
    plan::{group_number, GroupObs},
    policy::Target,
};

/// A target as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetState {
    /// Its groups in order (an app: itself).
    pub groups: Vec<GroupObs>,
    /// A deployment other than a scale is in progress.
    pub deploying: bool,
}

/// A read or a change that failed.
#[derive(Debug, thiserror::Error)]
pub enum ScaleError {
    /// The scheduler refused (no resources, a constraint, a bad definition): its reason.
    #[error("the scheduler refused: {reason}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// What it said.
        reason: String,
    },
    /// The scheduler did not answer, or answered something else.
    #[error("cannot talk to the scheduler")]
    Unreachable(#[source] ClientError),
    /// The template to copy a new group from is not there.
    #[error(
        "the template app {0} is gone: set template: in the policy to one of the service's apps"
    )]
    NoTemplate(String),
}

impl From<ClientError> for ScaleError {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Api { status, .. } if (400..500).contains(&status) || status == 503 => {
                ScaleError::Refused {
                    status,
                    reason: e.to_string(),
                }
            }
            e => ScaleError::Unreachable(e),
        }
    }
}

/// Reads targets and changes their instances and groups.
pub trait Scaler: Send + Sync + std::fmt::Debug {
    /// The target now; None when the app (or every app of the service) is gone.
    fn read<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Option<TargetState>, ScaleError>>;
    /// Sets an app's instances.
    fn scale<'a>(&'a self, app: &'a str, instances: u32) -> BoxFuture<'a, Result<(), ScaleError>>;
    /// Creates the group `app` from `template` with `instances`.
    fn add_group<'a>(
        &'a self,
        template: &'a str,
        app: &'a str,
        instances: u32,
    ) -> BoxFuture<'a, Result<(), ScaleError>>;
    /// Drains and removes the group `app`.
    fn remove_group<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<(), ScaleError>>;
}

// === over the scheduler's client ===

/// [`Scaler`] over Drover's (or Marathon's) `/v2` API.
#[derive(Debug, Clone)]
pub struct SchedulerScaler {
    client: Client,
}

impl SchedulerScaler {
    /// Over `client`.
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

fn group_of(app: &MarathonApp) -> GroupObs {
    let d = &app.definition;
    let ready = if d.health_checks.is_empty() {
        app.tasks_running
    } else {
        app.tasks_healthy
    };
    GroupObs {
        app: d.id.clone(),
        instances: d.instances.max(0) as u32,
        ready: ready as u32,
    }
}

/// The child apps of `service` (directly under it), in group-number order.
pub fn children<'a>(service: &str, apps: &'a [MarathonApp]) -> Vec<&'a MarathonApp> {
    let prefix = format!("{}/", service.trim_end_matches('/'));
    let mut out: Vec<&MarathonApp> = apps
        .iter()
        .filter(|a| {
            a.definition
                .id
                .strip_prefix(&prefix)
                .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
        })
        .collect();
    out.sort_by_key(|a| {
        (
            group_number(&a.definition.id).unwrap_or(u32::MAX),
            a.definition.id.clone(),
        )
    });
    out
}

/// Whether a deployment other than a scale touches one of `apps`.
pub fn deploying(plans: &[DeploymentPlan], apps: &[String]) -> bool {
    plans.iter().any(|p| {
        p.affected_apps.iter().any(|a| apps.contains(a))
            && p.steps
                .iter()
                .flat_map(|s| &s.actions)
                .any(|a| a.action != "ScaleApplication")
    })
}

impl SchedulerScaler {
    async fn deployments(&self) -> Result<Vec<DeploymentPlan>, ScaleError> {
        let v = self
            .client
            .ok(reqwest::Method::GET, "/v2/deployments", None)
            .await?;
        // an answer we cannot read must not pause every policy: none in progress
        Ok(serde_json::from_value(v).unwrap_or_default())
    }
}

impl Scaler for SchedulerScaler {
    fn read<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Option<TargetState>, ScaleError>> {
        Box::pin(async move {
            let groups: Vec<GroupObs> = match target {
                Target::App(id) => match self.client.app(id).await? {
                    Some(a) => vec![group_of(&a)],
                    None => return Ok(None),
                },
                Target::Service(id) => {
                    let apps = self.client.apps().await?;
                    children(id, &apps).into_iter().map(group_of).collect()
                }
            };
            if groups.is_empty() {
                return Ok(None);
            }
            let ids: Vec<String> = groups.iter().map(|g| g.app.clone()).collect();
            let deploying = deploying(&self.deployments().await?, &ids);
            Ok(Some(TargetState { groups, deploying }))
        })
    }

    fn scale<'a>(&'a self, app: &'a str, instances: u32) -> BoxFuture<'a, Result<(), ScaleError>> {
        Box::pin(async move {
            // force: a scale replaces a scale in progress (the app is locked otherwise);
            // other deployments pause the policy before it gets here
            let path = format!("/v2/apps/{}?force=true", app.trim_matches('/'));
            self.client
                .ok(
                    reqwest::Method::PUT,
                    &path,
                    Some(&json!({ "instances": instances })),
                )
                .await?;
            Ok(())
        })
    }

    fn add_group<'a>(
        &'a self,
        template: &'a str,
        app: &'a str,
        instances: u32,
    ) -> BoxFuture<'a, Result<(), ScaleError>> {
        Box::pin(async move {
            let t = self
                .client
                .app(template)
                .await?
                .ok_or_else(|| ScaleError::NoTemplate(template.to_string()))?;
            let mut def = serde_json::to_value(&t.definition).map_err(|e| ScaleError::Refused {
                status: 0,
                reason: format!("the template {template} does not encode: {e}"),
            })?;
            def["id"] = json!(app);
            def["instances"] = json!(instances);
            self.client
                .ok(reqwest::Method::POST, "/v2/apps", Some(&def))
                .await?;
            Ok(())
        })
    }

    fn remove_group<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<(), ScaleError>> {
        Box::pin(async move {
            self.scale(app, 0).await?;
            let path = format!("/v2/apps/{}?force=true", app.trim_matches('/'));
            self.client.ok(reqwest::Method::DELETE, &path, None).await?;
            Ok(())
        })
    }
}

// === a fake for tests ===

/// Apps kept in memory; changes are recorded; a refusal can be set.
#[derive(Debug, Default)]
pub struct FakeScaler {
    inner: Mutex<FakeState>,
}

#[derive(Debug, Default)]
struct FakeState {
    apps: BTreeMap<String, GroupObs>,
    deploying: bool,
    refuse: Option<String>,
    calls: Vec<String>,
}

impl FakeScaler {
    fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        f(&mut self.inner.lock().expect("fake scaler lock"))
    }

    /// Adds or replaces an app (ready = instances).
    pub fn put_app(&self, id: &str, instances: u32) {
        self.with(|s| {
            s.apps.insert(
                id.into(),
                GroupObs {
                    app: id.into(),
                    instances,
                    ready: instances,
                },
            )
        });
    }

    /// Removes an app.
    pub fn delete_app(&self, id: &str) {
        self.with(|s| s.apps.remove(id));
    }

    /// Sets whether a deployment is in progress.
    pub fn set_deploying(&self, on: bool) {
        self.with(|s| s.deploying = on);
    }

    /// Refuses every change with `reason` (None: accept).
    pub fn refuse(&self, reason: Option<&str>) {
        self.with(|s| s.refuse = reason.map(str::to_string));
    }

    /// The changes asked for (`scale /a 3`, `add /s/g2 2 from /s/g1`, `remove /s/g2`).
    pub fn calls(&self) -> Vec<String> {
        self.with(|s| s.calls.clone())
    }

    /// An app's instances.
    pub fn instances(&self, id: &str) -> Option<u32> {
        self.with(|s| s.apps.get(id).map(|g| g.instances))
    }

    fn change(&self, call: String, f: impl FnOnce(&mut FakeState)) -> Result<(), ScaleError> {
        self.with(|s| {
            s.calls.push(call);
            if let Some(reason) = &s.refuse {
                return Err(ScaleError::Refused {
                    status: 409,
                    reason: reason.clone(),
                });
            }
            f(s);
            Ok(())
        })
    }
}

impl Scaler for FakeScaler {
    fn read<'a>(
        &'a self,
        target: &'a Target,
    ) -> BoxFuture<'a, Result<Option<TargetState>, ScaleError>> {
        let r = self.with(|s| {
            let groups: Vec<GroupObs> = match target {
                Target::App(id) => s.apps.get(id).cloned().into_iter().collect(),
                Target::Service(id) => {
                    let prefix = format!("{id}/");
                    let mut g: Vec<GroupObs> = s
                        .apps
                        .values()
                        .filter(|a| a.app.starts_with(&prefix))
                        .cloned()
                        .collect();
                    g.sort_by_key(|a| group_number(&a.app).unwrap_or(u32::MAX));
                    g
                }
            };
            (!groups.is_empty()).then_some(TargetState {
                groups,
                deploying: s.deploying,
            })
        });
        Box::pin(async move { Ok(r) })
    }

    fn scale<'a>(&'a self, app: &'a str, instances: u32) -> BoxFuture<'a, Result<(), ScaleError>> {
        let r = self.change(format!("scale {app} {instances}"), |s| {
            if let Some(g) = s.apps.get_mut(app) {
                g.instances = instances;
                g.ready = instances;
            }
        });
        Box::pin(async move { r })
    }

    fn add_group<'a>(
        &'a self,
        template: &'a str,
        app: &'a str,
        instances: u32,
    ) -> BoxFuture<'a, Result<(), ScaleError>> {
        let r = self.change(format!("add {app} {instances} from {template}"), |s| {
            s.apps.insert(
                app.into(),
                GroupObs {
                    app: app.into(),
                    instances,
                    ready: instances,
                },
            );
        });
        Box::pin(async move { r })
    }

    fn remove_group<'a>(&'a self, app: &'a str) -> BoxFuture<'a, Result<(), ScaleError>> {
        let r = self.change(format!("remove {app}"), |s| {
            s.apps.remove(app);
        });
        Box::pin(async move { r })
    }
}

#[cfg(test)]
mod tests {
    use drover_scheduler::model::{DeploymentAction, DeploymentStep};

    use super::*;

    fn plan(app: &str, action: &str) -> DeploymentPlan {
        DeploymentPlan {
            id: "d".into(),
            version: chrono::DateTime::from_timestamp(0, 0).unwrap_or_default(),
            affected_apps: vec![app.into()],
            affected_pods: vec![],
            steps: vec![DeploymentStep {
                actions: vec![DeploymentAction {
                    action: action.into(),
                    app: app.into(),
                }],
            }],
            current_actions: vec![],
            current_step: 1,
            total_steps: 1,
        }
    }

    /// The real master's API in process, on a local port, with no agent: apps are created,
    /// scaled and removed; their tasks never start.
    async fn master() -> (SchedulerScaler, tokio::task::JoinHandle<()>) {
        use drover_scheduler::{
            api::router,
            clock::SystemClock,
            master::{Master, MasterConfig},
        };
        let m = Master::in_memory(MasterConfig::default(), std::sync::Arc::new(SystemClock));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let h = tokio::spawn(async move {
            let _ = axum::serve(listener, router(m)).await;
        });
        let c = Client::new(&format!("http://{addr}")).expect("client");
        (SchedulerScaler::new(c), h)
    }

    #[tokio::test]
    async fn over_the_real_api_a_service_is_read_scaled_grown_and_shrunk() {
        let (s, h) = master().await;
        let svc = Target::Service("/shop/api".into());
        assert_eq!(s.read(&svc).await.expect("reads"), None, "no apps yet");
        for body in [
            json!({"id": "/shop/api/g1", "cmd": "sleep 1000", "instances": 1,
                "labels": {"drover.gateway.host": "api.example"}}),
            json!({"id": "/shop/other/x", "cmd": "sleep 1000"}),
        ] {
            s.client
                .ok(reqwest::Method::POST, "/v2/apps", Some(&body))
                .await
                .expect("created");
        }
        let st = s.read(&svc).await.expect("reads").expect("there");
        assert_eq!(st.groups.len(), 1);
        assert_eq!((st.groups[0].instances, st.groups[0].ready), (1, 0));
        assert!(st.deploying, "its StartApplication runs until a task does");
        // scaling replaces the deployment in progress (force)
        s.scale("/shop/api/g1", 3).await.expect("scaled");
        let st = s.read(&svc).await.expect("reads").expect("there");
        assert_eq!(st.groups[0].instances, 3);
        // a new group is a copy of the template under its own ID
        s.add_group("/shop/api/g1", "/shop/api/g2", 2)
            .await
            .expect("added");
        let g2 = s
            .client
            .app("/shop/api/g2")
            .await
            .expect("reads")
            .expect("there");
        assert_eq!(g2.definition.instances, 2);
        assert_eq!(g2.definition.cmd.as_deref(), Some("sleep 1000"));
        assert_eq!(
            g2.definition
                .labels
                .get("drover.gateway.host")
                .map(String::as_str),
            Some("api.example"),
            "it claims the same route"
        );
        let st = s.read(&svc).await.expect("reads").expect("there");
        let ids: Vec<&str> = st.groups.iter().map(|g| g.app.as_str()).collect();
        assert_eq!(ids, ["/shop/api/g1", "/shop/api/g2"]);
        // a missing template is said so
        let e = s
            .add_group("/shop/api/nope", "/shop/api/g3", 1)
            .await
            .expect_err("no template");
        assert!(matches!(e, ScaleError::NoTemplate(_)), "{e}");
        // the last group drained and removed
        s.remove_group("/shop/api/g2").await.expect("removed");
        let st = s.read(&svc).await.expect("reads").expect("there");
        assert_eq!(st.groups.len(), 1);
        // an app target, and one that is gone
        let app = Target::App("/shop/other/x".into());
        assert_eq!(
            s.read(&app)
                .await
                .expect("reads")
                .expect("there")
                .groups
                .len(),
            1
        );
        assert!(s
            .read(&Target::App("/gone".into()))
            .await
            .expect("reads")
            .is_none());
        // a refusal carries the scheduler's reason (a PUT of a missing app would create it:
        // refused here as an incomplete definition; the loop reads before it scales)
        let e = s.scale("/gone", 2).await.expect_err("refused");
        assert!(
            matches!(e, ScaleError::Refused { status: 422, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("not valid"), "{e}");
        h.abort();
    }

    #[test]
    fn a_scale_deployment_does_not_pause_a_restart_does() {
        let apps = vec!["/s/g1".to_string()];
        assert!(!deploying(&[plan("/s/g1", "ScaleApplication")], &apps));
        assert!(deploying(&[plan("/s/g1", "RestartApplication")], &apps));
        assert!(!deploying(&[plan("/other", "RestartApplication")], &apps));
    }

    #[test]
    fn refusals_become_refused_and_the_rest_unreachable() {
        let e: ScaleError = ClientError::Api {
            status: 409,
            body: json!({"message": "no node has 4 cpus free"}),
        }
        .into();
        assert!(
            matches!(e, ScaleError::Refused { status: 409, .. }),
            "{e:?}"
        );
        assert!(e.to_string().contains("no node has 4 cpus"), "{e}");
        let e: ScaleError = ClientError::Api {
            status: 500,
            body: json!("boom"),
        }
        .into();
        assert!(matches!(e, ScaleError::Unreachable(_)));
    }
}
