//! The method and path of every route a `Router` serves, read from the router itself.
//!
//! axum has no route introspection API, but its `Debug` output of a `Router` lists each
//! route's path (`Node { paths: {RouteId(n): "/path"} }`) and, per route, which method
//! handlers are set (`MethodRouter { get: BoxedHandler, post: None, … }`). This reads that,
//! so the list really is what is served: a route added to any component shows up without
//! anyone registering it. The format belongs to axum (pinned in Cargo.lock); the unit
//! tests below fail loudly if an upgrade changes it.
use std::collections::BTreeMap;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// One route: its path (with `{param}` and `{*rest}` captures) and methods.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RouteInfo {
    /// The path pattern.
    pub path: String,
    /// The methods it answers (`*`: any method, from `any()` or a nested service).
    pub methods: Vec<String>,
}

const METHODS: [&str; 9] = [
    "get", "head", "delete", "options", "patch", "post", "put", "trace", "connect",
];

/// The routes of `router` (sorted by path). Empty only if the router has none — or if axum's
/// `Debug` format changed, which the tests catch.
pub fn served_routes<S>(router: &axum::Router<S>) -> Vec<RouteInfo> {
    let dbg = format!("{router:?}");
    // Only the path router: the fallback router has paths of its own (`/` and a catch-all).
    let main = dbg.split("fallback_router:").next().unwrap_or("");
    let path_re = Regex::new(r#"RouteId\((\d+)\): "((?:[^"\\]|\\.)*)""#).expect("valid regex");
    let paths: BTreeMap<u32, String> = path_re
        .captures_iter(main)
        .filter_map(|c| Some((c[1].parse().ok()?, c[2].replace("\\\"", "\""))))
        .collect();
    let ep_re = Regex::new(r"RouteId\((\d+)\): (MethodRouter|Route)\(").expect("valid regex");
    let starts: Vec<(usize, u32, bool)> = ep_re
        .captures_iter(main)
        .filter_map(|c| {
            let m = c.get(0)?;
            Some((m.start(), c[1].parse().ok()?, &c[2] == "MethodRouter"))
        })
        .collect();
    let field_re =
        Regex::new(r"\b(get|head|delete|options|patch|post|put|trace|connect|fallback): (\w+)")
            .expect("valid regex");
    let mut out = Vec::new();
    for (i, (start, id, is_method_router)) in starts.iter().enumerate() {
        let end = starts.get(i + 1).map_or(main.len(), |s| s.0);
        let Some(path) = paths.get(id) else { continue };
        let methods = if *is_method_router {
            let seg = &main[*start..end];
            let mut ms = Vec::new();
            let mut any = false;
            for c in field_re.captures_iter(seg) {
                match (&c[1], &c[2]) {
                    ("fallback", "Default") | (_, "None") => {}
                    ("fallback", _) => any = true,
                    (m, _) if METHODS.contains(&m) => ms.push(m.to_ascii_uppercase()),
                    _ => {}
                }
            }
            if any {
                vec!["*".to_string()]
            } else {
                ms
            }
        } else {
            vec!["*".to_string()]
        };
        out.push(RouteInfo {
            path: path.clone(),
            methods,
        });
    }
    out.sort();
    out
}

/// A concrete path for a pattern: each `{param}` and `{*rest}` replaced by `value`.
pub fn concrete_path(pattern: &str, value: &str) -> String {
    let re = Regex::new(r"\{\*?[^}]*\}").expect("valid regex");
    re.replace_all(pattern, value).into_owned()
}

#[cfg(test)]
mod tests {
    use axum::{
        routing::{any, delete, get, post, put},
        Router,
    };

    use super::*;

    async fn h() {}

    fn methods(routes: &[RouteInfo], path: &str) -> Vec<String> {
        routes
            .iter()
            .find(|r| r.path == path)
            .unwrap_or_else(|| panic!("{path} not found in {routes:?}"))
            .methods
            .clone()
    }

    #[test]
    fn every_route_and_method_of_a_merged_layered_router() {
        let a: Router = Router::new()
            .route("/v2/apps", get(h).post(h).put(h))
            .route("/v2/apps/{*id}", get(h).delete(h).patch(h))
            .with_state(());
        let b: Router = Router::new()
            .route("/api/x/{name}", put(h))
            .route("/api/y", post(h))
            .route("/api/z", delete(h))
            .route("/proxy", any(h))
            .nest("/nested", Router::new().route("/inner", post(h)));
        let app = Router::new()
            .route("/healthz", get(h))
            .merge(a)
            .merge(b)
            .fallback(h)
            .layer(axum::middleware::from_fn(
                |req: axum::extract::Request, next: axum::middleware::Next| next.run(req),
            ));
        let routes = served_routes(&app);
        assert_eq!(routes.len(), 8, "{routes:?}");
        assert_eq!(methods(&routes, "/v2/apps"), ["GET", "POST", "PUT"]);
        assert_eq!(
            methods(&routes, "/v2/apps/{*id}"),
            ["GET", "DELETE", "PATCH"]
        );
        assert_eq!(methods(&routes, "/api/x/{name}"), ["PUT"]);
        assert_eq!(methods(&routes, "/api/y"), ["POST"]);
        assert_eq!(methods(&routes, "/api/z"), ["DELETE"]);
        assert_eq!(methods(&routes, "/proxy"), ["*"]);
        assert_eq!(methods(&routes, "/nested/inner"), ["POST"]);
        // `get` answers HEAD too; the router lists GET.
        assert_eq!(methods(&routes, "/healthz"), ["GET"]);
    }

    #[test]
    fn concrete_paths() {
        assert_eq!(concrete_path("/v2/apps/{*id}", "x"), "/v2/apps/x");
        assert_eq!(
            concrete_path("/v1/nodes/{id}/{action}", "x"),
            "/v1/nodes/x/x"
        );
        assert_eq!(concrete_path("/plain", "x"), "/plain");
    }
}
