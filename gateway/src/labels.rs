//! What an app's labels ask of the gateway: Drover's own (`drover.gateway.*`) or
//! marathon-lb's (`HAPROXY_GROUP`, `HAPROXY_0_VHOST`, `HAPROXY_0_PATH`), validated. Pure.
use std::collections::BTreeMap;

use serde::Serialize;

/// Comma-separated virtual hosts the app answers on (Drover's).
pub const HOST: &str = "drover.gateway.host";
/// The path prefix the app answers on (Drover's; default `/`).
pub const PATH: &str = "drover.gateway.path";
/// Which of the task's ports receives the traffic (Drover's; default 0).
pub const PORT_INDEX: &str = "drover.gateway.port-index";
/// How a request picks one of the instance groups sharing a route: `ip` (default),
/// `header:NAME` or `cookie:NAME`.
pub const HASH_KEY: &str = "drover.gateway.hash-key";
/// marathon-lb: which load balancers expose the app.
pub const HAPROXY_GROUP: &str = "HAPROXY_GROUP";
/// marathon-lb: comma-separated virtual hosts of the app's first port.
pub const HAPROXY_0_VHOST: &str = "HAPROXY_0_VHOST";
/// marathon-lb: the path prefix of the app's first port.
pub const HAPROXY_0_PATH: &str = "HAPROXY_0_PATH";

/// Which labels a route came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelSource {
    /// `drover.gateway.*`.
    Drover,
    /// marathon-lb's `HAPROXY_*`.
    MarathonLb,
}

/// The key a request is hashed on to pick an instance group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum HashKey {
    /// The client's IP address.
    Ip,
    /// A request header (lowercase name).
    Header(String),
    /// A cookie.
    Cookie(String),
}

impl HashKey {
    /// Parses `ip`, `header:NAME` or `cookie:NAME`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("ip") {
            return Ok(HashKey::Ip);
        }
        let bad =
            || format!("{HASH_KEY}={s:?} is not a hash key: write ip, header:NAME or cookie:NAME");
        let (kind, name) = s.split_once(':').ok_or_else(bad)?;
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(bad());
        }
        match kind.trim().to_ascii_lowercase().as_str() {
            "header" => Ok(HashKey::Header(name.to_ascii_lowercase())),
            "cookie" => Ok(HashKey::Cookie(name.to_string())),
            _ => Err(bad()),
        }
    }
}

impl std::fmt::Display for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HashKey::Ip => f.write_str("ip"),
            HashKey::Header(n) => write!(f, "header:{n}"),
            HashKey::Cookie(n) => write!(f, "cookie:{n}"),
        }
    }
}

/// What an app's labels ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    /// Lowercase host names; empty = any host.
    pub hosts: Vec<String>,
    /// Path prefix, `/` or `/a/b` (no trailing slash).
    pub path: String,
    /// Index into the task's ports.
    pub port_index: usize,
    /// How a request picks an instance group.
    pub hash_key: HashKey,
    /// Which labels it came from.
    pub source: LabelSource,
}

/// Which marathon-lb groups this gateway serves (`--haproxy-group`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupFilter {
    /// Every app, whatever its `HAPROXY_GROUP` (marathon-lb's `--group '*'`).
    All,
    /// Only apps whose `HAPROXY_GROUP` (comma-separated) names one of these; apps without
    /// the label are served too.
    Only(Vec<String>),
}

impl GroupFilter {
    /// From `--haproxy-group` values (`*` = all).
    pub fn from_args(groups: &[String]) -> Self {
        if groups.is_empty() || groups.iter().any(|g| g.trim() == "*") {
            GroupFilter::All
        } else {
            GroupFilter::Only(groups.iter().map(|g| g.trim().to_string()).collect())
        }
    }

    fn serves(&self, label: Option<&String>) -> bool {
        match (self, label) {
            (GroupFilter::All, _) | (_, None) => true,
            (GroupFilter::Only(mine), Some(theirs)) => theirs
                .split(',')
                .any(|g| mine.iter().any(|m| m == g.trim())),
        }
    }
}

