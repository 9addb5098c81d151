//! The route table: built whole from the scheduler's apps and tasks ([`build`]), looked up
//! by Host and longest path prefix ([`RouteTable::find`]), swapped atomically by the
//! discovery loop. Building is pure: the same apps and the same previous table give the same
//! routes, and the previous table decides who keeps a contested route (the app that had it).
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::Arc,
};

use chrono::{DateTime, Utc};
use drover_scheduler::model::{group_of, MarathonApp, TaskState};
use serde::Serialize;
use tokio::time::Instant;

use crate::{
    backend::{self, Backend, OutlierConfig},
    balance::Ring,
    labels::{self, GroupFilter, HashKey, LabelSource, RouteSpec},
    metrics::{AppHandles, GatewayMetrics},
    stats::Tracker,
};

/// What the table needs of an app.
#[derive(Debug, Clone, PartialEq)]
pub struct AppView {
    /// App ID.
    pub id: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Ports per task.
    pub ports: usize,
    /// It has health checks (then only healthy tasks get traffic).
    pub health_checks: bool,
    /// Its tasks.
    pub tasks: Vec<TaskView>,
}

/// What the table needs of a task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskView {
    /// Task ID.
    pub id: String,
    /// Its node's address.
    pub host: String,
    /// Its host ports.
    pub ports: Vec<u16>,
    /// Its node.
    pub node: String,
    /// `TASK_RUNNING`.
    pub running: bool,
    /// Its health checks pass (`None` without health checks).
    pub healthy: Option<bool>,
}

impl AppView {
    /// An app routed by `drover.gateway.host = host` to running tasks on 127.0.0.1 at
    /// `ports`, without a scheduler (benchmarks, the `static_proxy` example).
    pub fn on_loopback(id: &str, host: &str, ports: &[u16]) -> Self {
        Self {
            id: id.to_string(),
            labels: [("drover.gateway.host".to_string(), host.to_string())].into(),
            ports: 1,
            health_checks: false,
            tasks: ports
                .iter()
                .enumerate()
                .map(|(i, p)| TaskView {
                    id: format!("{}.{i}", id.trim_start_matches('/')),
                    host: "127.0.0.1".into(),
                    ports: vec![*p],
                    node: "local".into(),
                    running: true,
                    healthy: None,
                })
                .collect(),
        }
    }

    /// From the master's view of an app with its tasks.
    pub fn from_marathon(app: &MarathonApp) -> Self {
        let def = &app.definition;
        Self {
            id: def.id.clone(),
            labels: def.labels.clone(),
            ports: def.host_ports().len(),
            health_checks: !def.health_checks.is_empty(),
            tasks: app
                .tasks
                .iter()
                .flatten()
                .map(|t| TaskView {
                    id: t.id.clone(),
                    host: t.host.clone(),
                    ports: t.ports.clone(),
                    node: t.slave_id.clone(),
                    running: t.state == TaskState::Running,
                    healthy: t.health_check_results.first().map(|h| h.alive),
                })
                .collect(),
        }
    }
}

/// A route: a host (or any host) and a path prefix, served by one app or by the instance
/// groups (apps) of one Marathon group.
#[derive(Debug)]
pub struct Route {
    /// Lowercase host; `None` = any host.
    pub host: Option<String>,
    /// Path prefix.
    pub path: String,
    /// The Marathon group whose apps are this route's instance groups (`None` for one app).
    pub service: Option<String>,
    /// Who holds the route against other claims: the Marathon group, or the app at the root.
    owner: String,
    /// How a request picks a group.
    pub hash_key: HashKey,
    /// Which labels it came from.
    pub source: LabelSource,
    /// Its groups, one per app, ordered by app ID.
    pub groups: Vec<Group>,
    /// The service's statistics (with `service`).
    pub service_stats: Option<Arc<Tracker>>,
    ring: Ring,
}

/// One app of a route and its backends.
#[derive(Debug)]
pub struct Group {
    /// App ID.
    pub app: String,
    /// Its running (and, with health checks, healthy) tasks.
    pub backends: Vec<Arc<Backend>>,
    /// Its tasks, all states.
    pub tasks: usize,
    /// The app's statistics.
    pub stats: Arc<Tracker>,
    /// The app's Prometheus metrics.
    pub prom: Arc<AppHandles>,
}

