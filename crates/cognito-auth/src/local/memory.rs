//! In-memory account store: the test double and the store of a single-process server that does
//! not need accounts to survive a restart.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;

use super::store::{Account, AccountStore, RefreshLookup, RefreshRecord, StoreError};

#[derive(Debug, Default)]
struct State {
    accounts: HashMap<String, Account>,
    usernames: HashMap<String, String>,
    refresh: HashMap<String, (RefreshRecord, bool)>,
    families: HashMap<String, String>,
    revoked: HashSet<String>,
    key: Option<(String, String)>,
}

/// Accounts in a mutex-guarded map.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("memory store lock"))
    }
}

#[async_trait]
impl AccountStore for MemoryStore {
    async fn insert_account(&self, account: &Account) -> Result<(), StoreError> {
        self.with(|s| {
            if s.accounts.contains_key(&account.email) {
                return Err(StoreError::Conflict);
            }
            s.accounts.insert(account.email.clone(), account.clone());
            s.usernames
                .insert(account.username.clone(), account.email.clone());
            Ok(())
        })
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<Account>, StoreError> {
        Ok(self.with(|s| s.accounts.get(email).cloned()))
    }

    async fn account_by_username(&self, username: &str) -> Result<Option<Account>, StoreError> {
        Ok(self.with(|s| {
            s.usernames
                .get(username)
                .and_then(|email| s.accounts.get(email))
                .cloned()
        }))
    }

    async fn update_account(&self, account: &Account) -> Result<(), StoreError> {
        self.with(|s| {
            s.accounts.insert(account.email.clone(), account.clone());
        });
        Ok(())
    }

    async fn add_code_attempt(&self, email: &str) -> Result<u32, StoreError> {
        Ok(self.with(|s| {
            s.accounts.get_mut(email).map_or(0, |a| {
                a.code_attempts += 1;
                a.code_attempts
            })
        }))
    }

    async fn insert_refresh(&self, record: &RefreshRecord) -> Result<(), StoreError> {
        self.with(|s| {
            s.families
                .entry(record.family.clone())
                .or_insert_with(|| record.username.clone());
            s.refresh
                .insert(record.token_hash.clone(), (record.clone(), false));
        });
        Ok(())
    }

    async fn refresh_by_hash(&self, token_hash: &str) -> Result<Option<RefreshLookup>, StoreError> {
        Ok(self.with(|s| {
            s.refresh
                .get(token_hash)
                .map(|(record, used)| RefreshLookup {
                    family_revoked: s.revoked.contains(&record.family),
                    record: record.clone(),
                    used: *used,
                })
        }))
    }

    async fn mark_refresh_used(&self, token_hash: &str) -> Result<bool, StoreError> {
        Ok(self.with(|s| match s.refresh.get_mut(token_hash) {
            Some((_, used)) if !*used => {
                *used = true;
                true
            }
            _ => false,
        }))
    }

    async fn revoke_family(&self, family: &str) -> Result<(), StoreError> {
        self.with(|s| s.revoked.insert(family.to_owned()));
        Ok(())
    }

    async fn revoke_user(&self, username: &str) -> Result<(), StoreError> {
        self.with(|s| {
            let families: Vec<String> = s
                .families
                .iter()
                .filter(|(_, owner)| *owner == username)
                .map(|(f, _)| f.clone())
                .collect();
            s.revoked.extend(families);
        });
        Ok(())
    }

    async fn family_active(&self, family: &str) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.families.contains_key(family) && !s.revoked.contains(family)))
    }

    async fn signing_key(&self) -> Result<Option<(String, String)>, StoreError> {
        Ok(self.with(|s| s.key.clone()))
    }

    async fn store_signing_key(
        &self,
        kid: &str,
        pem: &str,
    ) -> Result<(String, String), StoreError> {
        Ok(self.with(|s| {
            s.key
                .get_or_insert_with(|| (kid.to_owned(), pem.to_owned()))
                .clone()
        }))
    }
}
