//! Who may do what: the six roles and the permissions each route needs. Pure rules, no I/O:
//! the server asks [`allowed`] with the caller's roles and scopes; this file is the place to
//! read to know what a role means.
//!
//! | role | may |
//! |---|---|
//! | admin | everything |
//! | operator | plugins, packs, grants, secrets (never their values), rules; read lists and EDLs |
//! | engineer | playbooks and their runs; read plugins and rules |
//! | analyst | incidents, tasks, indicators, lists; read rules |
//! | auditor | read everything, grants and the audit log included; change nothing |
//! | requester | start a request; answer what is addressed to them (any signed-in user may) |
//!
//! A user's roles are the `osprey user` roles that name one of these (other roles are teams,
//! which tasks and questions are addressed to). An API token carries a role, or scopes for
//! machines (`intake`, `edl`) and the narrower scopes of earlier versions (`incidents`,
//! `rules`).

use serde::{Deserialize, Serialize};

/// The roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Operator,
    Engineer,
    Analyst,
    Auditor,
    Requester,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    /// Incidents, tasks and indicators: read.
    IncidentsRead,
    /// Incidents, tasks and indicators: create and change.
    IncidentsWrite,
    RulesRead,
    RulesWrite,
    /// Send alerts (`POST /api/v1/alerts`).
    AlertsWrite,
    /// Fetch External Dynamic Lists.
    EdlRead,
    /// Plugins, their actions, requested and granted capabilities, secret names.
    PluginsRead,
    /// Install plugins and packs, grant, set secrets.
    PluginsWrite,
    /// Playbooks and their runs: read.
    PlaybooksRead,
    /// Start, restart and cancel runs; change playbooks.
    PlaybooksWrite,
    ListsRead,
    ListsWrite,
    /// The audit log and its verification.
    AuditRead,
    /// Users, roles and tokens.
    UsersAdmin,
    /// Start a request (an end user's request form).
    RequestsCreate,
    /// The console's dashboard: counts of incidents, alerts, runs and breaches.
    DashboardRead,
    /// One's own inbox: the questions addressed to one (or one's roles), and answering them.
    Inbox,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Admin,
        Role::Operator,
        Role::Engineer,
        Role::Analyst,
        Role::Auditor,
        Role::Requester,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Engineer => "engineer",
            Role::Analyst => "analyst",
            Role::Auditor => "auditor",
            Role::Requester => "requester",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether this role may do `p`.
    pub fn allows(self, p: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            // Everyone answers what is addressed to them.
            _ if p == Inbox => true,
            // Everyone who works in the console sees the trends; a requester only asks.
            _ if p == DashboardRead => self != Role::Requester,
            Role::Operator => matches!(
                p,
                PluginsRead | PluginsWrite | RulesRead | RulesWrite | ListsRead | EdlRead
            ),
            Role::Engineer => matches!(p, PlaybooksRead | PlaybooksWrite | PluginsRead | RulesRead),
            Role::Analyst => matches!(
                p,
                IncidentsRead | IncidentsWrite | ListsRead | ListsWrite | RulesRead | PlaybooksRead
            ),
            Role::Auditor => matches!(
                p,
                IncidentsRead | RulesRead | PluginsRead | PlaybooksRead | ListsRead | AuditRead | EdlRead
            ),
            Role::Requester => matches!(p, RequestsCreate),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a token scope allows (machine tokens, and the scopes of tokens made before roles).
pub fn scope_allows(scope: &str, p: Permission) -> bool {
    use Permission::*;
    match scope {
        "intake" => p == AlertsWrite,
        "edl" => p == EdlRead,
        "incidents" => matches!(p, IncidentsRead | IncidentsWrite),
        "rules" => matches!(p, RulesRead | RulesWrite),
        _ => false,
    }
}

/// The roles among a user's roles (the others are teams).
pub fn roles_of(names: &[String]) -> Vec<Role> {
    names.iter().filter_map(|n| Role::parse(n)).collect()
}

/// Whether a caller with `roles` and `scopes` may do `p`.
pub fn allowed(roles: &[Role], scopes: &[String], p: Permission) -> bool {
    roles.iter().any(|r| r.allows(p)) || scopes.iter().any(|s| scope_allows(s, p))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Permission::*;

    #[test]
    fn the_auditor_reads_everything_and_changes_nothing() {
        for p in [
            IncidentsRead,
            RulesRead,
            PluginsRead,
            PlaybooksRead,
            ListsRead,
            AuditRead,
            EdlRead,
        ] {
            assert!(Role::Auditor.allows(p), "{p:?}");
        }
        for p in [
            IncidentsWrite,
            RulesWrite,
            PluginsWrite,
            PlaybooksWrite,
            ListsWrite,
            AlertsWrite,
            UsersAdmin,
            RequestsCreate,
        ] {
            assert!(!Role::Auditor.allows(p), "{p:?}");
        }
    }

    #[test]
    fn each_role_does_its_own_work_only() {
        assert!(Role::Operator.allows(PluginsWrite) && !Role::Operator.allows(IncidentsWrite));
        assert!(Role::Engineer.allows(PlaybooksWrite) && !Role::Engineer.allows(PluginsWrite));
        assert!(Role::Analyst.allows(IncidentsWrite) && !Role::Analyst.allows(RulesWrite));
        assert!(Role::Requester.allows(RequestsCreate) && !Role::Requester.allows(IncidentsRead));
        assert!(!Role::Admin.allows(IncidentsRead) || Role::Admin.allows(UsersAdmin));
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
            assert_eq!(r.allows(UsersAdmin), r == Role::Admin, "{r}");
        }
    }

    #[test]
    fn scopes_keep_their_meaning() {
        let scopes = vec!["intake".to_owned()];
        assert!(allowed(&[], &scopes, AlertsWrite));
        assert!(!allowed(&[], &scopes, IncidentsRead));
        assert!(allowed(&[Role::Analyst], &scopes, IncidentsRead));
        assert_eq!(roles_of(&["soc".into(), "analyst".into()]), vec![Role::Analyst]);
    }
}
