//! Annotation templates, in Jinja syntax (minijinja): `{{ value | round(1) }}`,
//! `{{ labels.instance }}`, `{{ links.logs }}`. Undefined names are errors, so a typo is
//! refused when the rule loads; a template that still fails when an alert is sent is sent as
//! its raw text and counted.
use std::sync::OnceLock;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::alert::LabelSet;

/// What a template sees.
#[derive(Debug, Clone, Serialize)]
pub struct Context<'a> {
    /// The rule.
    pub rule: &'a str,
    /// The alert's labels.
    pub labels: &'a LabelSet,
    /// The value that made it fire (`None`: absence rules).
    pub value: Option<f64>,
    /// The rule's threshold, if it has one.
    pub threshold: Option<f64>,
    /// `warning`, `critical`, `info`.
    pub severity: &'a str,
    /// Links into Drover's UI.
    pub links: Links,
}

/// Links into the UI (absolute when the UI's URL is known).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Links {
    /// The logs of the alert's app (with the rule's query for log rules).
    pub logs: String,
    /// The app's page with its charts.
    pub chart: String,
    /// The Alerts page.
    pub alerts: String,
}

impl Links {
    /// The links for an app (may be empty) and an optional log query, on the UI at `ui`.
    pub fn new(ui: &str, app: Option<&str>, query: Option<&str>) -> Self {
        let ui = ui.trim_end_matches('/');
        let mut logs = format!("{ui}/#/logs?since=15m");
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            logs.push_str("&q=");
            logs.push_str(&encode(q));
        }
        let chart = match app.filter(|a| !a.is_empty()) {
            Some(a) => {
                logs.push_str("&app=");
                logs.push_str(&encode(a));
                format!(
                    "{ui}/#/app{}",
                    a.split('/').map(encode).collect::<Vec<_>>().join("/")
                )
            }
            None => format!("{ui}/#/apps"),
        };
        Self {
            logs,
            chart,
            alerts: format!("{ui}/#/alerts"),
        }
    }
}

/// Percent-encodes a URL query or path part.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env
    })
}

/// Renders `src` with `ctx`; the error says what is wrong and where.
pub fn render(src: &str, ctx: &Context<'_>) -> Result<String, String> {
    if !src.contains("{{") && !src.contains("{%") {
        return Ok(src.to_string());
    }
    env().render_str(src, ctx).map_err(|e| {
        let mut msg = e.to_string();
        if let Some(d) = e.detail() {
            if !msg.contains(d) {
                msg = format!("{msg}: {d}");
            }
        }
        msg
    })
}

/// Checks `src` at load: it must parse and render with a sample alert of the rule (labels
/// `label_names`, value 0); names it does not know are errors.
pub fn check(src: &str, rule: &str, label_names: &[String], has_value: bool) -> Result<(), String> {
    let labels: LabelSet = label_names
        .iter()
        .map(|n| (n.clone(), "x".to_string()))
        .collect();
    let ctx = Context {
        rule,
        labels: &labels,
        value: has_value.then_some(0.0),
        threshold: Some(0.0),
        severity: "warning",
        links: Links::new("http://127.0.0.1:8080", Some("/x"), None),
    };
    render(src, &ctx).map(|_| ()).map_err(|e| {
        format!(
            "{e} (a template sees: rule, labels.<{}>, value, threshold, severity, links.logs, links.chart, links.alerts)",
            label_names.join("|")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_values_labels_and_links() {
        let labels: LabelSet = [("app".to_string(), "/shop".to_string())].into();
        let ctx = Context {
            rule: "HighCpu",
            labels: &labels,
            value: Some(93.456),
            threshold: Some(90.0),
            severity: "critical",
            links: Links::new("http://h:8080/", Some("/shop"), Some("level:error")),
        };
        assert_eq!(
            render(
                "{{ rule }} {{ labels.app }} {{ value | round(1) }} > {{ threshold }}",
                &ctx
            )
            .unwrap(),
            "HighCpu /shop 93.5 > 90.0"
        );
        assert_eq!(
            render("{{ links.chart }}", &ctx).unwrap(),
            "http://h:8080/#/app/shop"
        );
        assert_eq!(
            render("{{ links.logs }}", &ctx).unwrap(),
            "http://h:8080/#/logs?since=15m&q=level%3Aerror&app=%2Fshop"
        );
        assert_eq!(render("plain text", &ctx).unwrap(), "plain text");
    }

    #[test]
    fn typos_and_syntax_errors_are_refused_at_check() {
        let names = vec!["app".to_string(), "alertname".to_string()];
        check("{{ labels.app }} {{ value }}", "R", &names, true).unwrap();
        let e = check("{{ labels.instance }}", "R", &names, true).unwrap_err();
        assert!(e.contains("undefined"), "{e}");
        assert!(e.contains("labels.<app|alertname>"), "{e}");
        let e = check("{{ lables.app }}", "R", &names, true).unwrap_err();
        assert!(e.contains("undefined"), "{e}");
        assert!(check("{{ value ", "R", &names, true).is_err());
    }
}
