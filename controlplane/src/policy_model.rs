//! The records of the policy lifecycle: a saved draft and a slot's active pointer. Plain
//! data shared by the manager (`policies`), its routes (`admin::policies`) and the SQL
//! (`store::policies`), so the store does not import the manager nor the manager's types
//! live in the store.

use intentgate_shared::timestamp::Timestamp;

/// A saved policy source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// 16 hex characters.
    pub id: String,
    /// Name.
    pub name: String,
    /// Description.
    pub description: String,
    /// Rego source (compiles: checked on save).
    pub rego_source: String,
    /// Owning tenant ("" for the superadmin's).
    pub tenant: String,
    /// Created.
    pub created_at: Timestamp,
    /// Last saved.
    pub updated_at: Timestamp,
    /// Author (free text).
    pub created_by: String,
}

/// A slot's pointer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    /// Slot ("" = default).
    pub tenant: String,
    /// The draft in force ("" = none).
    pub current_draft_id: String,
    /// The draft before it ("" = none): what rollback restores.
    pub previous_draft_id: String,
    /// When the current draft was promoted.
    pub promoted_at: Option<Timestamp>,
    /// Who promoted it (free text).
    pub promoted_by: String,
}

impl Active {
    /// A slot never set.
    pub fn empty(tenant: &str) -> Self {
        Self {
            tenant: tenant.to_owned(),
            current_draft_id: String::new(),
            previous_draft_id: String::new(),
            promoted_at: None,
            promoted_by: String::new(),
        }
    }
}
