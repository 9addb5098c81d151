//! The token Drover's own HTTP clients send (the CLI's commands, an agent, the autoscaler
//! and Alertman calling a master): the one the process was given
//! ([`set_process_token`]: the cluster token of `drover up`, `drover agent`), else
//! `DROVER_TOKEN` from the environment.
use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue};

static PROCESS_TOKEN: OnceLock<String> = OnceLock::new();

/// Set the token this process's clients send (once; later calls are ignored).
pub fn set_process_token(token: &str) {
    let _ = PROCESS_TOKEN.set(token.to_string());
}

/// The token to send, if any.
pub fn token() -> Option<String> {
    PROCESS_TOKEN
        .get()
        .cloned()
        .or_else(|| std::env::var("DROVER_TOKEN").ok())
        .filter(|t| !t.trim().is_empty())
}

/// `Authorization: Bearer TOKEN` (marked sensitive: never printed by `Debug`), or nothing.
/// For `reqwest::ClientBuilder::default_headers`.
pub fn default_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(t) = token() {
        if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", t.trim())) {
            v.set_sensitive(true);
            h.insert(header::AUTHORIZATION, v);
        }
    }
    h
}

/// Whether [`set_process_token`] was called.
pub fn has_process_token() -> bool {
    PROCESS_TOKEN.get().is_some()
}
