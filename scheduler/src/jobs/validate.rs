//! Job definitions in, field-level errors out, in the same 422 shape as apps
//! (`{"message":"Object is not valid","details":[{"path":"/schedule","errors":["…"]}]}`).
use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{
    model::{Job, JobDefinition},
    schedule::{parse_timezone, Schedule},
};
use crate::{
    placement::Constraint,
    validate::{FieldError, ValidationErrors},
};

fn add(errs: &mut ValidationErrors, path: impl Into<String>, error: impl Into<String>) {
    let path = path.into();
    let error = error.into();
    match errs.details.iter_mut().find(|d| d.path == path) {
        Some(d) => d.errors.push(error),
        None => errs.details.push(FieldError {
            path,
            errors: vec![error],
        }),
    }
}

/// Decode a JSON job definition; a type error or an unknown field names the field.
pub fn parse_job(value: Value) -> Result<JobDefinition, ValidationErrors> {
    serde_path_to_error::deserialize(value).map_err(|e| {
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
        if let Some(rest) = msg.strip_prefix("unknown field `") {
            if let Some(end) = rest.find('`') {
                let field = format!("/{}", &rest[..end]);
                if !path.ends_with(&field) {
                    path.push_str(&field);
                }
            }
        }
        let mut errs = ValidationErrors::default();
        add(
            &mut errs,
            if path.is_empty() { "/".into() } else { path },
            msg,
        );
        errs
    })
}

/// Is `id` a job name (`[a-z0-9][a-z0-9._-]*`, at most 63)?
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
        && id.starts_with(|c: char| c.is_ascii_alphanumeric())
}

/// Check a definition against itself and the other jobs (`jobs`, which may hold an older
/// version of it): each bad field named. Returns the schedule as it is to be kept (an ISO
/// schedule without a start gets `now`).
pub fn check_job(
    def: &JobDefinition,
    jobs: &BTreeMap<String, Job>,
    now: DateTime<Utc>,
) -> Result<Option<String>, ValidationErrors> {
    let mut errs = ValidationErrors::default();
    if !valid_id(&def.id) {
        add(
            &mut errs,
            "/id",
            format!(
                "{:?} is not a job name: lowercase letters, digits, '-', '_', '.', starting with a letter or digit, at most 63",
                def.id
            ),
        );
    }
    let tz = match parse_timezone(&def.timezone) {
        Ok(tz) => Some(tz),
        Err(e) => {
            add(&mut errs, "/timezone", e.to_string());
            None
        }
    };
    let mut resolved = None;
    match (&def.schedule, def.parents.is_empty()) {
        (Some(_), false) => add(
            &mut errs,
            "/schedule",
            "give either a schedule or parents, not both (a dependent job runs when its parents succeed)",
        ),
        (None, true) => add(
            &mut errs,
            "/schedule",
            "missing: give a cron expression (*/5 * * * *), R[n]/start/period, or parents",
        ),
        (Some(s), true) => {
            if let Some(tz) = tz {
                match Schedule::parse(s, tz, now) {
                    Ok(sched) => {
                        if let Schedule::Repeat { start, .. } = &sched {
                            let parts: Vec<&str> = s.trim().split('/').collect();
                            if parts.len() == 3 && parts[1].trim().is_empty() {
                                resolved = Some(format!(
                                    "{}/{}/{}",
                                    parts[0],
                                    start.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                                    parts[2]
                                ));
                            }
                        }
                    }
                    Err(e) => add(&mut errs, "/schedule", e.to_string()),
                }
            }
        }
        (None, false) => {}
    }
    for (k, v) in [
        ("/cpus", def.cpus),
        ("/mem", def.mem),
        ("/epsilonSeconds", def.epsilon_seconds),
        ("/timeoutSeconds", def.timeout_seconds),
        ("/retry/backoffSeconds", def.retry.backoff_seconds),
        ("/retry/maxBackoffSeconds", def.retry.max_backoff_seconds),
    ] {
        if !v.is_finite() || v < 0.0 {
            add(&mut errs, k, format!("{v} is negative or not a number"));
        }
    }
    if def.retry.backoff_factor < 1.0 || !def.retry.backoff_factor.is_finite() {
        add(
            &mut errs,
            "/retry/backoffFactor",
            format!("{} must be at least 1", def.retry.backoff_factor),
        );
    }
    if def.cmd.as_deref().is_none_or(|c| c.trim().is_empty())
        && def.args.as_ref().is_none_or(|a| a.is_empty())
        && def.image.as_deref().is_none_or(|i| i.trim().is_empty())
    {
        add(
            &mut errs,
            "/cmd",
            "give a cmd, args, or an image to run with its own command",
        );
    }
    if def.cmd.is_some() && def.args.is_some() {
        add(&mut errs, "/args", "give cmd or args, not both");
    }
    for (i, c) in def.constraints.iter().enumerate() {
        if let Err(e) = Constraint::parse(c) {
            add(&mut errs, format!("/constraints/{i}"), e.to_string());
        }
    }
    let mut seen = HashSet::new();
    for (i, p) in def.parents.iter().enumerate() {
        let path = format!("/parents/{i}");
        if p == &def.id {
            add(&mut errs, path, "a job cannot be its own parent");
        } else if !jobs.contains_key(p) {
            add(
                &mut errs,
                path,
                format!("unknown job {p:?}: create the parent first"),
            );
        } else if !seen.insert(p) {
            add(&mut errs, path, format!("{p:?} is listed twice"));
        } else if let Some(cycle) = cycle_through(&def.id, p, jobs) {
            add(
                &mut errs,
                path,
                format!(
                    "a cycle: {} (parents must not depend on the job)",
                    cycle.join(" → ")
                ),
            );
        }
    }
    if errs.is_empty() {
        Ok(resolved)
    } else {
        Err(errs)
    }
}

/// A path from `parent` back to `id` through parents (a cycle once `id` lists `parent`).
fn cycle_through(id: &str, parent: &str, jobs: &BTreeMap<String, Job>) -> Option<Vec<String>> {
    let mut stack = vec![(parent.to_string(), vec![id.to_string(), parent.to_string()])];
    let mut visited = HashSet::new();
    while let Some((j, path)) = stack.pop() {
        if !visited.insert(j.clone()) {
            continue;
        }
        let Some(job) = jobs.get(&j) else { continue };
        for p in &job.def.parents {
            let mut next = path.clone();
            next.push(p.clone());
            if p == id {
                return Some(next);
            }
            stack.push((p.clone(), next));
        }
    }
    None
}
