//! App definitions in, field-level errors out, in Marathon's 422 shape:
//! `{"message":"Object is not valid","details":[{"path":"/instances","errors":["…"]}]}`.
use serde::Serialize;
use serde_json::Value;

use crate::{
    model::{normalize_id, AppDefinition, Resources},
    placement::Constraint,
};

/// One field's errors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    /// JSON pointer of the field, e.g. `/container/docker/image`.
    pub path: String,
    /// What is wrong with it.
    pub errors: Vec<String>,
}

/// Every error found in a definition.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ValidationErrors {
    /// Per field.
    pub details: Vec<FieldError>,
}

impl ValidationErrors {
    fn add(&mut self, path: impl Into<String>, error: impl Into<String>) {
        let path = path.into();
        let error = error.into();
        match self.details.iter_mut().find(|d| d.path == path) {
            Some(d) => d.errors.push(error),
            None => self.details.push(FieldError {
                path,
                errors: vec![error],
            }),
        }
    }

    /// No errors.
    pub fn is_empty(&self) -> bool {
        self.details.is_empty()
    }

    /// Marathon's 422 body.
    pub fn to_json(&self) -> Value {
        serde_json::json!({"message": "Object is not valid", "details": self.details})
    }

    /// One line per field, for people.
    pub fn summary(&self) -> String {
        self.details
            .iter()
            .map(|d| format!("{}: {}", d.path, d.errors.join("; ")))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl std::fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "invalid app definition: {}", self.summary())
    }
}

impl std::error::Error for ValidationErrors {}

/// Parse a JSON app definition; type errors and unknown fields name the field.
pub fn parse_app(value: Value) -> Result<AppDefinition, ValidationErrors> {
    let mut app: AppDefinition = match serde_path_to_error::deserialize(value) {
        Ok(a) => a,
        Err(e) => {
            let mut errs = ValidationErrors::default();
            let (path, message) = describe_serde_error(&e);
            errs.add(path, message);
            return Err(errs);
        }
    };
    // Read-only fields of responses that a client sent back: not part of the definition.
    app.version = None;
    app.version_info = None;
    app.tasks_staged = None;
    app.tasks_running = None;
    app.tasks_healthy = None;
    app.tasks_unhealthy = None;
    app.deployments = None;
    app.tasks = None;
    app.last_task_failure = None;
    app.task_stats = None;
    app.readiness_check_results = None;
    Ok(app)
}