/// The route an app's labels ask for: `Ok(None)` when they ask for none (or name a
/// marathon-lb group this gateway does not serve), `Err(reason)` when they are invalid.
/// `ports` is how many ports each task of the app has.
pub fn parse(
    labels: &BTreeMap<String, String>,
    ports: usize,
    groups: &GroupFilter,
) -> Result<Option<RouteSpec>, String> {
    let drover = labels.contains_key(HOST) || labels.contains_key(PATH);
    let mlb = labels.contains_key(HAPROXY_0_VHOST) || labels.contains_key(HAPROXY_0_PATH);
    let (host_label, path_label, source) = if drover {
        (HOST, PATH, LabelSource::Drover)
    } else if mlb {
        if !groups.serves(labels.get(HAPROXY_GROUP)) {
            return Ok(None);
        }
        (HAPROXY_0_VHOST, HAPROXY_0_PATH, LabelSource::MarathonLb)
    } else {
        return Ok(None);
    };
    let mut hosts = Vec::new();
    if let Some(v) = labels.get(host_label) {
        for h in v.split(',').map(str::trim).filter(|h| !h.is_empty()) {
            let h = validate_host(h).map_err(|e| format!("{host_label}={v:?}: {e}"))?;
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
    }
    let path = match labels.get(path_label) {
        Some(p) => validate_path(p).map_err(|e| format!("{path_label}={p:?}: {e}"))?,
        None => "/".to_string(),
    };
    let port_index = match (source, labels.get(PORT_INDEX)) {
        (LabelSource::Drover, Some(v)) => v.trim().parse::<usize>().map_err(|_| {
            format!("{PORT_INDEX}={v:?} is not a port index: write 0 for the first port")
        })?,
        _ => 0,
    };
    if port_index >= ports {
        return Err(format!(
            "port index {port_index} is out of range: the app has {ports} port{} (indexes from 0); fix {PORT_INDEX} or the app's ports",
            if ports == 1 { "" } else { "s" }
        ));
    }
    let hash_key = match labels.get(HASH_KEY) {
        Some(v) => HashKey::parse(v)?,
        None => HashKey::Ip,
    };
    Ok(Some(RouteSpec {
        hosts,
        path,
        port_index,
        hash_key,
        source,
    }))
}

/// A host name as routes keep it: lowercase, letters, digits, `-` and `.`, labels of 1 to 63
/// characters, at most 253 in all; no port, no scheme, no wildcard.
pub fn validate_host(h: &str) -> Result<String, String> {
    let h = h.trim().trim_end_matches('.').to_ascii_lowercase();
    if h.is_empty() {
        return Err("empty host name".into());
    }
    if h.contains("://") || h.contains('/') {
        return Err(format!(
            "{h:?} is not a host name: give only the name, e.g. shop.example.com (no scheme, no path)"
        ));
    }
    if h.contains(':') {
        return Err(format!(
            "{h:?} is not a host name: leave out the port (the gateway routes every port it listens on)"
        ));
    }
    if h.len() > 253 {
        return Err(format!("{h:?} is longer than 253 characters"));
    }
    for label in h.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "{h:?} is not a host name: each dot-separated part is 1-63 letters, digits or inner dashes"
            ));
        }
    }
    Ok(h)
}

/// A path prefix as routes keep it: starts with `/`, no query, fragment, whitespace or
/// `..` segment; trailing slashes removed (except for `/`).
pub fn validate_path(p: &str) -> Result<String, String> {
    let p = p.trim();
    if !p.starts_with('/') {
        return Err("a path prefix starts with /, e.g. /api".into());
    }
    if p.contains(['?', '#']) {
        return Err("a path prefix has no query (?) or fragment (#)".into());
    }
    if p.bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err("a path prefix has no spaces or control characters".into());
    }
    if p.split('/').any(|s| s == "..") {
        return Err("a path prefix has no .. segment".into());
    }
    let trimmed = p.trim_end_matches('/');
    Ok(if trimmed.is_empty() {
        "/".into()
    } else {
        trimmed.into()
    })
}