/// A route an app's labels ask for that the gateway does not serve, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Refused {
    /// The app.
    pub app: String,
    /// The host, when the labels were read that far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The path, when the labels were read that far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// What is wrong and what to do.
    pub reason: String,
}

/// The backend a request goes to.
#[derive(Debug)]
pub struct Pick<'a> {
    /// The group (app) chosen.
    pub group: &'a Group,
    /// Its backend, or `None` when the route has no backend to send to.
    pub backend: Option<&'a Arc<Backend>>,
    /// Chosen in panic mode (more than half of the group ejected).
    pub panic: bool,
}

impl Route {
    /// Where a request with this key hash goes at `now`, not to `exclude` (a backend that
    /// just failed). The key's group first; when it has no backend, the next groups on the ring.
    pub fn pick(
        &self,
        key: u64,
        now: DateTime<Utc>,
        cfg: &OutlierConfig,
        exclude: Option<&Backend>,
    ) -> Option<Pick<'_>> {
        // One group (the common case) needs no ring walk and no allocation.
        let ring_order;
        let order: &[usize] = if self.groups.len() == 1 {
            &[0]
        } else {
            ring_order = self.ring.order(key);
            &ring_order
        };
        let first = *order.first()?;
        for &g in order {
            let group = &self.groups[g];
            let (picked, panic) = backend::pick(&group.backends, now, cfg, exclude);
            if let Some(b) = picked {
                return Some(Pick {
                    group,
                    backend: Some(b),
                    panic,
                });
            }
        }
        Some(Pick {
            group: &self.groups[first],
            backend: None,
            panic: false,
        })
    }

    /// `host/path` for messages (`*` for any host).
    pub fn name(&self) -> String {
        format!(
            "{}{}",
            self.host.as_deref().unwrap_or("*"),
            if self.path == "/" { "" } else { &self.path }
        )
    }
}

/// Every route, by host, and the refused ones.
#[derive(Debug, Default)]
pub struct RouteTable {
    by_host: HashMap<String, Vec<Arc<Route>>>,
    any_host: Vec<Arc<Route>>,
    /// Every route, by host then path.
    pub routes: Vec<Arc<Route>>,
    /// What was refused, by app.
    pub refused: Vec<Refused>,
    /// When it was built.
    pub built_at: Option<DateTime<Utc>>,
}

impl RouteTable {
    /// The route of a request: its host's routes first (the longest matching path prefix),
    /// then the routes of any host. `host` may carry a port; case does not matter.
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        let host = normalized_host(host);
        let longest = |routes: &'_ [Arc<Route>]| -> Option<usize> {
            routes
                .iter()
                .position(|r| labels::path_matches(&r.path, path))
        };
        if let Some(rs) = self.by_host.get(host.as_ref()) {
            if let Some(i) = longest(rs) {
                return Some(&rs[i]);
            }
        }
        longest(&self.any_host).map(|i| &self.any_host[i])
    }

    /// Who served `(host, path)`: the service, or the app.
    fn owner(&self, host: &Option<String>, path: &str) -> Option<String> {
        self.routes
            .iter()
            .find(|r| &r.host == host && r.path == path)
            .map(|r| r.owner.clone())
    }
}

/// A request's `Host` as routes keep it: lowercase, without port or trailing dot.
pub fn normalize_host(host: &str) -> String {
    normalized_host(host).into_owned()
}

/// [`normalize_host`] without a copy when the host is already in that form.
fn normalized_host(host: &str) -> std::borrow::Cow<'_, str> {
    let host = host.trim();
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
    };
    let name = name.trim_end_matches('.');
    if name.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(name.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(name)
    }
}

/// The state that outlives a table: backends, app and service trackers, by ID, so a table
/// swap keeps in-flight counts, statistics and ejections. Entries no table uses any more are
/// retired, reported one last time, then dropped.
#[derive(Debug, Default)]
pub struct Registry {
    /// By (task, address).
    pub backends: HashMap<(String, String), Entry<Backend>>,
    /// By app ID.
    pub apps: HashMap<String, Entry<Tracker>>,
    /// By Marathon group.
    pub services: HashMap<String, Entry<Tracker>>,
    /// Where each app's Prometheus handles come from.
    pub metrics: GatewayMetrics,
    /// Each app's handles, by app ID (kept while the app is routed).
    pub handles: HashMap<String, Arc<AppHandles>>,
}

