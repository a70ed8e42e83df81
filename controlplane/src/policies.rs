//! The policy lifecycle (COMPATIBILITY.md §7): drafts that compile on save with the engine the data
//! plane runs, a per-tenant active pointer (current and one previous, for rollback), and
//! publication into the snapshot. `tenant ""` is the default slot; a tenant without its own
//! policy uses it; clearing the default slot returns to the startup policy (file or
//! embedded).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::PgPool;

use intentgate_shared::policy::{Policy, Syntax};
use intentgate_shared::snapshot::SnapshotCell;
use intentgate_shared::timestamp::Timestamp;

use crate::policy_model::{Active, Draft};
use crate::store::policies as sql;

/// Where drafts and pointers live.
#[derive(Debug)]
pub enum PolicyStore {
    /// This process (single replica).
    Memory(Mutex<(Vec<Draft>, HashMap<String, Active>)>),
    /// Postgres, shared by the replicas.
    Postgres(PgPool),
}

/// A failure of a lifecycle operation, mapped to a status by the admin API.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// No such draft (or another tenant's).
    #[error("no such draft")]
    NotFound,
    /// The source does not compile.
    #[error("rego compile error: {0}")]
    Compile(String),
    /// The draft is some slot's current or previous policy.
    #[error("draft is in use by an active policy slot")]
    InUse,
    /// Rollback without a previous draft.
    #[error("no previous policy to roll back to")]
    NoPrevious,
    /// The store failed.
    #[error("store error: {0}")]
    Store(#[from] sqlx::Error),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fresh draft id: 8 random bytes, hex.
fn new_id() -> String {
    let mut b = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Drafts, pointers and publication into the snapshot.
#[derive(Debug)]
pub struct PolicyManager {
    store: PolicyStore,
    snapshot: Arc<SnapshotCell>,
    syntax: Syntax,
    /// The startup policy: what the default slot runs when it has no draft.
    base: Policy,
    /// Where the startup policy came from (`embedded default`, `file:/path`).
    base_label: String,
    /// The draft published in each slot, so a resync recompiles only what changed.
    published: Mutex<HashMap<String, String>>,
}

impl PolicyManager {
    /// A manager over `store` publishing into `snapshot`.
    pub fn new(
        store: PolicyStore,
        snapshot: Arc<SnapshotCell>,
        syntax: Syntax,
        base: (Policy, String),
    ) -> Self {
        Self {
            store,
            snapshot,
            syntax,
            base: base.0,
            base_label: base.1,
            published: Mutex::default(),
        }
    }

    /// Where the startup policy came from.
    pub fn base_label(&self) -> &str {
        &self.base_label
    }

    /// Compiles `source` exactly as the data plane will run it.
    pub fn compile(&self, source: &str) -> Result<Policy, PolicyError> {
        if source.trim().is_empty() {
            return Err(PolicyError::Compile("rego_source is required".into()));
        }
        Policy::compile(source, self.syntax).map_err(|e| PolicyError::Compile(e.to_string()))
    }

    /// Drafts newest updated first.
    pub async fn list(
        &self,
        tenant: Option<&str>,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<Draft>, PolicyError> {
        match &self.store {
            PolicyStore::Memory(m) => {
                let (drafts, _) = &*lock(m);
                let mut out: Vec<Draft> = drafts
                    .iter()
                    .filter(|d| tenant.is_none_or(|t| d.tenant == t))
                    .cloned()
                    .collect();
                out.sort_by(|a, b| {
                    b.updated_at
                        .cmp(&a.updated_at)
                        .then_with(|| a.id.cmp(&b.id))
                });
                let skip = usize::try_from(offset).unwrap_or(0);
                let take = usize::try_from(limit).unwrap_or(0);
                Ok(out.into_iter().skip(skip).take(take).collect())
            }
            PolicyStore::Postgres(pool) => Ok(sql::list_drafts(pool, tenant, limit, offset).await?),
        }
    }

    /// One draft, when it exists and `tenant` (a tenant admin's) owns it.
    pub async fn get(&self, id: &str, tenant: Option<&str>) -> Result<Draft, PolicyError> {
        let found = match &self.store {
            PolicyStore::Memory(m) => lock(m).0.iter().find(|d| d.id == id).cloned(),
            PolicyStore::Postgres(pool) => sql::get_draft(pool, id).await?,
        };
        found
            .filter(|d| tenant.is_none_or(|t| d.tenant == t))
            .ok_or(PolicyError::NotFound)
    }

    async fn save(&self, d: &Draft) -> Result<(), PolicyError> {
        match &self.store {
            PolicyStore::Memory(m) => {
                let (drafts, _) = &mut *lock(m);
                match drafts.iter_mut().find(|x| x.id == d.id) {
                    Some(x) => *x = d.clone(),
                    None => drafts.push(d.clone()),
                }
                Ok(())
            }
            PolicyStore::Postgres(pool) => Ok(sql::save_draft(pool, d).await?),
        }
    }

    /// Creates a draft after compiling it.
    pub async fn create(
        &self,
        tenant: &str,
        name: &str,
        description: &str,
        source: &str,
        created_by: &str,
    ) -> Result<Draft, PolicyError> {
        self.compile(source)?;
        let now = Timestamp::now();
        let d = Draft {
            id: new_id(),
            name: name.to_owned(),
            description: description.to_owned(),
            rego_source: source.to_owned(),
            tenant: tenant.to_owned(),
            created_at: now,
            updated_at: now,
            created_by: created_by.to_owned(),
        };
        self.save(&d).await?;
        Ok(d)
    }

    /// Replaces a draft's text after compiling it (its tenant never changes).
    pub async fn update(
        &self,
        id: &str,
        scope: Option<&str>,
        name: &str,
        description: &str,
        source: &str,
    ) -> Result<Draft, PolicyError> {
        let mut d = self.get(id, scope).await?;
        self.compile(source)?;
        d.name = name.to_owned();
        d.description = description.to_owned();
        d.rego_source = source.to_owned();
        d.updated_at = Timestamp::now();
        self.save(&d).await?;
        Ok(d)
    }

    /// Deletes a draft no slot points at.
    pub async fn delete(&self, id: &str, scope: Option<&str>) -> Result<(), PolicyError> {
        self.get(id, scope).await?;
        match &self.store {
            PolicyStore::Memory(m) => {
                let (drafts, active) = &mut *lock(m);
                if active
                    .values()
                    .any(|a| a.current_draft_id == id || a.previous_draft_id == id)
                {
                    return Err(PolicyError::InUse);
                }
                drafts.retain(|d| d.id != id);
                Ok(())
            }
            PolicyStore::Postgres(pool) => match sql::delete_draft(pool, id).await? {
                Some(true) => Ok(()),
                Some(false) => Err(PolicyError::InUse),
                None => Err(PolicyError::NotFound),
            },
        }
    }

    /// A slot's pointer.
    pub async fn active(&self, tenant: &str) -> Result<Active, PolicyError> {
        match &self.store {
            PolicyStore::Memory(m) => Ok(lock(m)
                .1
                .get(tenant)
                .cloned()
                .unwrap_or_else(|| Active::empty(tenant))),
            PolicyStore::Postgres(pool) => Ok(sql::get_active(pool, tenant).await?),
        }
    }

    /// Changes a slot's pointer atomically (a row lock in Postgres, the mutex in memory).
    async fn modify_active(
        &self,
        slot: &str,
        change: impl FnOnce(Active) -> Result<Option<Active>, PolicyError>,
    ) -> Result<Active, PolicyError> {
        match &self.store {
            PolicyStore::Memory(m) => {
                let (_, active) = &mut *lock(m);
                let current = active
                    .get(slot)
                    .cloned()
                    .unwrap_or_else(|| Active::empty(slot));
                match change(current.clone())? {
                    Some(next) => {
                        active.insert(slot.to_owned(), next.clone());
                        Ok(next)
                    }
                    None => Ok(current),
                }
            }
            PolicyStore::Postgres(pool) => sql::modify_active(pool, slot, change).await?,
        }
    }

    /// Makes `draft_id` the slot's policy (the current one becomes previous) and swaps it in.
    pub async fn promote(
        &self,
        slot: &str,
        draft_id: &str,
        scope: Option<&str>,
        by: &str,
    ) -> Result<(Active, Option<String>), PolicyError> {
        let draft = self.get(draft_id, scope).await?;
        let policy = self.compile(&draft.rego_source)?;
        let mut prior = None;
        let a = self
            .modify_active(slot, |mut a| {
                prior = (!a.current_draft_id.is_empty()).then(|| a.current_draft_id.clone());
                if a.current_draft_id == draft_id {
                    return Ok(None); // promoting the current draft changes nothing
                }
                a.previous_draft_id =
                    std::mem::replace(&mut a.current_draft_id, draft_id.to_owned());
                a.promoted_at = Some(Timestamp::now());
                by.clone_into(&mut a.promoted_by);
                Ok(Some(a))
            })
            .await?;
        self.publish(slot, Some(policy));
        lock(&self.published).insert(slot.to_owned(), draft_id.to_owned());
        Ok((a, prior))
    }

    /// Restores the previous draft (one step; previous is then empty) and swaps it in.
    pub async fn rollback(&self, slot: &str, by: &str) -> Result<Active, PolicyError> {
        let previous = self.active(slot).await?.previous_draft_id;
        if previous.is_empty() {
            return Err(PolicyError::NoPrevious);
        }
        let draft = self.get(&previous, None).await?;
        let policy = self.compile(&draft.rego_source)?;
        let a = self
            .modify_active(slot, |mut a| {
                // Someone else changed the slot in between: refuse rather than guess.
                if a.previous_draft_id != previous {
                    return Err(PolicyError::NoPrevious);
                }
                a.current_draft_id = std::mem::take(&mut a.previous_draft_id);
                a.promoted_at = Some(Timestamp::now());
                by.clone_into(&mut a.promoted_by);
                Ok(Some(a))
            })
            .await?;
        self.publish(slot, Some(policy));
        lock(&self.published).insert(slot.to_owned(), a.current_draft_id.clone());
        Ok(a)
    }

    /// Empties a slot: a tenant falls back to the default slot, the default slot to the
    /// startup policy.
    pub async fn clear(&self, slot: &str) -> Result<Active, PolicyError> {
        let mut cleared = Active::empty(slot);
        self.modify_active(slot, |a| {
            cleared = a;
            Ok(Some(Active::empty(slot)))
        })
        .await?;
        self.publish(slot, None);
        lock(&self.published).remove(slot);
        Ok(cleared)
    }

    /// Puts `policy` into the snapshot's slot (`None`: empty the slot).
    pub fn publish(&self, slot: &str, policy: Option<Policy>) {
        self.snapshot.update(|s| {
            if slot.is_empty() {
                s.default_policy = policy.unwrap_or_else(|| self.base.clone());
            } else {
                let mut map = HashMap::clone(&s.tenant_policies);
                match policy {
                    Some(p) => map.insert(slot.to_owned(), p),
                    None => map.remove(slot),
                };
                s.tenant_policies = Arc::new(map);
            }
        });
    }

    /// Loads a slot's current draft from the store and publishes it (startup, and a NOTIFY
    /// from another replica).
    pub async fn reload(&self, slot: &str) -> Result<(), PolicyError> {
        let a = self.active(slot).await?;
        if a.current_draft_id.is_empty() {
            self.publish(slot, None);
            lock(&self.published).remove(slot);
            return Ok(());
        }
        let draft = self.get(&a.current_draft_id, None).await?;
        let policy = self.compile(&draft.rego_source)?;
        self.publish(slot, Some(policy));
        lock(&self.published).insert(slot.to_owned(), a.current_draft_id);
        Ok(())
    }

    /// The safety net for lost notifications: reloads the slots whose current draft differs
    /// from what this process published, and empties the ones no longer set. Returns how many
    /// slots changed.
    pub async fn resync(&self) -> Result<usize, PolicyError> {
        let PolicyStore::Postgres(pool) = &self.store else {
            return Ok(0); // one process: nothing can change behind its back
        };
        let active: HashMap<String, String> = sql::all_active(pool)
            .await?
            .into_iter()
            .map(|a| (a.tenant, a.current_draft_id))
            .collect();
        let published = lock(&self.published).clone();
        let mut changed = 0;
        for (slot, draft) in &active {
            if published.get(slot) != Some(draft) {
                self.reload(slot).await?;
                changed += 1;
            }
        }
        for slot in published.keys().filter(|s| !active.contains_key(*s)) {
            self.reload(slot).await?;
            changed += 1;
        }
        Ok(changed)
    }

    /// Loads every slot with a current draft (startup: a draft that no longer compiles stops
    /// the gateway rather than serving without it).
    pub async fn load_all(&self) -> Result<usize, PolicyError> {
        let slots: Vec<String> = match &self.store {
            PolicyStore::Memory(m) => lock(m).1.keys().cloned().collect(),
            PolicyStore::Postgres(pool) => sql::all_active(pool)
                .await?
                .into_iter()
                .map(|a| a.tenant)
                .collect(),
        };
        for slot in &slots {
            self.reload(slot).await?;
        }
        Ok(slots.len())
    }
}
