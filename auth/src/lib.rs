//! Who may do what on Drover's HTTP APIs.
//!
//! - [`store`]: API tokens (`drover token create|ls|revoke`), 256-bit random, kept as their
//!   SHA-256 in `<data dir>/auth/tokens.json`, each with a [`Role`].
//! - [`guard`]: the one axum middleware every Drover server runs behind: a request needs a
//!   token (`Authorization: Bearer`) or a UI session cookie whose role covers the method
//!   (GET/HEAD: viewer; other methods: operator; token management and the audit: admin),
//!   except for a short public allowlist (`/healthz`, the login page, static UI assets).
//! - [`session`]: the UI's login form, cookie sessions with CSRF protection, and the login
//!   rate limit per source address.
//! - [`audit`]: every write (who, role, method and path, status, source, time), kept in a
//!   bounded buffer (`GET /api/audit`) and published on `drover.events.v1`.
//! - [`routes`]: the method and path of every route a `Router` serves, read from the router
//!   itself, so a test can check every write route is guarded.
//! - [`client`]: the token Drover's own HTTP clients send.
#![forbid(unsafe_code)]

pub mod audit;
pub mod client;
mod error;
pub mod guard;
mod role;
pub mod routes;
mod secret;
pub mod session;
pub mod store;

pub use error::AuthError;
pub use guard::{Guard, GuardConfig, Mode};
pub use role::Role;
pub use secret::{is_loopback, new_token, Secret};
pub use store::TokenStore;
