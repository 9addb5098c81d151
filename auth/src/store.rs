//! The token file: `<data dir>/auth/tokens.json`, mode 0600, one entry per token with its
//! name, role, creation time and SHA-256 (never the token). Written by `drover token`,
//! re-read by the running server when it changes (so a created or revoked token takes
//! effect on the next request, without a restart).
use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::SystemTime,
};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    secret::{ct_eq, digest, new_token},
    AuthError, Role,
};

/// The file's format version.
const VERSION: u32 = 1;

/// The token file's content.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenFile {
    /// Format version (1).
    version: u32,
    /// The tokens.
    #[serde(default)]
    tokens: Vec<StoredToken>,
}

/// One token as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredToken {
    /// Its name (who or what uses it: `ci`, `alice`).
    name: String,
    /// What it may do.
    role: Role,
    /// When it was created.
    created: DateTime<Utc>,
    /// Hex SHA-256 of the token.
    sha256: String,
}

/// A token as listed (`drover token ls`): no secret, no hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Its name.
    pub name: String,
    /// What it may do.
    pub role: Role,
    /// When it was created.
    pub created: DateTime<Utc>,
}

/// Who a request comes from, once its token is verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The token's name (`cluster` for the cluster token, `anonymous` without auth).
    pub name: String,
    /// What it may do.
    pub role: Role,
}

#[derive(Debug, Default)]
struct Cache {
    /// (modified, length) of the file when it was read; `None`: it did not exist.
    stamp: Option<(SystemTime, u64)>,
    /// Name, role and digest of each token.
    tokens: Vec<(String, Role, [u8; 32])>,
}

/// The token file of one data dir. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TokenStore {
    path: PathBuf,
    cache: Arc<Mutex<Cache>>,
}

