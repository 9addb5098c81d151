//! The API's changes: apps created, updated, restarted and removed, deployments, groups.
use chrono::{DateTime, Utc};

use super::*;

impl State {
    /// The biggest node's resources (None without nodes).
    pub fn largest_node(&self) -> Option<Resources> {
        self.nodes
            .values()
            .filter(|n| !n.removed)
            .map(|n| n.resources)
            .reduce(|a, b| Resources {
                cpus: a.cpus.max(b.cpus),
                mem: a.mem.max(b.mem),
                disk: a.disk.max(b.disk),
            })
    }

    fn check(&self, def: &AppDefinition) -> Result<(), MasterError> {
        let errs = validate_app(def, self.largest_node());
        if errs.is_empty() {
            Ok(())
        } else {
            Err(MasterError::Invalid(errs))
        }
    }

    fn deployment_of(&self, app_id: &str) -> Option<&Deployment> {
        self.deployments.values().find(|d| d.app_id == app_id)
    }

    fn lock(&mut self, app_id: &str, force: bool, now: DateTime<Utc>) -> Result<(), MasterError> {
        if let Some(d) = self.deployment_of(app_id) {
            if !force {
                return Err(MasterError::Locked(d.id.clone()));
            }
            let id = d.id.clone();
            self.deployments.remove(&id);
            self.event(
                now,
                EventKind::DeploymentFailed {
                    plan: FailedPlan::Id { id: id.clone() },
                    id,
                    reason: "superseded by a forced change".into(),
                },
            );
        }
        Ok(())
    }

    fn start_deployment(
        &mut self,
        app_id: &str,
        action: &str,
        version: DateTime<Utc>,
        previous: Option<App>,
        now: DateTime<Utc>,
    ) -> Deployment {
        let d = Deployment {
            id: uuid(),
            app_id: app_id.to_string(),
            action: action.to_string(),
            version,
            started_at: now,
            previous,
        };
        self.deployments.insert(d.id.clone(), d.clone());
        self.event(
            now,
            EventKind::DeploymentInfo {
                plan: d.plan(),
                current_step: CurrentStep {
                    actions: vec![DeploymentAction {
                        action: action.to_string(),
                        app: app_id.to_string(),
                    }],
                },
            },
        );
        self.dirty = true;
        d
    }

    /// POST /v2/apps: a new app (its ID made absolute), checked against the nodes.
    pub fn create_app(
        &mut self,
        mut def: AppDefinition,
        now: DateTime<Utc>,
    ) -> Result<(App, Deployment), MasterError> {
        def.id = normalize_id(&def.id);
        self.check(&def)?;
        if self.apps.contains_key(&def.id) {
            return Err(MasterError::AppExists(def.id));
        }
        let app = App {
            def,
            version: now,
            config_version: now,
            last_scaling_at: now,
        };
        let id = app.def.id.clone();
        self.apps.insert(id.clone(), app.clone());
        self.event(
            now,
            EventKind::ApiPost {
                client_ip: None,
                uri: format!("/v2/apps{id}"),
                app_definition: Box::new(app.def.clone()),
            },
        );
        let d = self.start_deployment(&id, "StartApplication", now, None, now);
        Ok((app, d))
    }

    /// PUT /v2/apps/{id}: the app's new definition (the API merged a partial update over
    /// the current one), or a new app. A scale (only `instances` changed) keeps the tasks; any
    /// other change replaces them (rolling).
    pub fn put_app(
        &mut self,
        mut def: AppDefinition,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<Deployment, MasterError> {
        let id = normalize_id(&def.id);
        let Some(old) = self.apps.get(&id).cloned() else {
            return self.create_app(def, now).map(|(_, d)| d);
        };
        def.id = id.clone();
        self.check(&def)?;
        self.lock(&id, force, now)?;
        let mut app = old.clone();
        let action = if def.config_eq(&old.def) {
            app.last_scaling_at = now;
            "ScaleApplication"
        } else {
            app.config_version = now;
            self.delays.remove(&id);
            "RestartApplication"
        };
        app.def = def;
        app.version = now;
        self.apps.insert(id.clone(), app);
        Ok(self.start_deployment(&id, action, now, Some(old), now))
    }

    /// Run `f` (changes of several apps: PUT /v2/apps, group deployments) all or nothing:
    /// when it fails, the apps, deployments, launch delays and events are put back as they
    /// were.
    pub fn all_or_none<R>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<R, MasterError>,
    ) -> Result<R, MasterError> {
        let (apps, deployments, delays, n_events, dirty) = (
            self.apps.clone(),
            self.deployments.clone(),
            self.delays.clone(),
            self.events.len(),
            self.dirty,
        );
        let result = f(self);
        if result.is_err() {
            self.apps = apps;
            self.deployments = deployments;
            self.delays = delays;
            self.events.truncate(n_events);
            self.dirty = dirty;
        }
        result
    }

