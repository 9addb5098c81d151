//! Tags for a container's records, read from its Docker inspect result: which app it belongs
//! to (from a label, the environment, the compose service or its name, in a configurable
//! order), Drover's node/task/group labels, and the per-container settings the collector
//! needs (TTY, multi-line rule, CPU limit).

use bollard::models::ContainerInspectResponse;
use drover_schema::Source;

use crate::logs::multiline::{self, MultilineRule, RuleError};

pub use drover_schema::labels::{
    APP as LABEL_APP, GROUP as LABEL_GROUP, MULTILINE as LABEL_MULTILINE, NODE as LABEL_NODE,
    TASK as LABEL_TASK,
};
/// Label Docker Compose puts the service name in.
pub const LABEL_COMPOSE_SERVICE: &str = "com.docker.compose.service";
pub use drover_schema::labels::APP_ID_ENV;

/// Docker's CPU period when a quota is set without one, microseconds.
const DEFAULT_CPU_PERIOD_US: i64 = 100_000;

/// Where a container's app ID can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AppIdSource {
    /// The container label `drover.app`.
    Label,
    /// The environment variable `DROVER_APP_ID`, else `MARATHON_APP_ID`.
    Env,
    /// The compose service name (label `com.docker.compose.service`), without the project.
    Compose,
    /// The container name without its leading `/`. Always yields a value.
    Name,
}

/// The order app IDs are looked for unless configured otherwise.
pub const DEFAULT_APP_ID_ORDER: [AppIdSource; 4] = [
    AppIdSource::Label,
    AppIdSource::Env,
    AppIdSource::Compose,
    AppIdSource::Name,
];

/// The tags of a container's records. `app` is the first non-empty value from the sources
/// in `order` (surrounding whitespace trimmed); when none yields one — `order` is empty or
/// lacks [`AppIdSource::Name`] — the container name is used anyway, and when the container
/// has no name either, the first 12 characters of its ID.
pub fn source_from_inspect(
    inspect: &ContainerInspectResponse,
    host: &str,
    order: &[AppIdSource],
) -> Source {
    let container_name = container_name(inspect);
    let container_id = inspect.id.clone().unwrap_or_default();
    let app = order
        .iter()
        .find_map(|&src| app_id_from(inspect, src, &container_name, &container_id))
        .or_else(|| app_id_from(inspect, AppIdSource::Name, &container_name, &container_id))
        .unwrap_or_default();
    let config = inspect.config.as_ref();
    let image = config
        .and_then(|c| c.image.as_deref())
        .filter(|i| !i.is_empty())
        .or(inspect.image.as_deref())
        .unwrap_or_default()
        .to_owned();
    Source {
        host: host.to_owned(),
        node: label(inspect, LABEL_NODE).map(str::to_owned),
        app,
        task: label(inspect, LABEL_TASK).map(str::to_owned),
        group: label(inspect, LABEL_GROUP).map(str::to_owned),
        container_id,
        container_name,
        image,
    }
}

fn app_id_from(
    inspect: &ContainerInspectResponse,
    src: AppIdSource,
    name: &str,
    id: &str,
) -> Option<String> {
    let value = match src {
        AppIdSource::Label => label(inspect, LABEL_APP),
        AppIdSource::Env => APP_ID_ENV.iter().find_map(|var| env(inspect, var)),
        AppIdSource::Compose => label(inspect, LABEL_COMPOSE_SERVICE),
        AppIdSource::Name if !name.is_empty() => Some(name),
        AppIdSource::Name => Some(id.get(..12).unwrap_or(id)).filter(|s| !s.is_empty()),
    };
    value.map(str::to_owned)
}

/// The container name without Docker's leading `/`.
fn container_name(inspect: &ContainerInspectResponse) -> String {
    let name = inspect.name.as_deref().unwrap_or_default();
    name.strip_prefix('/').unwrap_or(name).to_owned()
}

/// A label's value, trimmed, if set and not blank.
fn label<'a>(inspect: &'a ContainerInspectResponse, key: &str) -> Option<&'a str> {
    inspect
        .config
        .as_ref()?
        .labels
        .as_ref()?
        .get(key)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
}

/// An environment variable's value, trimmed, if set and not blank. When a variable appears
/// more than once, the last one wins, as in the container's environment.
fn env<'a>(inspect: &'a ContainerInspectResponse, key: &str) -> Option<&'a str> {
    inspect
        .config
        .as_ref()?
        .env
        .as_ref()?
        .iter()
        .rev()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// True when the container runs with a TTY (`Config.Tty`): its log stream is not
/// multiplexed, and stdout and stderr arrive as one.
pub fn is_tty(inspect: &ContainerInspectResponse) -> bool {
    inspect.config.as_ref().and_then(|c| c.tty).unwrap_or(false)
}

