use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

use crate::AuthError;

/// What a token may do. Ordered: each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Read only: every GET and HEAD.
    Viewer,
    /// Writes: deploy, scale, restart, cordon, silence, policies (every method but GET/HEAD),
    /// except token management and the audit.
    Operator,
    /// Everything, including token management and the audit trail.
    Admin,
}

impl Role {
    /// The lowercase name (`admin`, `operator`, `viewer`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn covers(self, needed: Role) -> bool {
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(AuthError::UnknownRole(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin.covers(Role::Operator));
        assert!(Role::Operator.covers(Role::Viewer));
        assert!(Role::Viewer.covers(Role::Viewer));
        assert!(!Role::Viewer.covers(Role::Operator));
        assert!(!Role::Operator.covers(Role::Admin));
    }

    #[test]
    fn names_round_trip() {
        for r in [Role::Viewer, Role::Operator, Role::Admin] {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
