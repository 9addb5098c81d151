//! The types the scheduler passes around, no IO: Marathon's wire types ([`marathon`]: app
//! definitions, the views of apps and tasks, deployment plans), the records the master keeps
//! ([`records`]: apps, tasks, nodes, deployments), and the agent protocol ([`agent`]:
//! heartbeat reports and replies). Everything is re-exported here.
pub mod agent;
pub mod marathon;
pub mod records;

use chrono::{DateTime, Utc};

pub use agent::*;
pub use marathon::*;
pub use records::*;

// === helpers ===

/// Marathon's timestamp format: `2026-11-22T01:02:03.456Z`.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Serde for Marathon's timestamps ([`ts`]): `#[serde(with = "marathon_time")]`.
pub mod marathon_time {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serialize as [`super::ts`] does.
    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::ts(*t))
    }

    /// Any RFC 3339 timestamp.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        DateTime::<Utc>::deserialize(d)
    }

    /// The same for an optional timestamp (`null` when None).
    pub mod option {
        use chrono::{DateTime, Utc};
        use serde::{Deserialize, Deserializer, Serializer};

        /// Serialize as [`crate::model::ts`] does, or `null`.
        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&crate::model::ts(*t)),
                None => s.serialize_none(),
            }
        }

        /// Any RFC 3339 timestamp, or `null`.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            Option::<DateTime<Utc>>::deserialize(d)
        }
    }
}

/// Serde for a [`TaskState`] by Marathon's name (`TASK_RUNNING`):
/// `#[serde(with = "marathon_task_state")]`.
pub mod marathon_task_state {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    use super::TaskState;

    /// `TASK_RUNNING`, …
    pub fn serialize<S: Serializer>(t: &TaskState, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(t.marathon())
    }

    /// From `TASK_RUNNING`, …
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TaskState, D::Error> {
        let s = String::deserialize(d)?;
        TaskState::from_marathon(&s)
            .ok_or_else(|| D::Error::custom(format!("unknown task state {s:?}")))
    }
}

/// A random UUID (v4 layout).
pub fn uuid() -> String {
    let a = fastrand::u64(..);
    let b = fastrand::u64(..);
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        (a >> 32) as u32,
        (a >> 16) as u16,
        (a as u16) & 0x0fff,
        ((b >> 48) as u16 & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// Marathon's task ID for an app: `shop_web.UUID`.
pub fn task_id(app_id: &str) -> String {
    format!(
        "{}.{}",
        app_id.trim_start_matches('/').replace('/', "_"),
        uuid()
    )
}

/// The group of an app: `/shop/web` → `/shop`, `/web` → `/`.
pub fn group_of(app_id: &str) -> String {
    match app_id.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => app_id[..i].into(),
    }
}

/// Make an app ID absolute and canonical: `web` → `/web`, no trailing slash.
pub fn normalize_id(id: &str) -> String {
    let trimmed = id.trim().trim_end_matches('/');
    if trimmed.starts_with('/') {
        trimmed.to_string()
    } else {
        format!("/{trimmed}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_marathons() {
        let app: AppDefinition = serde_json::from_str(r#"{"id":"/a","cmd":"sleep 1"}"#).unwrap();
        assert_eq!(app.instances, 1);
        assert_eq!(app.cpus, 1.0);
        assert_eq!(app.mem, 128.0);
        assert_eq!(app.backoff_seconds, 1.0);
        assert_eq!(app.backoff_factor, 1.15);
        assert_eq!(app.max_launch_delay_seconds, 300.0);
        assert_eq!(app.upgrade_strategy.minimum_health_capacity, 1.0);
        assert_eq!(app.upgrade_strategy.maximum_over_capacity, 1.0);
        assert_eq!(app.host_ports(), vec![0]);
        assert!(!app.bridge());
    }

    #[test]
    fn health_check_defaults() {
        let hc: HealthCheck = serde_json::from_str("{}").unwrap();
        assert_eq!(hc.protocol, "HTTP");
        assert_eq!(hc.path, "/");
        assert_eq!(hc.grace_period_seconds, 300.0);
        assert_eq!(hc.interval_seconds, 60.0);
        assert_eq!(hc.timeout_seconds, 20.0);
        assert_eq!(hc.max_consecutive_failures, 3);
    }

    #[test]
    fn bridge_with_port_mappings() {
        let app: AppDefinition = serde_json::from_str(
            r#"{"id":"/a","container":{"docker":{"image":"x","portMappings":[{"containerPort":80}]}}}"#,
        )
        .unwrap();
        assert!(app.bridge());
        assert_eq!(app.host_ports(), vec![0]);
    }

    #[test]
    fn ids_and_groups() {
        assert_eq!(normalize_id("web/"), "/web");
        assert_eq!(group_of("/shop/web"), "/shop");
        assert_eq!(group_of("/web"), "/");
        assert!(task_id("/shop/web").starts_with("shop_web."));
        assert_eq!(uuid().len(), 36);
    }

    #[test]
    fn scale_is_not_a_config_change() {
        let a: AppDefinition = serde_json::from_str(r#"{"id":"/a","cmd":"x"}"#).unwrap();
        let mut b = a.clone();
        b.instances = 5;
        assert!(a.config_eq(&b));
        b.cmd = Some("y".into());
        assert!(!a.config_eq(&b));
    }
}
