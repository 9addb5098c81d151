//! Email through lettre: SMTP, plain or STARTTLS or TLS (the system's OpenSSL), with
//! optional auth; a `multipart/alternative` message with a plain-text and an HTML part.
use std::time::Duration;

use lettre::{
    message::{Mailbox, MultiPart},
    transport::smtp::authentication::Credentials,
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
};

use crate::{
    receivers::{fmt_time, fmt_value, label_line, split, title},
    route::Notification,
    rules::{EmailTarget, Tls},
    template::Links,
};

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The subject, the plain-text body and the HTML body.
pub fn render(n: &Notification, ui_url: &str) -> (String, String, String) {
    let subject = title(n);
    let (firing, resolved) = split(n);
    let app = n.group_labels.get("app").map(String::as_str);
    let links = Links::new(ui_url, app, None);
    let mut plain = format!("{subject}\n\n");
    let mut html = format!(
        "<html><body style=\"font-family:sans-serif\"><h2>{}</h2>",
        html_escape(&subject)
    );
    for (heading, list) in [("Firing", &firing), ("Resolved", &resolved)] {
        if list.is_empty() {
            continue;
        }
        plain.push_str(&format!("{heading}:\n"));
        html.push_str(&format!("<h3>{heading}</h3><ul>"));
        for a in list.iter() {
            let summary = a.annotations.get("summary").cloned().unwrap_or_default();
            plain.push_str(&format!(
                "- {} value={} since {}\n  {}\n",
                label_line(a),
                fmt_value(a.value),
                fmt_time(a.starts_at),
                summary
            ));
            html.push_str(&format!(
                "<li><b>{}</b> value <b>{}</b> since {}<br>{}</li>",
                html_escape(&label_line(a)),
                fmt_value(a.value),
                fmt_time(a.starts_at),
                html_escape(&summary)
            ));
        }
        plain.push('\n');
        html.push_str("</ul>");
    }
    plain.push_str(&format!(
        "Logs: {}\nCharts: {}\nAlerts: {}\n",
        links.logs, links.chart, links.alerts
    ));
    html.push_str(&format!(
        "<p><a href=\"{}\">Logs</a> · <a href=\"{}\">Charts</a> · <a href=\"{}\">Alerts</a></p></body></html>",
        html_escape(&links.logs),
        html_escape(&links.chart),
        html_escape(&links.alerts)
    ));
    (subject, plain, html)
}

/// The message.
pub fn message(t: &EmailTarget, n: &Notification, ui_url: &str) -> Result<Message, String> {
    let (subject, plain, html) = render(n, ui_url);
    let from: Mailbox = t
        .from
        .parse()
        .map_err(|e| format!("from {:?}: {e}", t.from))?;
    let mut b = Message::builder().from(from).subject(subject);
    for to in &t.to {
        b = b.to(to.parse().map_err(|e| format!("to {to:?}: {e}"))?);
    }
    b.multipart(MultiPart::alternative_plain_html(plain, html))
        .map_err(|e| format!("cannot build the email: {e}"))
}

/// Sends the notification.
pub async fn send(t: &EmailTarget, n: &Notification, ui_url: &str) -> Result<(), String> {
    let msg = message(t, n, ui_url)?;
    let builder = match t.tls {
        Tls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&t.host),
        Tls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&t.host)
            .map_err(|e| format!("STARTTLS to {}: {e}", t.host))?,
        Tls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&t.host)
            .map_err(|e| format!("TLS to {}: {e}", t.host))?,
    };
    let mut builder = builder.port(t.port).timeout(Some(Duration::from_secs(10)));
    if let Some((user, pass)) = &t.auth {
        builder = builder.credentials(Credentials::new(user.clone(), pass.expose().to_string()));
    }
    builder
        .build()
        .send(msg)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP {}:{}: {e}", t.host, t.port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receivers::tests::notification;

    #[test]
    fn subject_and_both_parts() {
        let n = notification();
        let (subject, plain, html) = render(&n, "http://h:8080");
        assert_eq!(subject, "[FIRING:2] HighCpu /shop");
        assert!(
            plain.contains("Firing:\n- app=/shop instance=shop.1 severity=critical value=93.46"),
            "{plain}"
        );
        assert!(
            plain.contains("Resolved:\n- app=/shop instance=shop.3"),
            "{plain}"
        );
        assert!(
            html.contains("<h3>Firing</h3>") && html.contains("href=\"http://h:8080/#/app/shop\""),
            "{html}"
        );
        let t = EmailTarget {
            host: "127.0.0.1".into(),
            port: 25,
            tls: Tls::None,
            from: "alertman@example.com".into(),
            to: vec!["ops@example.com".into(), "Ana <ana@example.com>".into()],
            auth: None,
        };
        let m = String::from_utf8(message(&t, &n, "http://h:8080").unwrap().formatted()).unwrap();
        assert!(m.contains("Subject: [FIRING:2] HighCpu /shop"), "{m}");
        assert!(m.contains("multipart/alternative"), "{m}");
        assert!(m.contains("text/plain") && m.contains("text/html"), "{m}");
    }
}