    /// DELETE /v2/groups/{id}: remove every app in the group.
    pub fn delete_group(
        &mut self,
        group: &str,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<Deployment>, MasterError> {
        let group = normalize_id(group);
        let prefix = if group == "/" {
            "/".to_string()
        } else {
            format!("{group}/")
        };
        let ids: Vec<String> = self
            .apps
            .keys()
            .filter(|id| id.starts_with(&prefix))
            .cloned()
            .collect();
        if ids.is_empty() {
            return Err(MasterError::AppNotFound(format!("{group} (group)")));
        }
        if !force {
            if let Some(d) = self.deployments.values().find(|d| ids.contains(&d.app_id)) {
                return Err(MasterError::Locked(d.id.clone()));
            }
        }
        ids.iter()
            .map(|id| self.delete_app(id, force, now))
            .collect()
    }

    /// DELETE /v2/queue/{id}/delay: launch again now, forgetting the backoff.
    pub fn reset_delay(&mut self, id: &str) -> Result<(), MasterError> {
        let id = normalize_id(id);
        if !self.apps.contains_key(&id) {
            return Err(MasterError::AppNotFound(id));
        }
        self.delays.remove(&id);
        Ok(())
    }

    /// POST /v2/apps/{id}/restart: replace every task (rolling).
    pub fn restart_app(
        &mut self,
        id: &str,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<Deployment, MasterError> {
        let id = normalize_id(id);
        let old = self
            .apps
            .get(&id)
            .cloned()
            .ok_or_else(|| MasterError::AppNotFound(id.clone()))?;
        self.lock(&id, force, now)?;
        let mut app = old.clone();
        app.version = now;
        app.config_version = now;
        self.apps.insert(id.clone(), app);
        self.delays.remove(&id);
        Ok(self.start_deployment(&id, "RestartApplication", now, Some(old), now))
    }

    /// DELETE /v2/apps/{id}: remove the app and kill its tasks.
    pub fn delete_app(
        &mut self,
        id: &str,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<Deployment, MasterError> {
        let id = normalize_id(id);
        if !self.apps.contains_key(&id) {
            return Err(MasterError::AppNotFound(id));
        }
        self.lock(&id, force, now)?;
        let old = self.apps.remove(&id);
        self.delays.remove(&id);
        self.queue.remove(&id);
        let tasks: Vec<String> = self
            .tasks
            .values()
            .filter(|t| t.spec.app_id == id)
            .map(|t| t.spec.task_id.clone())
            .collect();
        for t in tasks {
            self.kill(&t, "app deleted", now);
        }
        self.event(now, EventKind::AppTerminated { app_id: id.clone() });
        Ok(self.start_deployment(&id, "StopApplication", now, old, now))
    }

    /// DELETE /v2/deployments/{id}: with `force`, just forget it; else roll the app back to
    /// the definition before it (a new deployment).
    pub fn delete_deployment(
        &mut self,
        id: &str,
        force: bool,
        now: DateTime<Utc>,
    ) -> Result<Option<Deployment>, MasterError> {
        let d = self
            .deployments
            .remove(id)
            .ok_or_else(|| MasterError::DeploymentNotFound(id.to_string()))?;
        self.dirty = true;
        self.event(
            now,
            EventKind::DeploymentFailed {
                id: d.id.clone(),
                plan: FailedPlan::Plan(d.plan()),
                reason: "canceled".into(),
            },
        );
        if force {
            return Ok(None);
        }
        let current = self.apps.get(&d.app_id).cloned();
        match (d.previous.clone(), current) {
            (Some(mut prev), current) => {
                prev.version = now;
                if current.as_ref().is_none_or(|c| !c.def.config_eq(&prev.def)) {
                    prev.config_version = now;
                }
                self.apps.insert(d.app_id.clone(), prev);
                Ok(Some(self.start_deployment(
                    &d.app_id,
                    "RestartApplication",
                    now,
                    self.apps.get(&d.app_id).cloned(),
                    now,
                )))
            }
            (None, Some(_)) => self.delete_app(&d.app_id, true, now).map(Some),
            (None, None) => Ok(None),
        }
    }
}