fn describe_serde_error(e: &serde_path_to_error::Error<serde_json::Error>) -> (String, String) {
    let mut path = String::new();
    for seg in e.path().iter() {
        use serde_path_to_error::Segment;
        match seg {
            Segment::Seq { index } => path.push_str(&format!("/{index}")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                path.push('/');
                path.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    let msg = e.inner().to_string();
    // "unknown field `foo`, expected one of `a`, `b`" → path of the field itself
    if let Some(rest) = msg.strip_prefix("unknown field `") {
        if let Some(end) = rest.find('`') {
            let field = &rest[..end];
            if !path.ends_with(&format!("/{field}")) {
                path.push('/');
                path.push_str(field);
            }
            return (
                path,
                format!(
                    "unknown field `{field}`: Marathon has no such field here (check the spelling; {})",
                    rest[end + 1..].trim_start_matches(", ")
                ),
            );
        }
    }
    if path.is_empty() {
        path.push('/');
    }
    (path, msg)
}

/// Check a parsed definition. `largest_node` is the biggest node's resources, when nodes
/// are known, to refuse an app no node can ever run.
pub fn validate_app(app: &AppDefinition, largest_node: Option<Resources>) -> ValidationErrors {
    let mut errs = ValidationErrors::default();
    let id = normalize_id(&app.id);
    if app.id.trim().is_empty() || id == "/" {
        errs.add("/id", "id is required, e.g. \"/shop/web\"");
    } else {
        for seg in id.trim_start_matches('/').split('/') {
            let ok = !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
                && !seg.starts_with(['-', '.'])
                && !seg.ends_with(['-', '.']);
            if !ok {
                errs.add(
                    "/id",
                    format!(
                        "path segment {seg:?} is not valid: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
                    ),
                );
                break;
            }
        }
    }
    let has_cmd = app.cmd.as_deref().is_some_and(|c| !c.trim().is_empty());
    let has_args = app.args.as_ref().is_some_and(|a| !a.is_empty());
    if app.image().is_none() && !has_cmd && !has_args {
        errs.add(
            "/",
            "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container' with a Docker image (container.docker.image)",
        );
    }
    if has_cmd && has_args {
        errs.add("/cmd", "give either cmd or args, not both");
    }
    if let Some(c) = &app.container {
        let kind = c.kind.to_ascii_uppercase();
        if kind != "DOCKER" && kind != "MESOS" {
            errs.add(
                "/container/type",
                format!("{:?} is not a container type: use DOCKER", c.kind),
            );
        }
        if let Some(d) = &c.docker {
            if d.image.trim().is_empty() {
                errs.add("/container/docker/image", "image must not be empty");
            }
            if let Some(n) = &d.network {
                if !["HOST", "BRIDGE", "USER", "NONE"].contains(&n.to_ascii_uppercase().as_str()) {
                    errs.add(
                        "/container/docker/network",
                        format!("{n:?} is not a network mode: use HOST or BRIDGE"),
                    );
                }
            }
        }
        for (i, pm) in app.port_mappings().iter().enumerate() {
            if !(0..=65535).contains(&pm.container_port) {
                errs.add(
                    format!("/container/portMappings/{i}/containerPort"),
                    "must be between 0 and 65535",
                );
            }
            if !(0..=65535).contains(&pm.host_port) {
                errs.add(
                    format!("/container/portMappings/{i}/hostPort"),
                    "must be between 0 and 65535",
                );
            }
            if pm.protocol != "tcp" && pm.protocol != "udp" {
                errs.add(
                    format!("/container/portMappings/{i}/protocol"),
                    "must be tcp or udp",
                );
            }
        }
    }
    if app.instances < 0 {
        errs.add(
            "/instances",
            format!(
                "got {}, expected 0 or more: the number of tasks to run",
                app.instances
            ),
        );
    }
    if app.cpus.is_nan() || app.cpus < 0.0 {
        errs.add("/cpus", format!("got {}, expected 0 or more", app.cpus));
    }
    if app.mem.is_nan() || app.mem < 0.0 {
        errs.add("/mem", format!("got {}, expected 0 or more", app.mem));
    }
    if app.disk.is_nan() || app.disk < 0.0 {
        errs.add("/disk", format!("got {}, expected 0 or more", app.disk));
    }
    if app.gpus != 0.0 {
        errs.add("/gpus", "Drover places no GPUs: gpus must be 0");
    }
    if let Some(max) = largest_node {
        if app.cpus > max.cpus {
            errs.add(
                "/cpus",
                format!(
                    "{} cpus is more than any node has (the largest has {}): no node could run this app",
                    app.cpus, max.cpus
                ),
            );
        }
        if app.mem > max.mem {
            errs.add(
                "/mem",
                format!(
                    "{} MiB is more than any node has (the largest has {} MiB): no node could run this app",
                    app.mem, max.mem
                ),
            );
        }
        if app.disk > max.disk && app.disk > 0.0 {
            errs.add(
                "/disk",
                format!(
                    "{} MiB is more than any node has (the largest has {} MiB)",
                    app.disk, max.disk
                ),
            );
        }
    }
    for (i, c) in app.constraints.iter().enumerate() {
        if let Err(e) = Constraint::parse(c) {
            errs.add(format!("/constraints/{i}"), e.to_string());
        }
    }
    for (k, v) in &app.env {
        if !v.is_string() {
            errs.add(
                format!("/env/{k}"),
                "env values must be strings (secrets are not supported)",
            );
        }
    }
    for (i, hc) in app.health_checks.iter().enumerate() {
        let p = format!("/healthChecks/{i}");
        let proto = hc.protocol.to_ascii_uppercase();
        let known = [
            "HTTP",
            "HTTPS",
            "TCP",
            "COMMAND",
            "MESOS_HTTP",
            "MESOS_HTTPS",
            "MESOS_TCP",
        ];
        if !known.contains(&proto.as_str()) {
            errs.add(
                format!("{p}/protocol"),
                format!(
                    "{:?} is not a health check protocol: use HTTP, TCP or COMMAND",
                    hc.protocol
                ),
            );
        }
        if proto.ends_with("HTTPS") {
            errs.add(
                format!("{p}/protocol"),
                "HTTPS health checks are not supported yet: use HTTP or TCP",
            );
        }
        if proto == "COMMAND" && hc.command.is_none() {
            errs.add(
                format!("{p}/command"),
                "a COMMAND health check needs command.value",
            );
        }
        if proto != "COMMAND" && hc.port.is_none() {
            let idx = hc.port_index.unwrap_or(0);
            if idx < 0 || idx as usize >= app.host_ports().len() {
                errs.add(
                    format!("{p}/portIndex"),
                    format!(
                        "{idx} is not one of the app's ports (it has {})",
                        app.host_ports().len()
                    ),
                );
            }
        }
        for (name, v) in [
            ("intervalSeconds", hc.interval_seconds),
            ("timeoutSeconds", hc.timeout_seconds),
            ("gracePeriodSeconds", hc.grace_period_seconds),
        ] {
            if v.is_nan() || v < 0.0 {
                errs.add(format!("{p}/{name}"), "must be 0 or more");
            }
        }
        if hc.max_consecutive_failures < 0 {
            errs.add(format!("{p}/maxConsecutiveFailures"), "must be 0 or more");
        }
    }
    let us = &app.upgrade_strategy;
    if !(0.0..=1.0).contains(&us.minimum_health_capacity) {
        errs.add(
            "/upgradeStrategy/minimumHealthCapacity",
            "must be between 0 and 1",
        );
    }
    if !(0.0..=1.0).contains(&us.maximum_over_capacity) {
        errs.add(
            "/upgradeStrategy/maximumOverCapacity",
            "must be between 0 and 1",
        );
    }
    if app.backoff_seconds.is_nan() || app.backoff_seconds < 0.0 {
        errs.add("/backoffSeconds", "must be 0 or more");
    }
    if app.backoff_factor.is_nan() || app.backoff_factor < 1.0 {
        errs.add("/backoffFactor", "must be 1 or more");
    }
    if app.max_launch_delay_seconds.is_nan() || app.max_launch_delay_seconds < 0.0 {
        errs.add("/maxLaunchDelaySeconds", "must be 0 or more");
    }
    if app.kill_selection != "YOUNGEST_FIRST" && app.kill_selection != "OLDEST_FIRST" {
        errs.add("/killSelection", "must be YOUNGEST_FIRST or OLDEST_FIRST");
    }
    if let Some(v) = app.labels.get(crate::model::LABEL_DRAIN) {
        let ok = v
            .trim()
            .parse::<f64>()
            .is_ok_and(|d| d.is_finite() && d >= 0.0);
        if !ok {
            errs.add(
                format!("/labels/{}", crate::model::LABEL_DRAIN),
                format!("{v:?} is not a number of seconds (0 or more, e.g. \"5\"; 0 turns the drain off)"),
            );
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn check(v: Value) -> ValidationErrors {
        match parse_app(v) {
            Ok(app) => validate_app(
                &app,
                Some(Resources {
                    cpus: 2.0,
                    mem: 4096.0,
                    disk: 10_000.0,
                }),
            ),
            Err(e) => e,
        }
    }

    fn paths(e: &ValidationErrors) -> Vec<&str> {
        e.details.iter().map(|d| d.path.as_str()).collect()
    }

    #[test]
    fn a_good_app_passes() {
        let e = check(
            json!({"id": "/shop/web", "container": {"docker": {"image": "x"}}, "cpus": 0.1, "mem": 32}),
        );
        assert!(e.is_empty(), "{e}");
    }

    #[test]
    fn bad_definitions_name_the_field() {
        let cases = [
            (json!({"id": "/a"}), "/"),
            (
                json!({"id": "/a", "cmd": "x", "instances": -1}),
                "/instances",
            ),
            (
                json!({"id": "/a", "cmd": "x", "constraints": [["hostname", "SOMETIMES"]]}),
                "/constraints/0",
            ),
            (json!({"id": "/a", "cmd": "x", "cpus": 64}), "/cpus"),
            (
                json!({"id": "/a", "cmd": "x", "instancez": 2}),
                "/instancez",
            ),
            (
                json!({"id": "/a", "container": {"docker": {"image": "x", "imagePull": true}}}),
                "/container/docker/imagePull",
            ),
            (
                json!({"id": "/a", "cmd": "x", "instances": "three"}),
                "/instances",
            ),
            (json!({"id": "/Bad_Id", "cmd": "x"}), "/id"),
            (
                json!({"id": "/a", "cmd": "x", "healthChecks": [{"protocol": "SMOKE"}]}),
                "/healthChecks/0/protocol",
            ),
            (
                json!({"id": "/a", "cmd": "x", "healthChecks": [{"protocol": "HTTPS"}]}),
                "/healthChecks/0/protocol",
            ),
            (
                json!({"id": "/a", "cmd": "x", "upgradeStrategy": {"minimumHealthCapacity": 2}}),
                "/upgradeStrategy/minimumHealthCapacity",
            ),
            (
                json!({"id": "/a", "cmd": "x", "labels": {"drover.gateway.drain-seconds": "soon"}}),
                "/labels/drover.gateway.drain-seconds",
            ),
        ];
        for (v, path) in cases {
            let e = check(v.clone());
            assert!(paths(&e).contains(&path), "{v}: {e:?}");
        }
    }

    #[test]
    fn unknown_field_message_names_it() {
        let e = check(json!({"id": "/a", "cmd": "x", "instancez": 2}));
        assert!(e.details[0].errors[0].contains("instancez"), "{e:?}");
        assert_eq!(e.to_json()["message"], "Object is not valid");
    }

    #[test]
    fn read_only_fields_are_accepted() {
        let e = check(
            json!({"id": "/a", "cmd": "x", "tasksRunning": 3, "version": "2020-01-01T00:00:00Z", "deployments": []}),
        );
        assert!(e.is_empty(), "{e}");
    }
}