impl TokenStore {
    /// The store of `data_dir` (`<data_dir>/auth/tokens.json`; it need not exist).
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self::at(data_dir.join("auth").join("tokens.json"))
    }

    /// The store in `path`.
    pub fn at(path: PathBuf) -> Self {
        Self {
            path,
            cache: Arc::default(),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self) -> Result<TokenFile, AuthError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(TokenFile {
                    version: VERSION,
                    tokens: Vec::new(),
                })
            }
            Err(source) => {
                return Err(AuthError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let file: TokenFile = serde_json::from_str(&text).map_err(|e| AuthError::Parse {
            path: self.path.clone(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        })?;
        if file.version != VERSION {
            return Err(AuthError::Parse {
                path: self.path.clone(),
                line: 1,
                column: 1,
                message: format!("version {} is not one this build reads (1)", file.version),
            });
        }
        Ok(file)
    }

    fn write(&self, file: &TokenFile) -> Result<(), AuthError> {
        let err = |source| AuthError::Write {
            path: self.path.clone(),
            source,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(err)?;
        let tmp = self.path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(file).map_err(|e| err(std::io::Error::other(e)))?;
        {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(err)?;
            f.write_all(&body).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(err)
    }

    /// Create a token named `name` with `role`; returns the token (shown once, never stored).
    pub fn create(&self, name: &str, role: Role) -> Result<String, AuthError> {
        check_name(name)?;
        let mut file = self.read()?;
        if file.tokens.iter().any(|t| t.name == name) {
            return Err(AuthError::Exists(name.to_string()));
        }
        let token = new_token()?;
        file.tokens.push(StoredToken {
            name: name.to_string(),
            role,
            created: Utc::now(),
            sha256: hex::encode(digest(&token)),
        });
        self.write(&file)?;
        Ok(token)
    }

    /// Revoke the token named `name`.
    pub fn revoke(&self, name: &str) -> Result<(), AuthError> {
        let mut file = self.read()?;
        let before = file.tokens.len();
        file.tokens.retain(|t| t.name != name);
        if file.tokens.len() == before {
            return Err(AuthError::NotFound(name.to_string()));
        }
        self.write(&file)
    }

    /// Every token, by name.
    pub fn list(&self) -> Result<Vec<TokenInfo>, AuthError> {
        let mut v: Vec<TokenInfo> = self
            .read()?
            .tokens
            .into_iter()
            .map(|t| TokenInfo {
                name: t.name,
                role: t.role,
                created: t.created,
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(v)
    }

    /// Re-read the file if it changed since the last look (one `stat` otherwise).
    fn refresh(&self) -> Result<std::sync::MutexGuard<'_, Cache>, AuthError> {
        let stamp = match std::fs::metadata(&self.path) {
            Ok(m) => Some((m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(AuthError::Read {
                    path: self.path.clone(),
                    source,
                })
            }
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.stamp != stamp || (stamp.is_some() && cache.tokens.is_empty()) {
            let file = self.read()?;
            let mut tokens = Vec::with_capacity(file.tokens.len());
            for t in file.tokens {
                let mut d = [0u8; 32];
                // A hash that is not 64 hex digits matches nothing.
                if hex::decode_to_slice(&t.sha256, &mut d).is_ok() {
                    tokens.push((t.name, t.role, d));
                }
            }
            cache.tokens = tokens;
            cache.stamp = stamp;
        }
        Ok(cache)
    }

    /// Whether any token exists (auth is configured).
    pub fn has_tokens(&self) -> Result<bool, AuthError> {
        Ok(!self.refresh()?.tokens.is_empty())
    }

    /// Who `token` is, if it is one of the stored tokens. Compares against every stored
    /// digest in constant time (no early exit).
    pub fn verify(&self, token: &str) -> Result<Option<Principal>, AuthError> {
        let presented = digest(token);
        let cache = self.refresh()?;
        let mut found = None;
        for (name, role, d) in &cache.tokens {
            if ct_eq(&presented, d) && found.is_none() {
                found = Some(Principal {
                    name: name.clone(),
                    role: *role,
                });
            }
        }
        Ok(found)
    }

    /// The role of the token named `name` now (`None`: revoked).
    pub fn role_of(&self, name: &str) -> Result<Option<Role>, AuthError> {
        Ok(self
            .refresh()?
            .tokens
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, r, _)| *r))
    }
}

fn check_name(name: &str) -> Result<(), AuthError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        // Reserved for the cluster token and open mode.
        && name != "cluster"
        && name != "anonymous";
    if ok {
        Ok(())
    } else {
        Err(AuthError::InvalidName(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_verify_list_revoke() {
        let tmp = tempfile::tempdir().unwrap();
        let store = TokenStore::in_data_dir(tmp.path());
        assert!(!store.has_tokens().unwrap());
        let t = store.create("ci", Role::Operator).unwrap();
        let text = std::fs::read_to_string(store.path()).unwrap();
        assert!(!text.contains(&t), "the token itself is never stored");
        assert!(store.has_tokens().unwrap());
        assert_eq!(
            store.verify(&t).unwrap(),
            Some(Principal {
                name: "ci".into(),
                role: Role::Operator
            })
        );
        assert_eq!(store.verify("drover_nope").unwrap(), None);
        assert!(matches!(
            store.create("ci", Role::Viewer),
            Err(AuthError::Exists(_))
        ));
        let list = store.list().unwrap();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].role, Role::Operator);
        store.revoke("ci").unwrap();
        assert_eq!(store.verify(&t).unwrap(), None, "revoked at once");
        assert!(matches!(store.revoke("ci"), Err(AuthError::NotFound(_))));
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let store = TokenStore::in_data_dir(tmp.path());
        store.create("a", Role::Admin).unwrap();
        let mode = std::fs::metadata(store.path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn another_process_writing_is_seen() {
        let tmp = tempfile::tempdir().unwrap();
        let server = TokenStore::in_data_dir(tmp.path());
        assert!(!server.has_tokens().unwrap());
        let cli = TokenStore::in_data_dir(tmp.path());
        let t = cli.create("late", Role::Viewer).unwrap();
        assert_eq!(server.verify(&t).unwrap().unwrap().name, "late");
    }

    #[test]
    fn bad_names_and_files_are_clear_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let store = TokenStore::in_data_dir(tmp.path());
        for n in ["", "a b", "cluster", "anonymous", &"x".repeat(65)] {
            assert!(
                matches!(
                    store.create(n, Role::Viewer),
                    Err(AuthError::InvalidName(_))
                ),
                "{n}"
            );
        }
        std::fs::create_dir_all(store.path().parent().unwrap()).unwrap();
        std::fs::write(store.path(), "{\"version\":1,\"tokenz\":[]}").unwrap();
        let err = store.list().unwrap_err().to_string();
        assert!(
            err.contains("tokens.json") && err.contains("line 1"),
            "{err}"
        );
    }
}
