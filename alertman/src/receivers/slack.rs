//! A Slack incoming-webhook message with Block Kit blocks: a `header` (the title), a
//! `section` with the severity and the group's labels as fields, a `section` per alert
//! (labels, value, summary; at most 10, then a count), an `actions` block with buttons to the
//! logs, the charts and the Alerts page, and a `context` line. `text` is the fallback shown in
//! notifications.
use serde_json::{json, Value};

use crate::{
    receivers::{fmt_time, fmt_value, label_line, split, title},
    route::Notification,
    template::Links,
};

/// Block Kit limits: header text 150 characters, section text 3000.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

/// Escapes Slack's mrkdwn control characters.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

const MAX_ALERTS: usize = 10;

/// The JSON body.
pub fn payload(n: &Notification, ui_url: &str) -> Value {
    let title = title(n);
    let (firing, resolved) = split(n);
    let severity = n
        .alerts
        .first()
        .and_then(|a| a.labels.get("severity"))
        .cloned()
        .unwrap_or_else(|| "none".into());
    let icon = match (n.status, severity.as_str()) {
        ("resolved", _) => "✅",
        (_, "critical") => "🔥",
        (_, "warning") => "⚠️",
        _ => "ℹ️",
    };
    let mut fields =
        vec![json!({"type": "mrkdwn", "text": format!("*Severity*\n{}", esc(&severity))})];
    for (k, v) in &n.group_labels {
        fields.push(json!({"type": "mrkdwn", "text": format!("*{}*\n{}", esc(k), esc(v))}));
    }
    fields.truncate(10);
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": cut(&format!("{icon} {title}"), 150), "emoji": true}}),
        json!({"type": "section", "fields": fields}),
        json!({"type": "divider"}),
    ];
    for a in firing.iter().chain(resolved.iter()).take(MAX_ALERTS) {
        let state = if a.ends_at.is_some_and(|e| e <= n.at) {
            format!("resolved {}", fmt_time(a.ends_at.unwrap_or(n.at)))
        } else {
            format!("since {}", fmt_time(a.starts_at))
        };
        let mut text = format!(
            "*{}* · value *{}* · {state}",
            esc(&label_line(a)),
            fmt_value(a.value)
        );
        for key in ["summary", "description"] {
            if let Some(s) = a.annotations.get(key) {
                text.push('\n');
                text.push_str(&esc(s));
            }
        }
        blocks
            .push(json!({"type": "section", "text": {"type": "mrkdwn", "text": cut(&text, 3000)}}));
    }
    if n.alerts.len() > MAX_ALERTS {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("and {} more", n.alerts.len() - MAX_ALERTS)}]}));
    }
    let app = n
        .group_labels
        .get("app")
        .or_else(|| n.alerts.first().and_then(|a| a.labels.get("app")))
        .map(String::as_str);
    let links = Links::new(ui_url, app, None);
    blocks.push(json!({"type": "actions", "elements": [
        {"type": "button", "text": {"type": "plain_text", "text": "Logs"}, "url": links.logs},
        {"type": "button", "text": {"type": "plain_text", "text": "Charts"}, "url": links.chart},
        {"type": "button", "text": {"type": "plain_text", "text": "Alerts"}, "url": links.alerts},
    ]}));
    blocks.push(json!({"type": "context", "elements": [
        {"type": "mrkdwn", "text": format!("Drover Alertman · receiver {} · {}", esc(&n.receiver), fmt_time(n.at))}
    ]}));
    json!({ "text": title, "blocks": blocks })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receivers::tests::notification;

    #[test]
    fn block_kit_blocks() {
        let v = payload(&notification(), "http://h:8080");
        assert_eq!(v["text"], "[FIRING:2] HighCpu /shop");
        let types: Vec<&str> = v["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["type"].as_str().unwrap())
            .collect();
        assert_eq!(
            types,
            [
                "header", "section", "divider", "section", "section", "section", "actions",
                "context"
            ]
        );
        assert_eq!(v["blocks"][0]["text"]["type"], "plain_text");
        assert!(v["blocks"][0]["text"]["text"]
            .as_str()
            .unwrap()
            .starts_with("🔥 [FIRING:2]"));
        let first = v["blocks"][3]["text"]["text"].as_str().unwrap();
        assert!(
            first.contains("value *93.46*") && first.contains("CPU high on shop.1"),
            "{first}"
        );
        assert!(v["blocks"][5]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("resolved"));
        assert_eq!(
            v["blocks"][6]["elements"][0]["url"],
            "http://h:8080/#/logs?since=15m&app=%2Fshop"
        );
        assert_eq!(cut("abcdef", 4), "abc…");
    }
}
