//! Alertmanager's webhook payload (version 4): what every existing Alertmanager webhook
//! receiver reads.
use serde_json::{json, Value};

use crate::{
    alert::{fingerprint_hex, LabelSet},
    receivers::{fmt_time, split},
    route::Notification,
};

/// Labels (or annotations) every alert of the notification shares.
fn common(sets: &[&LabelSet]) -> LabelSet {
    let Some(first) = sets.first() else {
        return LabelSet::new();
    };
    first
        .iter()
        .filter(|(k, v)| sets.iter().all(|s| s.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The JSON body.
pub fn payload(n: &Notification, ui_url: &str) -> Value {
    let (firing, _) = split(n);
    let alerts: Vec<Value> = n
        .alerts
        .iter()
        .map(|a| {
            let resolved = !firing.iter().any(|f| std::ptr::eq(*f, a));
            json!({
                "status": if resolved { "resolved" } else { "firing" },
                "labels": a.labels,
                "annotations": a.annotations,
                "startsAt": fmt_time(a.starts_at),
                // Alertmanager's zero time for alerts still firing.
                "endsAt": match a.ends_at {
                    Some(e) if resolved => fmt_time(e),
                    _ => "0001-01-01T00:00:00Z".to_string(),
                },
                "generatorURL": if a.generator_url.is_empty() { format!("{ui_url}/#/alerts") } else { a.generator_url.clone() },
                "fingerprint": fingerprint_hex(a.fingerprint()),
            })
        })
        .collect();
    let labels: Vec<&LabelSet> = n.alerts.iter().map(|a| &a.labels).collect();
    let annotations: Vec<&LabelSet> = n.alerts.iter().map(|a| &a.annotations).collect();
    json!({
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": 0,
        "status": n.status,
        "receiver": n.receiver,
        "groupLabels": n.group_labels,
        "commonLabels": common(&labels),
        "commonAnnotations": common(&annotations),
        "externalURL": ui_url,
        "alerts": alerts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receivers::tests::notification;

    #[test]
    fn alertmanager_webhook_shape() {
        let v = payload(&notification(), "http://h:8080");
        assert_eq!(v["version"], "4");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["receiver"], "ops");
        assert_eq!(v["groupLabels"]["app"], "/shop");
        assert_eq!(v["commonLabels"]["severity"], "critical");
        assert!(v["commonLabels"].get("instance").is_none());
        assert!(v["commonAnnotations"].get("summary").is_none());
        let alerts = v["alerts"].as_array().unwrap();
        assert_eq!(alerts.len(), 3);
        assert_eq!(alerts[0]["status"], "firing");
        assert_eq!(alerts[0]["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(alerts[2]["status"], "resolved");
        assert_eq!(alerts[2]["endsAt"], "2027-01-15T08:00:00Z");
        assert_eq!(alerts[0]["fingerprint"].as_str().unwrap().len(), 16);
        assert_eq!(alerts[0]["generatorURL"], "http://h:8080/#/alerts");
    }
}
