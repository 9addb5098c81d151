//! The one HTTP client of Drover's own JSON APIs for the CLI commands (`drover alerts`,
//! `drover metrics`, `drover gateway routes`): the `--server` flag, and a call whose errors
//! say what to do.
use anyhow::Context;
use clap::Args;

/// Options every client command of a `drover up` API shares.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Drover's HTTP address (`drover up --http`, or the role that serves the API).
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080",
        env = "DROVER_URL"
    )]
    pub server: String,
    /// Print the API's JSON.
    #[arg(long)]
    pub json: bool,
}

/// Calls `path` on `server` and returns the status and the JSON answer (`Null` when empty),
/// whatever the status.
pub async fn call_raw(
    server: &str,
    method: reqwest::Method,
    path: &str,
    params: &[(&str, String)],
    body: Option<serde_json::Value>,
) -> anyhow::Result<(reqwest::StatusCode, serde_json::Value)> {
    let url = format!("{}{path}", server.trim_end_matches('/'));
    let mut req = reqwest::Client::builder()
        .default_headers(drover_auth::client::default_headers())
        .build()?
        .request(method, &url)
        .query(params);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.map_err(|e| {
        anyhow::anyhow!(
            "cannot reach Drover at {server} ({e}): is `drover up` running? pass --server URL"
        )
    })?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    let body = if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text)
            .with_context(|| format!("unreadable answer from {url} (HTTP {status})"))?
    };
    Ok((status, body))
}

/// Like [`call_raw`], but an error status is an error carrying the API's own message.
pub async fn call(
    server: &str,
    method: reqwest::Method,
    path: &str,
    params: &[(&str, String)],
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let (status, body) = call_raw(server, method, path, params, body).await?;
    if !status.is_success() {
        let msg = body["error"]
            .as_str()
            .or(body.as_str())
            .unwrap_or("no details")
            .to_string();
        anyhow::bail!("{msg} (HTTP {status})");
    }
    Ok(body)
}
