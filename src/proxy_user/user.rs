//! The upstream's user model, permissive by design: known fields are typed and
//! optional, unknown ones are kept in `extra`, so upstream additions never break.

use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::principal::Principal;

/// Accepts a string or a number (ids are strings in some deployments, numbers in others).
fn string_or_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(deserializer)? {
        Some(Value::String(s)) => Some(s),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    })
}

fn authenticated() -> bool {
    true
}

/// The workspace a user is scoped to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct UserWorkspace {
    /// Workspace id.
    #[serde(
        default,
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    /// Workspace name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Fields this type does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A named assignment in the scoped workspace: a role or a permission.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkspaceGrant {
    /// The role or permission name (mapped to the principal's roles or permissions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Fields this type does not know.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A role assignment in the scoped workspace.
pub type WorkspaceRole = WorkspaceGrant;

/// A permission assignment in the scoped workspace.
pub type WorkspacePermission = WorkspaceGrant;

/// The user the auth proxy's `get-me` returns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProxyUser {
    /// User id.
    #[serde(
        default,
        deserialize_with = "string_or_number",
        skip_serializing_if = "Option::is_none"
    )]
    pub id: Option<String>,
    /// Login name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_name: Option<String>,
    /// Email address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `internal` or `external`, typically.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_type: Option<String>,
    /// Whether the account is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// First name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// Last name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// The workspace in scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace: Option<UserWorkspace>,
    /// Roles in the workspace.
    #[serde(default)]
    pub workspace_roles: Vec<WorkspaceRole>,
    /// Permissions in the workspace.
    #[serde(default)]
    pub workspace_permissions: Vec<WorkspacePermission>,
    /// Always true for users resolved from a valid token.
    #[serde(default = "authenticated")]
    pub is_authenticated: bool,
    /// Every field not listed above.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ProxyUser {
    /// The opposite of `is_authenticated`.
    pub fn is_anonymous(&self) -> bool {
        !self.is_authenticated
    }

    /// Builds the principal: subject from `id`, else `user_name`, else
    /// `email`; roles and permissions from the workspace assignments.
    pub(crate) fn into_principal(self, raw: Map<String, Value>, session: super::ProxySession) -> Principal {
        let subject = self
            .id
            .clone()
            .or_else(|| self.user_name.clone())
            .or_else(|| self.email.clone())
            .unwrap_or_default();
        let names = |items: Vec<Option<String>>| items.into_iter().flatten().collect::<Vec<_>>();
        let mut builder = Principal::builder(super::PROVIDER, subject)
            .roles(names(self.workspace_roles.iter().map(|r| r.name.clone()).collect()))
            .permissions(names(
                self.workspace_permissions.iter().map(|p| p.name.clone()).collect(),
            ));
        if let Some(email) = &self.email {
            builder = builder.email(email.clone());
        }
        let full_name: Vec<&str> = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect();
        if !full_name.is_empty() {
            builder = builder.name(full_name.join(" "));
        }
        let session = super::ProxySession {
            user: Arc::new(self),
            ..session
        };
        builder.claims(raw).attach(session).build()
    }
}