/// A registry entry.
#[derive(Debug)]
pub struct Entry<T> {
    /// The shared value.
    pub value: Arc<T>,
    /// No table uses it since this build (it goes after its last report).
    pub retired: bool,
}

fn entry<K: std::hash::Hash + Eq + Clone, T>(
    map: &mut HashMap<K, Entry<T>>,
    used: &mut HashSet<K>,
    key: K,
    make: impl FnOnce() -> T,
) -> Arc<T> {
    used.insert(key.clone());
    let e = map.entry(key).or_insert_with(|| Entry {
        value: Arc::new(make()),
        retired: false,
    });
    e.retired = false;
    Arc::clone(&e.value)
}

/// A claim of one app on one (host, path).
struct Claim<'a> {
    app: &'a AppView,
    spec: &'a RouteSpec,
}

/// Build the table for `apps`. `prev` decides contested routes (its owner keeps them);
/// `reg` keeps backends and trackers across builds (unused ones are marked retired).
pub fn build(
    apps: &[AppView],
    prev: &RouteTable,
    reg: &mut Registry,
    filter: &GroupFilter,
    now: Instant,
    wall: DateTime<Utc>,
) -> RouteTable {
    let mut refused = Vec::new();
    let mut specs: Vec<(&AppView, RouteSpec)> = Vec::new();
    for app in apps {
        match labels::parse(&app.labels, app.ports, filter) {
            Ok(Some(spec)) => specs.push((app, spec)),
            Ok(None) => {}
            Err(reason) => refused.push(Refused {
                app: app.id.clone(),
                host: None,
                path: None,
                reason,
            }),
        }
    }
    // (host, path) → claims, in a stable order.
    let mut claims: BTreeMap<(Option<String>, String), Vec<Claim<'_>>> = BTreeMap::new();
    for (app, spec) in &specs {
        let hosts: Vec<Option<String>> = if spec.hosts.is_empty() {
            vec![None]
        } else {
            spec.hosts.iter().cloned().map(Some).collect()
        };
        for h in hosts {
            claims
                .entry((h, spec.path.clone()))
                .or_default()
                .push(Claim { app, spec });
        }
    }
    let mut used_backends = HashSet::new();
    let mut used_apps = HashSet::new();
    let mut used_services = HashSet::new();
    let mut routes = Vec::new();
    for ((host, path), mut claimants) in claims {
        claimants.sort_by(|a, b| a.app.id.cmp(&b.app.id));
        // Claimants form units: the apps of one Marathon group (not the root) share a route
        // as its instance groups; any other app is a unit alone.
        let unit_of = |c: &Claim<'_>| {
            let g = group_of(&c.app.id);
            if g == "/" {
                c.app.id.clone()
            } else {
                g
            }
        };
        let mut units: BTreeMap<String, Vec<Claim<'_>>> = BTreeMap::new();
        for c in claimants {
            units.entry(unit_of(&c)).or_default().push(c);
        }
        let winner = match prev.owner(&host, &path) {
            Some(owner) if units.contains_key(&owner) => owner,
            _ => units.keys().next().cloned().unwrap_or_default(),
        };
        let where_ = format!(
            "{}{}",
            host.as_deref().unwrap_or("any host, path "),
            if host.is_some() && path == "/" {
                String::new()
            } else {
                path.clone()
            }
        );
        let mut members = Vec::new();
        for (unit, cs) in units {
            if unit == winner {
                members = cs;
            } else {
                for c in cs {
                    refused.push(Refused {
                        app: c.app.id.clone(),
                        host: host.clone(),
                        path: Some(path.clone()),
                        reason: format!(
                            "{where_} is already routed to {winner}: two apps cannot share a host and path unless they are instance groups of one Marathon group; change this app's labels, or remove them from the other"
                        ),
                    });
                }
            }
        }
        let service = (members.len() > 1).then(|| winner.clone());
        let lead = &members[0];
        let groups: Vec<Group> = members
            .iter()
            .map(|c| {
                let app = c.app;
                let backends = app
                    .tasks
                    .iter()
                    .filter(|t| t.running && (!app.health_checks || t.healthy == Some(true)))
                    .filter_map(|t| {
                        let port = *t.ports.get(c.spec.port_index)?;
                        let addr = format!("{}:{port}", bracket_v6(&t.host));
                        Some(entry(
                            &mut reg.backends,
                            &mut used_backends,
                            (t.id.clone(), addr.clone()),
                            || Backend::new(&t.id, &app.id, &t.node, &addr, now),
                        ))
                    })
                    .collect();
                let prom = match reg.handles.get(&app.id) {
                    Some(h) => Arc::clone(h),
                    None => {
                        let h = Arc::new(reg.metrics.app(&app.id));
                        reg.handles.insert(app.id.clone(), Arc::clone(&h));
                        h
                    }
                };
                Group {
                    app: app.id.clone(),
                    backends,
                    prom,
                    tasks: app.tasks.len(),
                    stats: entry(&mut reg.apps, &mut used_apps, app.id.clone(), || {
                        Tracker::new(now)
                    }),
                }
            })
            .collect();
        let service_stats = service.as_ref().map(|s| {
            entry(&mut reg.services, &mut used_services, s.clone(), || {
                Tracker::new(now)
            })
        });
        let ring = Ring::new(&groups.iter().map(|g| g.app.as_str()).collect::<Vec<_>>());
        routes.push(Arc::new(Route {
            host,
            path,
            service,
            owner: winner,
            hash_key: lead.spec.hash_key.clone(),
            source: lead.spec.source,
            groups,
            service_stats,
            ring,
        }));
    }
    for (k, e) in reg.backends.iter_mut() {
        e.retired = !used_backends.contains(k);
    }
    for (k, e) in reg.apps.iter_mut() {
        e.retired = !used_apps.contains(k);
    }
    for (k, e) in reg.services.iter_mut() {
        e.retired = !used_services.contains(k);
    }
    reg.handles.retain(|app, _| used_apps.contains(app));
    let mut by_host: HashMap<String, Vec<Arc<Route>>> = HashMap::new();
    let mut any_host = Vec::new();
    for r in &routes {
        match &r.host {
            Some(h) => by_host.entry(h.clone()).or_default().push(Arc::clone(r)),
            None => any_host.push(Arc::clone(r)),
        }
    }
    // Longest prefix first.
    let longest_first =
        |v: &mut Vec<Arc<Route>>| v.sort_by_key(|r| std::cmp::Reverse(r.path.len()));
    for v in by_host.values_mut() {
        longest_first(v);
    }
    longest_first(&mut any_host);
    refused.sort_by(|a, b| (&a.app, &a.host, &a.path).cmp(&(&b.app, &b.host, &b.path)));
    RouteTable {
        by_host,
        any_host,
        routes,
        refused,
        built_at: Some(wall),
    }
}

