//! Roles and what each may do. This is the one place permissions are decided.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A user's role; each includes everything the roles before it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads cases, alerts, runs and the audit log.
    Viewer,
    /// Works cases: comments, assigns, changes status, runs non-containment playbooks.
    Analyst,
    /// An analyst who may also approve containment actions.
    Responder,
    /// Manages users, sources, playbooks and configuration.
    Admin,
}

/// Every role, lowest first.
pub const ALL_ROLES: [Role; 4] = [Role::Viewer, Role::Analyst, Role::Responder, Role::Admin];

/// Something a request wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// See cases, alerts, playbook runs.
    Read,
    /// Change cases and start playbooks.
    WorkCases,
    /// Approve or reject containment actions.
    ApproveContainment,
    /// Read the audit trail and verify it.
    ReadAudit,
    /// Create users, change roles, disable accounts.
    ManageUsers,
    /// Manage ingestion sources, playbooks and integrations.
    Administer,
    /// Create and revoke one's own API tokens.
    ManageOwnTokens,
    /// Cancel playbook runs from the console (stopping containment half-way is a
    /// responder's call).
    CancelRuns,
}

impl Permission {
    /// The least role that holds this permission.
    pub fn minimum_role(self) -> Role {
        match self {
            Permission::Read | Permission::ManageOwnTokens => Role::Viewer,
            Permission::WorkCases => Role::Analyst,
            Permission::ApproveContainment | Permission::CancelRuns => Role::Responder,
            Permission::ReadAudit | Permission::ManageUsers | Permission::Administer => Role::Admin,
        }
    }

    /// A short name for error messages.
    pub fn name(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::WorkCases => "work cases",
            Permission::ApproveContainment => "approve containment",
            Permission::ReadAudit => "read the audit trail",
            Permission::ManageUsers => "manage users",
            Permission::Administer => "administer Tocsin",
            Permission::ManageOwnTokens => "manage API tokens",
            Permission::CancelRuns => "cancel playbook runs",
        }
    }
}

impl Role {
    /// Whether this role holds `permission`.
    pub fn allows(self, permission: Permission) -> bool {
        self >= permission.minimum_role()
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Analyst => "analyst",
            Role::Responder => "responder",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of the four.
#[derive(Debug, thiserror::Error)]
#[error("unknown role {0:?}: expected viewer, analyst, responder or admin")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Role, UnknownRole> {
        ALL_ROLES
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_cumulative() {
        assert!(Role::Viewer.allows(Permission::Read));
        assert!(!Role::Viewer.allows(Permission::WorkCases));
        assert!(Role::Analyst.allows(Permission::WorkCases));
        assert!(!Role::Analyst.allows(Permission::ApproveContainment));
        assert!(Role::Responder.allows(Permission::ApproveContainment));
        assert!(!Role::Responder.allows(Permission::ManageUsers));
        assert!(Role::Admin.allows(Permission::ManageUsers));
        assert!(Role::Admin.allows(Permission::ApproveContainment));
    }

    #[test]
    fn names_round_trip() {
        for role in ALL_ROLES {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
        }
        assert!("root".parse::<Role>().is_err());
    }
}