/// The multi-line rule the container's `drover.multiline` label chooses, or `None` when the
/// label is absent or blank.
pub fn multiline_rule(
    inspect: &ContainerInspectResponse,
) -> Result<Option<MultilineRule>, RuleError> {
    label(inspect, LABEL_MULTILINE)
        .map(multiline::parse)
        .transpose()
}

/// The container's CPU limit in cores: `HostConfig.NanoCpus / 1e9` (`--cpus`), else
/// `CpuQuota / CpuPeriod` (period 100 ms when unset), else `None` (unlimited).
pub fn cpu_limit(inspect: &ContainerInspectResponse) -> Option<f64> {
    let hc = inspect.host_config.as_ref()?;
    if let Some(nano) = hc.nano_cpus.filter(|&n| n > 0) {
        return Some(nano as f64 / 1e9);
    }
    let quota = hc.cpu_quota.filter(|&q| q > 0)?;
    let period = hc
        .cpu_period
        .filter(|&p| p > 0)
        .unwrap_or(DEFAULT_CPU_PERIOD_US);
    Some(quota as f64 / period as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::{ContainerConfig, HostConfig};
    use std::collections::HashMap;

    const ID: &str = "8fbf6dfd30ff75d7be951284d3dd1fca8dc90ddae1690fe14d667d96917f8868";

    fn inspect(name: &str, labels: &[(&str, &str)], env: &[&str]) -> ContainerInspectResponse {
        ContainerInspectResponse {
            id: Some(ID.to_owned()),
            name: Some(name.to_owned()),
            image: Some("sha256:818db36c67a4".to_owned()),
            config: Some(ContainerConfig {
                image: Some("drover-demo:latest".to_owned()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect::<HashMap<_, _>>(),
                ),
                env: Some(env.iter().map(|s| (*s).to_owned()).collect()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// A container that every source has a value for.
    fn everything() -> ContainerInspectResponse {
        inspect(
            "/shop_web_1",
            &[
                ("drover.app", "/shop/web"),
                ("com.docker.compose.project", "shop"),
                ("com.docker.compose.service", "web"),
            ],
            &[
                "PATH=/usr/bin",
                "MARATHON_APP_ID=/marathon/web",
                "DROVER_APP_ID=/env/web",
            ],
        )
    }

    use AppIdSource::{Compose, Env, Label, Name};

    #[test]
    fn app_id_follows_the_order() {
        let i = everything();
        let cases: &[(&[AppIdSource], &str)] = &[
            (&DEFAULT_APP_ID_ORDER, "/shop/web"),
            (&[Env, Label], "/env/web"),
            (&[Compose, Label], "web"),
            (&[Name, Label], "shop_web_1"),
            // no Name in the order and nothing else asked for: the name anyway
            (&[], "shop_web_1"),
        ];
        for &(order, want) in cases {
            assert_eq!(source_from_inspect(&i, "h", order).app, want, "{order:?}");
        }
    }

    #[test]
    fn app_id_skips_sources_without_a_value() {
        let cases: &[(ContainerInspectResponse, &[AppIdSource], &str)] = &[
            // MARATHON_APP_ID when DROVER_APP_ID is absent
            (
                inspect("/c", &[], &["MARATHON_APP_ID=/m/app"]),
                &DEFAULT_APP_ID_ORDER,
                "/m/app",
            ),
            // blank values do not count
            (
                inspect(
                    "/c",
                    &[("drover.app", "  ")],
                    &["DROVER_APP_ID=", "MARATHON_APP_ID=/m"],
                ),
                &DEFAULT_APP_ID_ORDER,
                "/m",
            ),
            // a variable whose name merely starts with the key is another variable
            (
                inspect("/c", &[], &["DROVER_APP_ID_X=/no"]),
                &DEFAULT_APP_ID_ORDER,
                "c",
            ),
            // the last of repeated variables wins; values are trimmed
            (
                inspect("/c", &[], &["DROVER_APP_ID=/old", "DROVER_APP_ID= /new "]),
                &[Env],
                "/new",
            ),
            // compose service without the project
            (
                inspect(
                    "/shop-web-1",
                    &[
                        ("com.docker.compose.project", "shop"),
                        ("com.docker.compose.service", "web"),
                    ],
                    &[],
                ),
                &DEFAULT_APP_ID_ORDER,
                "web",
            ),
            // nothing from the requested sources: the name
            (
                inspect("/lonely", &[], &[]),
                &[Label, Env, Compose],
                "lonely",
            ),
            (
                inspect("/lonely", &[], &[]),
                &DEFAULT_APP_ID_ORDER,
                "lonely",
            ),
            // no name either: the short ID
            (inspect("", &[], &[]), &DEFAULT_APP_ID_ORDER, &ID[..12]),
        ];
        for (i, order, want) in cases {
            assert_eq!(source_from_inspect(i, "h", order).app, *want, "{i:?}");
        }
    }

    #[test]
    fn fills_every_tag() {
        let mut i = everything();
        let labels = i.config.as_mut().unwrap().labels.as_mut().unwrap();
        labels.insert("drover.node".into(), "node-1".into());
        labels.insert("drover.task".into(), "shop_web.42".into());
        labels.insert("drover.group".into(), "g1".into());
        assert_eq!(
            source_from_inspect(&i, "host-a", &DEFAULT_APP_ID_ORDER),
            Source {
                host: "host-a".into(),
                node: Some("node-1".into()),
                app: "/shop/web".into(),
                task: Some("shop_web.42".into()),
                group: Some("g1".into()),
                container_id: ID.into(),
                container_name: "shop_web_1".into(),
                image: "drover-demo:latest".into(),
            }
        );
    }

    #[test]
    fn missing_tags_are_none_and_image_falls_back() {
        let mut i = inspect("/c", &[("drover.node", "")], &[]);
        i.config.as_mut().unwrap().image = None;
        let s = source_from_inspect(&i, "h", &DEFAULT_APP_ID_ORDER);
        assert_eq!((s.node, s.task, s.group), (None, None, None));
        assert_eq!(s.image, "sha256:818db36c67a4");
        // an inspect result with nothing in it
        let s = source_from_inspect(
            &ContainerInspectResponse::default(),
            "h",
            &DEFAULT_APP_ID_ORDER,
        );
        assert_eq!(s.app, "");
        assert_eq!(s.container_name, "");
        assert_eq!(s.image, "");
    }

    #[test]
    fn app_id_source_serde_names() {
        let json = serde_json::to_string(&DEFAULT_APP_ID_ORDER).unwrap();
        assert_eq!(json, r#"["label","env","compose","name"]"#);
        let back: Vec<AppIdSource> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, DEFAULT_APP_ID_ORDER);
        assert!(serde_json::from_str::<AppIdSource>(r#""Label""#).is_err());
    }

    #[test]
    fn tty() {
        let mut i = inspect("/c", &[], &[]);
        assert!(!is_tty(&i));
        i.config.as_mut().unwrap().tty = Some(true);
        assert!(is_tty(&i));
        assert!(!is_tty(&ContainerInspectResponse::default()));
    }

    #[test]
    fn multiline_label() {
        assert!(multiline_rule(&inspect("/c", &[], &[])).unwrap().is_none());
        assert!(
            multiline_rule(&inspect("/c", &[("drover.multiline", " ")], &[]))
                .unwrap()
                .is_none()
        );
        let java = multiline_rule(&inspect("/c", &[("drover.multiline", "java")], &[]));
        assert!(matches!(java, Ok(Some(MultilineRule::Java))));
        let re = multiline_rule(&inspect("/c", &[("drover.multiline", r"regex:^\[")], &[]));
        assert!(matches!(re, Ok(Some(MultilineRule::Regex(_)))));
        assert!(multiline_rule(&inspect("/c", &[("drover.multiline", "perl")], &[])).is_err());
    }

    #[test]
    fn cpu_limits() {
        // NanoCpus, CpuQuota, CpuPeriod → cores
        type Case = (Option<i64>, Option<i64>, Option<i64>, Option<f64>);
        let cases: &[Case] = &[
            (None, None, None, None),
            (Some(0), Some(0), Some(0), None),
            (Some(1_500_000_000), None, None, Some(1.5)),
            (Some(500_000_000), Some(200_000), Some(100_000), Some(0.5)), // NanoCpus wins
            (None, Some(50_000), Some(100_000), Some(0.5)),
            (None, Some(300_000), Some(200_000), Some(1.5)),
            (None, Some(50_000), Some(0), Some(0.5)), // period defaults to 100 ms
            (None, Some(50_000), None, Some(0.5)),
            (None, Some(-1), Some(100_000), None), // -1: no quota
            (None, None, Some(100_000), None),
        ];
        for &(nano_cpus, cpu_quota, cpu_period, want) in cases {
            let i = ContainerInspectResponse {
                host_config: Some(HostConfig {
                    nano_cpus,
                    cpu_quota,
                    cpu_period,
                    ..Default::default()
                }),
                ..Default::default()
            };
            assert_eq!(
                cpu_limit(&i),
                want,
                "{nano_cpus:?} {cpu_quota:?} {cpu_period:?}"
            );
        }
        assert_eq!(cpu_limit(&ContainerInspectResponse::default()), None);
    }
}
