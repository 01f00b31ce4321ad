//! In-memory account store: the test double and the store of a single-process server that does
//! not need accounts to survive a restart.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::store::{
    Account, AccountStore, RefreshLookup, RefreshRecord, RevokedSession, StoreError,
};

#[derive(Debug, Default)]
struct State {
    accounts: HashMap<String, Account>,
    usernames: HashMap<String, String>,
    refresh: HashMap<String, (RefreshRecord, bool)>,
    families: HashMap<String, String>,
    /// Revoked families and when.
    revoked: HashMap<String, i64>,
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
            if let Some(stored) = s.accounts.get_mut(&account.email) {
                *stored = Account {
                    username: stored.username.clone(),
                    email: stored.email.clone(),
                    ..account.clone()
                };
            }
        });
        Ok(())
    }

    async fn update_if_code(
        &self,
        account: &Account,
        expected_code_hash: &str,
    ) -> Result<bool, StoreError> {
        self.with(|s| match s.accounts.get_mut(&account.email) {
            Some(stored) if stored.code_hash.as_deref() == Some(expected_code_hash) => {
                *stored = Account {
                    username: stored.username.clone(),
                    email: stored.email.clone(),
                    ..account.clone()
                };
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    async fn take_code_attempt(
        &self,
        email: &str,
        per_code: u32,
        per_window: u32,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| match s.accounts.get_mut(email) {
            Some(a) if a.code_attempts < per_code && a.window_attempts < per_window => {
                a.code_attempts += 1;
                a.window_attempts += 1;
                true
            }
            _ => false,
        }))
    }

    async fn purge_pending(&self, before: i64) -> Result<u64, StoreError> {
        Ok(self.with(|s| {
            let gone: Vec<Account> = s
                .accounts
                .values()
                .filter(|a| !a.confirmed && a.created_at < before)
                .cloned()
                .collect();
            for account in &gone {
                s.accounts.remove(&account.email);
                s.usernames.remove(&account.username);
            }
            gone.len() as u64
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
                    family_revoked: s.revoked.contains_key(&record.family),
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

    async fn revoke_family(&self, family: &str, at: i64) -> Result<(), StoreError> {
        self.with(|s| {
            if s.families.contains_key(family) {
                s.revoked.entry(family.to_owned()).or_insert(at);
            }
        });
        Ok(())
    }

    async fn revoke_user(&self, username: &str, at: i64) -> Result<(), StoreError> {
        self.with(|s| {
            let families: Vec<String> = s
                .families
                .iter()
                .filter(|(family, owner)| *owner == username && !s.revoked.contains_key(*family))
                .map(|(f, _)| f.clone())
                .collect();
            s.revoked.extend(families.into_iter().map(|f| (f, at)));
        });
        Ok(())
    }

    async fn revoked_since(&self, since: i64) -> Result<Vec<RevokedSession>, StoreError> {
        Ok(self.with(|s| {
            s.revoked
                .iter()
                .filter(|(_, at)| **at >= since)
                .filter_map(|(family, at)| {
                    Some(RevokedSession {
                        family: family.clone(),
                        username: s.families.get(family)?.clone(),
                        revoked_at: *at,
                    })
                })
                .collect()
        }))
    }

    async fn family_active(&self, family: &str) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.families.contains_key(family) && !s.revoked.contains_key(family)))
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
