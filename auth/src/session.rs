//! UI sessions: the login form trades a token for a session cookie (HttpOnly,
//! SameSite=Strict) and a CSRF cookie the UI's script echoes in `X-CSRF-Token` on its
//! writes (double submit); and the login rate limit per source address.
use std::{
    collections::HashMap,
    net::IpAddr,
    sync::Mutex,
    time::{Duration, Instant},
};

use crate::{
    secret::{ct_eq, digest, new_opaque},
    AuthError,
};

/// The session cookie (HttpOnly: scripts never see it).
pub const SESSION_COOKIE: &str = "drover_session";
/// The CSRF cookie (readable by the UI's script, which sends it back in [`CSRF_HEADER`]).
pub const CSRF_COOKIE: &str = "drover_csrf";
/// The header a cookie-authenticated write must carry, equal to the session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// How long a session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// At most this many live sessions (the oldest go first).
const MAX_SESSIONS: usize = 10_000;

/// A logged-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// The name of the token it logged in with (its role is looked up on each request, so
    /// revoking the token ends the session).
    pub token_name: String,
    /// The CSRF token writes must echo.
    pub csrf: String,
    expires: Instant,
}

/// The live sessions, keyed by the SHA-256 of their ID.
#[derive(Debug, Default)]
pub struct Sessions {
    map: Mutex<HashMap<[u8; 32], Session>>,
}

impl Sessions {
    /// A new session for `token_name`; returns its ID and CSRF token.
    pub fn create(&self, token_name: &str, now: Instant) -> Result<(String, String), AuthError> {
        let id = new_opaque()?;
        let csrf = new_opaque()?;
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        map.insert(
            digest(&id),
            Session {
                token_name: token_name.to_string(),
                csrf: csrf.clone(),
                expires: now + SESSION_TTL,
            },
        );
        Ok((id, csrf))
    }

    /// The live session of ID `id`.
    pub fn get(&self, id: &str, now: Instant) -> Option<Session> {
        let map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        map.get(&digest(id)).filter(|s| s.expires > now).cloned()
    }

    /// End the session of ID `id`.
    pub fn remove(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&digest(id));
    }
}

impl Session {
    /// Whether `header` (the `X-CSRF-Token` of a write) is this session's CSRF token.
    pub fn csrf_ok(&self, header: Option<&str>) -> bool {
        header.is_some_and(|h| ct_eq(h.as_bytes(), self.csrf.as_bytes()))
    }
}

/// Login attempts per source address: at most `max` in any `window`.
#[derive(Debug)]
pub struct LoginLimiter {
    max: usize,
    window: Duration,
    attempts: Mutex<HashMap<IpAddr, Vec<Instant>>>,
}

impl Default for LoginLimiter {
    /// 10 attempts a minute per address.
    fn default() -> Self {
        Self::new(10, Duration::from_secs(60))
    }
}

impl LoginLimiter {
    /// At most `max` attempts per address in any `window`.
    pub fn new(max: usize, window: Duration) -> Self {
        Self {
            max,
            window,
            attempts: Mutex::default(),
        }
    }

    /// Count an attempt from `addr` at `now`; `Err(retry after)` when over the limit (the
    /// refused attempt is not counted).
    pub fn attempt(&self, addr: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut map = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() > 100_000 {
            let window = self.window;
            map.retain(|_, v| v.last().is_some_and(|t| now.duration_since(*t) < window));
        }
        let v = map.entry(addr).or_default();
        v.retain(|t| now.duration_since(*t) < self.window);
        if v.len() >= self.max {
            let oldest = v[0];
            return Err(self.window.saturating_sub(now.duration_since(oldest)));
        }
        v.push(now);
        Ok(())
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_expire_and_end() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let (id, csrf) = s.create("alice", t0).unwrap();
        let got = s.get(&id, t0).unwrap();
        assert_eq!(got.token_name, "alice");
        assert!(got.csrf_ok(Some(&csrf)));
        assert!(!got.csrf_ok(Some("nope")));
        assert!(!got.csrf_ok(None));
        assert!(s.get(&id, t0 + SESSION_TTL).is_none());
        s.remove(&id);
        assert!(s.get(&id, t0).is_none());
        assert!(s.get("unknown", t0).is_none());
    }

    #[test]
    fn login_limit_per_address_and_window() {
        let l = LoginLimiter::new(3, Duration::from_secs(60));
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for i in 0..3 {
            l.attempt(a, t0 + Duration::from_secs(i)).unwrap();
        }
        let wait = l.attempt(a, t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(wait, Duration::from_secs(50));
        l.attempt(b, t0 + Duration::from_secs(10))
            .expect("another address");
        l.attempt(a, t0 + Duration::from_secs(61))
            .expect("the window moved on");
    }

    #[test]
    fn cookies_are_found_by_name() {
        let h = "a=1; drover_session=abc; drover_csrf=def";
        assert_eq!(cookie(h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(h, CSRF_COOKIE), Some("def"));
        assert_eq!(cookie(h, "x"), None);
    }
}