fn bracket_v6(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::{HAPROXY_0_PATH, HAPROXY_0_VHOST, HOST, PATH, PORT_INDEX};

    fn app(id: &str, labels: &[(&str, &str)], tasks: usize) -> AppView {
        AppView {
            id: id.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ports: 1,
            health_checks: false,
            tasks: (0..tasks)
                .map(|i| TaskView {
                    id: format!("{}.t{i}", id.trim_start_matches('/')),
                    host: "127.0.0.1".into(),
                    ports: vec![10_000 + i as u16],
                    node: "n1".into(),
                    running: true,
                    healthy: None,
                })
                .collect(),
        }
    }

    fn table(apps: &[AppView]) -> RouteTable {
        build(
            apps,
            &RouteTable::default(),
            &mut Registry::default(),
            &GroupFilter::All,
            Instant::now(),
            Utc::now(),
        )
    }

    fn routed<'a>(t: &'a RouteTable, host: &str, path: &str) -> Option<&'a str> {
        t.find(host, path).map(|r| r.groups[0].app.as_str())
    }

    #[test]
    fn host_then_longest_path_prefix() {
        let t = table(&[
            app("/web", &[(HOST, "shop.example.com")], 1),
            app("/api", &[(HOST, "shop.example.com"), (PATH, "/api")], 1),
            app("/v2", &[(HOST, "shop.example.com"), (PATH, "/api/v2")], 1),
            app("/any", &[(PATH, "/")], 1),
            app(
                "/mlb",
                &[(HAPROXY_0_VHOST, "a.test,b.test"), (HAPROXY_0_PATH, "/x")],
                1,
            ),
        ]);
        assert!(t.refused.is_empty(), "{:?}", t.refused);
        assert_eq!(routed(&t, "Shop.Example.com:8000", "/"), Some("/web"));
        assert_eq!(routed(&t, "shop.example.com", "/apix"), Some("/web"));
        assert_eq!(routed(&t, "shop.example.com", "/api/v1"), Some("/api"));
        assert_eq!(routed(&t, "shop.example.com", "/api/v2/x"), Some("/v2"));
        assert_eq!(routed(&t, "other", "/"), Some("/any"));
        assert_eq!(routed(&t, "b.test", "/x/y"), Some("/mlb"));
        assert_eq!(
            routed(&t, "b.test", "/y"),
            Some("/any"),
            "any-host routes after the host's own"
        );
        let t = table(&[app("/web", &[(HOST, "shop")], 1)]);
        assert!(t.find("other", "/").is_none());
    }

    #[test]
    fn backends_are_running_and_healthy_tasks() {
        let mut a = app("/web", &[(HOST, "h")], 4);
        a.health_checks = true;
        a.tasks[0].healthy = Some(true);
        a.tasks[1].healthy = Some(false);
        a.tasks[2].healthy = None; // not checked yet
        a.tasks[3].healthy = Some(true);
        a.tasks[3].running = false;
        let t = table(&[a]);
        let r = t.find("h", "/").unwrap();
        let addrs: Vec<&str> = r.groups[0]
            .backends
            .iter()
            .map(|b| b.addr.as_str())
            .collect();
        assert_eq!(addrs, ["127.0.0.1:10000"]);
        assert_eq!(r.groups[0].tasks, 4);
    }

    #[test]
    fn a_bad_label_refuses_that_route_only() {
        let mut two_ports = app("/p", &[(HOST, "p"), (PORT_INDEX, "1")], 1);
        two_ports.ports = 2;
        two_ports.tasks[0].ports = vec![1, 2];
        let t = table(&[
            app("/ok", &[(HOST, "ok")], 1),
            app("/bad", &[(HOST, "bad host")], 1),
            app("/range", &[(HOST, "r"), (PORT_INDEX, "1")], 1),
            two_ports,
        ]);
        assert_eq!(routed(&t, "ok", "/"), Some("/ok"));
        assert_eq!(
            t.find("p", "/").unwrap().groups[0].backends[0].addr,
            "127.0.0.1:2"
        );
        let reasons: Vec<(&str, &str)> = t
            .refused
            .iter()
            .map(|r| (r.app.as_str(), r.reason.as_str()))
            .collect();
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert_eq!(reasons[0].0, "/bad");
        assert!(reasons[0].1.contains("not a host name"));
        assert_eq!(reasons[1].0, "/range");
        assert!(reasons[1].1.contains("out of range"));
    }

    #[test]
    fn two_apps_on_one_route_the_first_keeps_it() {
        let a = app("/b-first", &[(HOST, "h")], 1);
        let b = app("/a-second", &[(HOST, "h")], 1);
        let mut reg = Registry::default();
        let now = Instant::now();
        let t1 = build(
            std::slice::from_ref(&a),
            &RouteTable::default(),
            &mut reg,
            &GroupFilter::All,
            now,
            Utc::now(),
        );
        let t2 = build(
            &[a.clone(), b.clone()],
            &t1,
            &mut reg,
            &GroupFilter::All,
            now,
            Utc::now(),
        );
        assert_eq!(
            routed(&t2, "h", "/"),
            Some("/b-first"),
            "the incumbent keeps it"
        );
        assert_eq!(t2.refused.len(), 1);
        assert_eq!(t2.refused[0].app, "/a-second");
        assert!(
            t2.refused[0].reason.contains("already routed to /b-first"),
            "{}",
            t2.refused[0].reason
        );
        // Without history, the smallest app ID wins.
        let t3 = table(&[a, b]);
        assert_eq!(routed(&t3, "h", "/"), Some("/a-second"));
    }

    #[test]
    fn apps_of_one_marathon_group_are_instance_groups_of_one_route() {
        let t = table(&[
            app("/shop/api/g1", &[(HOST, "api")], 2),
            app("/shop/api/g2", &[(HOST, "api")], 1),
            app("/zz", &[(HOST, "api")], 1),
        ]);
        let r = t.find("api", "/").unwrap();
        assert_eq!(r.service.as_deref(), Some("/shop/api"));
        assert_eq!(r.groups.len(), 2);
        assert_eq!(t.refused.len(), 1);
        assert_eq!(t.refused[0].app, "/zz");
        // Keys stick to a group.
        let cfg = OutlierConfig::default();
        let now = Utc::now();
        for k in 0..50u64 {
            let key = crate::balance::hash(&k.to_le_bytes());
            let g = r.pick(key, now, &cfg, None).unwrap().group.app.clone();
            for _ in 0..5 {
                assert_eq!(r.pick(key, now, &cfg, None).unwrap().group.app, g);
            }
        }
        // A single app under a group is a plain route, and keeps it against a newcomer.
        let mut reg = Registry::default();
        let web = app("/shop/web", &[(HOST, "w")], 1);
        let t1 = build(
            std::slice::from_ref(&web),
            &RouteTable::default(),
            &mut reg,
            &GroupFilter::All,
            Instant::now(),
            Utc::now(),
        );
        assert_eq!(t1.find("w", "/").unwrap().service, None);
        let t2 = build(
            &[web, app("/aaa", &[(HOST, "w")], 1)],
            &t1,
            &mut reg,
            &GroupFilter::All,
            Instant::now(),
            Utc::now(),
        );
        assert_eq!(routed(&t2, "w", "/"), Some("/shop/web"));
        assert_eq!(t2.refused[0].app, "/aaa");
    }

    #[test]
    fn a_group_without_backends_sends_its_keys_to_the_next() {
        let t = table(&[
            app("/s/g1", &[(HOST, "h")], 0),
            app("/s/g2", &[(HOST, "h")], 1),
        ]);
        let r = t.find("h", "/").unwrap();
        let cfg = OutlierConfig::default();
        for k in 0..20u64 {
            let p = r.pick(k, Utc::now(), &cfg, None).unwrap();
            assert_eq!(p.backend.unwrap().task, "s/g2.t0");
        }
        let empty = table(&[app("/e", &[(HOST, "e")], 0)]);
        let p = empty
            .find("e", "/")
            .unwrap()
            .pick(1, Utc::now(), &cfg, None)
            .unwrap();
        assert!(p.backend.is_none());
        assert_eq!(p.group.app, "/e");
    }

    #[test]
    fn backends_and_their_state_survive_a_rebuild() {
        let mut reg = Registry::default();
        let now = Instant::now();
        let a = app("/web", &[(HOST, "h")], 2);
        let t1 = build(
            std::slice::from_ref(&a),
            &RouteTable::default(),
            &mut reg,
            &GroupFilter::All,
            now,
            Utc::now(),
        );
        let b1 = Arc::clone(&t1.find("h", "/").unwrap().groups[0].backends[0]);
        b1.stats.start(now);
        let mut a2 = a.clone();
        a2.tasks.pop();
        let t2 = build(&[a2], &t1, &mut reg, &GroupFilter::All, now, Utc::now());
        let b2 = &t2.find("h", "/").unwrap().groups[0].backends[0];
        assert!(Arc::ptr_eq(&b1, b2));
        assert_eq!(b2.in_flight(), 1);
        let retired: Vec<_> = reg
            .backends
            .values()
            .filter(|e| e.retired)
            .map(|e| e.value.task.clone())
            .collect();
        assert_eq!(retired, ["web.t1"]);
    }

    #[test]
    fn hosts_normalize() {
        assert_eq!(normalize_host("Shop.Example.COM:8000"), "shop.example.com");
        assert_eq!(normalize_host("shop.example.com."), "shop.example.com");
        assert_eq!(normalize_host("[::1]:80"), "::1");
        assert_eq!(normalize_host("h"), "h");
    }
}