/// Whether `path` (a request's) is under `prefix` (a route's), segment by segment: `/api`
/// matches `/api`, `/api/` and `/api/x`, not `/apix`.
pub fn path_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// RFC 7230 token characters (header and cookie names).
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn drover_labels() {
        let spec = parse(
            &labels(&[
                (HOST, "Shop.Example.com, api.example.com"),
                (PATH, "/api/"),
                (PORT_INDEX, "1"),
                (HASH_KEY, "header:X-User"),
            ]),
            2,
            &GroupFilter::All,
        )
        .unwrap()
        .unwrap();
        assert_eq!(spec.hosts, ["shop.example.com", "api.example.com"]);
        assert_eq!(spec.path, "/api");
        assert_eq!(spec.port_index, 1);
        assert_eq!(spec.hash_key, HashKey::Header("x-user".into()));
        assert_eq!(spec.source, LabelSource::Drover);
    }

    #[test]
    fn marathon_lb_labels_and_groups() {
        let l = labels(&[
            (HAPROXY_GROUP, "external"),
            (HAPROXY_0_VHOST, "a.example.com,b.example.com"),
            (HAPROXY_0_PATH, "/shop"),
        ]);
        let spec = parse(&l, 1, &GroupFilter::All).unwrap().unwrap();
        assert_eq!(spec.hosts, ["a.example.com", "b.example.com"]);
        assert_eq!(spec.path, "/shop");
        assert_eq!(spec.source, LabelSource::MarathonLb);
        let only = |g: &str| GroupFilter::from_args(&[g.to_string()]);
        assert!(parse(&l, 1, &only("external")).unwrap().is_some());
        assert_eq!(parse(&l, 1, &only("internal")).unwrap(), None);
        assert!(parse(&l, 1, &only("*")).unwrap().is_some());
    }

    #[test]
    fn no_labels_no_route() {
        assert_eq!(
            parse(&labels(&[("x", "y")]), 1, &GroupFilter::All).unwrap(),
            None
        );
        // A path alone routes on any host.
        let spec = parse(&labels(&[(PATH, "/x")]), 1, &GroupFilter::All)
            .unwrap()
            .unwrap();
        assert!(spec.hosts.is_empty());
    }

    #[test]
    fn bad_labels_say_what_is_wrong() {
        let cases = [
            (vec![(HOST, "shop.example.com:8080")], "leave out the port"),
            (vec![(HOST, "http://shop")], "no scheme"),
            (vec![(HOST, "bad_host")], "not a host name"),
            (vec![(HOST, "-a.com")], "not a host name"),
            (vec![(HOST, "a"), (PATH, "api")], "starts with /"),
            (vec![(HOST, "a"), (PATH, "/a?b")], "no query"),
            (vec![(HOST, "a"), (PATH, "/a/../b")], ".. segment"),
            (vec![(HOST, "a"), (PORT_INDEX, "x")], "not a port index"),
            (vec![(HOST, "a"), (PORT_INDEX, "3")], "out of range"),
            (vec![(HOST, "a"), (HASH_KEY, "body")], "not a hash key"),
            (vec![(HOST, "a"), (HASH_KEY, "header:")], "not a hash key"),
        ];
        for (pairs, want) in cases {
            let err = parse(&labels(&pairs), 1, &GroupFilter::All).unwrap_err();
            assert!(err.contains(want), "{pairs:?}: {err}");
        }
    }

    #[test]
    fn path_prefixes_match_by_segment() {
        assert!(path_matches("/", "/anything"));
        assert!(path_matches("/api", "/api"));
        assert!(path_matches("/api", "/api/"));
        assert!(path_matches("/api", "/api/v1/x"));
        assert!(!path_matches("/api", "/apix"));
        assert!(!path_matches("/api", "/"));
    }
}
