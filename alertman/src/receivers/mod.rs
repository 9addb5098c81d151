//! Receivers: where notifications go. Each builds its payload from a [`Notification`]
//! (pure, tested) and delivers it; [`deliver`] retries with exponential backoff and never
//! lets a secret (a webhook URL, a password) into an error message or a log line.
//!
//! - `webhook`: Alertmanager's webhook JSON (version 4), so existing receivers work;
//! - `slack`: a Slack incoming webhook with a Block Kit message;
//! - `email`: SMTP through lettre (plain, STARTTLS or TLS; auth), HTML and plain text.
pub mod email;
pub mod slack;
pub mod webhook;

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::{
    alert::Alert,
    route::Notification,
    rules::{Receiver, ReceiverTarget},
};

/// How deliveries are made.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The HTTP client (webhooks, Slack).
    pub http: reqwest::Client,
    /// The first retry waits this long; each next one twice as long (at most 30 s).
    pub backoff: Duration,
    /// Drover's UI, for links.
    pub ui_url: String,
}

impl Delivery {
    /// A client with a 10 s timeout.
    pub fn new(ui_url: &str, backoff: Duration) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            backoff,
            ui_url: ui_url.trim_end_matches('/').to_string(),
        }
    }
}

/// The outcome of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Attempts made.
    pub attempts: u32,
    /// `None`: delivered; else the last error (no secrets in it).
    pub error: Option<String>,
}

/// The receiver's type, as metrics label it.
pub fn kind(r: &Receiver) -> &'static str {
    match r.kind {
        ReceiverTarget::Webhook { .. } => "webhook",
        ReceiverTarget::Slack { .. } => "slack",
        ReceiverTarget::Email(_) => "email",
    }
}

/// Delivers `n` to `r`, retrying with backoff up to the receiver's `max_attempts`.
pub async fn deliver(d: &Delivery, r: &Receiver, n: &Notification) -> Outcome {
    let mut wait = d.backoff;
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = match &r.kind {
            ReceiverTarget::Webhook { url } => {
                post_json(d, url.expose(), &webhook::payload(n, &d.ui_url)).await
            }
            ReceiverTarget::Slack { url } => {
                post_json(d, url.expose(), &slack::payload(n, &d.ui_url)).await
            }
            ReceiverTarget::Email(t) => email::send(t, n, &d.ui_url).await,
        };
        match result {
            Ok(()) => {
                return Outcome {
                    attempts,
                    error: None,
                }
            }
            Err(e) if attempts >= r.max_attempts => {
                return Outcome {
                    attempts,
                    error: Some(e),
                }
            }
            Err(e) => {
                tracing::warn!(receiver = %r.name, attempt = attempts, error = %e, "delivery failed; retrying");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

async fn post_json(d: &Delivery, url: &str, body: &serde_json::Value) -> Result<(), String> {
    // reqwest's errors name the URL: it may hold a token, so it is removed.
    let resp = d
        .http
        .post(url)
        .json(body)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        let text = resp.text().await.unwrap_or_default();
        Err(format!(
            "the receiver answered {status}: {}",
            text.chars().take(200).collect::<String>()
        ))
    }
}

// === shared text ===

/// The firing alerts, then the resolved ones.
pub fn split(n: &Notification) -> (Vec<&Alert>, Vec<&Alert>) {
    n.alerts
        .iter()
        .partition(|a| a.ends_at.is_none_or(|e| e > n.at))
}

/// Alertmanager's default title: `[FIRING:2] HighCpu /shop`.
pub fn title(n: &Notification) -> String {
    let (firing, _) = split(n);
    let status = if n.status == "firing" {
        format!("FIRING:{}", firing.len())
    } else {
        "RESOLVED".to_string()
    };
    let labels: Vec<&str> = n.group_labels.values().map(String::as_str).collect();
    format!("[{status}] {}", labels.join(" "))
        .trim_end()
        .to_string()
}

/// `app=/shop instance=2` without `alertname` (already in the title).
pub fn label_line(a: &Alert) -> String {
    a.labels
        .iter()
        .filter(|(k, _)| k.as_str() != crate::alert::ALERTNAME)
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A value for people: `93.46`, `1200`, `0.5`.
pub fn fmt_value(v: Option<f64>) -> String {
    match v {
        None => "no data".into(),
        Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{}", v as i64),
        Some(v) => format!("{v:.2}"),
    }
}

/// An RFC 3339 time, seconds precision.
pub fn fmt_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::alert::LabelSet;

    pub(crate) fn notification() -> Notification {
        let now = DateTime::from_timestamp_millis(1_800_000_000_000).unwrap();
        let alert = |inst: &str, resolved: bool| Alert {
            labels: [
                ("alertname", "HighCpu"),
                ("app", "/shop"),
                ("instance", inst),
                ("severity", "critical"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            annotations: [("summary".to_string(), format!("CPU high on {inst}"))].into(),
            starts_at: now - chrono::Duration::minutes(5),
            ends_at: resolved.then_some(now),
            updated_at: now,
            generator_url: String::new(),
            receivers: vec!["ops".into()],
            value: Some(93.456),
            rule: Some("HighCpu".into()),
        };
        Notification {
            receiver: "ops".into(),
            group_key: "ops:{alertname=\"HighCpu\",app=\"/shop\"}".into(),
            group_labels: LabelSet::from([
                ("alertname".to_string(), "HighCpu".to_string()),
                ("app".to_string(), "/shop".to_string()),
            ]),
            status: "firing",
            alerts: vec![
                alert("shop.1", false),
                alert("shop.2", false),
                alert("shop.3", true),
            ],
            at: now,
            previous: None,
        }
    }

    #[test]
    fn titles_and_values() {
        let n = notification();
        assert_eq!(title(&n), "[FIRING:2] HighCpu /shop");
        let mut r = n.clone();
        r.status = "resolved";
        assert_eq!(title(&r), "[RESOLVED] HighCpu /shop");
        assert_eq!(
            label_line(&n.alerts[0]),
            "app=/shop instance=shop.1 severity=critical"
        );
        assert_eq!(fmt_value(Some(93.456)), "93.46");
        assert_eq!(fmt_value(Some(1200.0)), "1200");
        assert_eq!(fmt_value(None), "no data");
    }

    #[tokio::test]
    async fn a_receiver_that_is_down_is_retried_and_the_error_hides_the_url() {
        let r = Receiver {
            name: "hook".into(),
            // Nothing listens on port 9 of localhost; the path stands for a secret token.
            kind: ReceiverTarget::Webhook {
                url: crate::rules::Secret::new("http://127.0.0.1:9/secret-token"),
            },
            send_resolved: true,
            max_attempts: 3,
        };
        let d = Delivery::new("http://ui", Duration::from_millis(1));
        let o = deliver(&d, &r, &notification()).await;
        assert_eq!(o.attempts, 3);
        let e = o.error.unwrap();
        assert!(!e.contains("secret-token"), "{e}");
    }
}
