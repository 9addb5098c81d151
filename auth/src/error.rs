use std::path::PathBuf;

/// What can go wrong with tokens and their file.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The token file cannot be read.
    #[error("cannot read the token file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The token file cannot be written.
    #[error("cannot write the token file {path}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The token file is not valid.
    #[error("the token file {path} is not valid (line {line}, column {column}): {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where.
        line: usize,
        /// Where.
        column: usize,
        /// What (never the file's text: it holds token hashes).
        message: String,
    },
    /// A token name is not acceptable.
    #[error("invalid token name {0:?}: use 1 to 64 letters, digits, '.', '_' or '-'")]
    InvalidName(String),
    /// A token of that name exists.
    #[error("a token named {0:?} exists: revoke it first or pick another name")]
    Exists(String),
    /// No token of that name.
    #[error("no token named {0:?} (drover token ls)")]
    NotFound(String),
    /// A role name is not one of admin, operator, viewer.
    #[error("unknown role {0:?}: use admin, operator or viewer")]
    UnknownRole(String),
    /// The cluster token is too short to be a secret.
    #[error("the cluster token is too short ({0} characters): use at least 32 random characters, e.g. the output of `drover token generate`")]
    WeakClusterToken(usize),
    /// Serving off loopback without authentication, and not told to.
    #[error("refusing to serve HTTP on {addr} without authentication: it is not a loopback address. Create a token first (`drover token create --role admin --name admin --data-dir DIR`, using this server's data dir) or give a cluster token (--cluster-token or DROVER_CLUSTER_TOKEN, 32 characters or more), or serve on 127.0.0.1; --insecure-no-auth runs it open to anyone who can reach {addr}")]
    Unprotected {
        /// The address.
        addr: std::net::SocketAddr,
    },
    /// The operating system gave no random bytes.
    #[error("cannot draw random bytes from the operating system: {0}")]
    Random(String),
}
