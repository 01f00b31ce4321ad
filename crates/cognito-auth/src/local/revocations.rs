//! This node's list of recently revoked sessions, kept current by polling the store: one query
//! per poll for the whole node, instead of a session read per request.
//!
//! An access token lives at most `keep` (the access-token lifetime) and no token is issued in a
//! revoked session, so a revocation older than that can be forgotten: the list holds only the
//! last hour's sign-outs. Polls read from a little before the newest revocation seen, so a
//! revocation committed late, or stamped by a node whose clock is a little behind, is still
//! found. While the list is stale (polls failing or not running), it answers "don't know" and the
//! caller reads the session from the store.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::Duration;

use super::store::RevokedSession;
use crate::Revocation;

/// How far before the newest revocation seen each poll reads again.
const OVERLAP_MS: i64 = 5_000;

#[derive(Debug)]
pub(super) struct Revocations {
    state: Mutex<State>,
    /// How long a revocation matters (ms).
    keep: i64,
    /// How long after a poll the list is trusted (ms); 0: never.
    fresh_for: i64,
}

#[derive(Debug, Default)]
struct State {
    /// Revoked family → when.
    families: HashMap<String, i64>,
    /// Learned but not yet handed to `poll_revocations`' caller.
    unreported: Vec<Revocation>,
    /// The newest revocation time seen.
    newest: Option<i64>,
    /// When the last poll succeeded.
    polled_at: Option<i64>,
}

impl Revocations {
    /// Revocations matter for `access_ttl`; the list is trusted for twice `poll_interval` after a
    /// poll, plus a second (one poll may be late).
    pub(super) fn new(access_ttl: Duration, poll_interval: Duration) -> Self {
        let interval = poll_interval.num_milliseconds();
        Self {
            state: Mutex::new(State::default()),
            keep: access_ttl.num_milliseconds() + OVERLAP_MS,
            fresh_for: if interval > 0 {
                2 * interval + 1_000
            } else {
                0
            },
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.state.lock().expect("revocations lock"))
    }

    /// `Some(true)`: revoked. `Some(false)`: not revoked, as of a recent poll. `None`: the list
    /// is stale; ask the store.
    pub(super) fn lookup(&self, family: &str, now: i64) -> Option<bool> {
        self.with(|s| {
            if s.families.contains_key(family) {
                Some(true)
            } else if s.polled_at.is_some_and(|at| now - at < self.fresh_for) {
                Some(false)
            } else {
                None
            }
        })
    }

    /// Where the next poll reads from.
    pub(super) fn poll_from(&self, now: i64) -> i64 {
        self.with(|s| {
            s.newest
                .map_or(now - self.keep, |newest| newest - OVERLAP_MS)
        })
    }

    /// Takes in what a poll (or this node's own revocation) found; with `report`, returns every
    /// revocation not yet reported.
    pub(super) fn learn(
        &self,
        seen: Vec<RevokedSession>,
        now: i64,
        polled: bool,
    ) -> Vec<Revocation> {
        self.with(|s| {
            for revoked in seen {
                s.newest = Some(
                    s.newest
                        .map_or(revoked.revoked_at, |n| n.max(revoked.revoked_at)),
                );
                if s.families
                    .insert(revoked.family, revoked.revoked_at)
                    .is_none()
                    && !s.unreported.iter().any(|r| r.username == revoked.username)
                {
                    s.unreported.push(Revocation {
                        username: revoked.username,
                    });
                }
            }
            let horizon = now - self.keep;
            s.families.retain(|_, at| *at >= horizon);
            if polled {
                s.polled_at = Some(now);
                std::mem::take(&mut s.unreported)
            } else {
                Vec::new()
            }
        })
    }

    /// Records a revocation made on this node, before any poll sees it.
    pub(super) fn revoke_locally(&self, family: &str, username: &str, at: i64) {
        self.learn(
            vec![RevokedSession {
                family: family.to_owned(),
                username: username.to_owned(),
                revoked_at: at,
            }],
            at,
            false,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoked(family: &str, username: &str, at: i64) -> RevokedSession {
        RevokedSession {
            family: family.into(),
            username: username.into(),
            revoked_at: at,
        }
    }

    #[test]
    fn stale_until_polled_then_fresh_for_a_while() {
        let list = Revocations::new(Duration::hours(1), Duration::seconds(1));
        assert_eq!(list.lookup("f", 0), None, "never polled");
        assert!(list.learn(vec![], 0, true).is_empty());
        assert_eq!(list.lookup("f", 100), Some(false));
        assert_eq!(list.lookup("f", 3_100), None, "polls stopped");
    }

    #[test]
    fn each_revocation_is_reported_once_and_forgotten_after_the_token_lifetime() {
        let list = Revocations::new(Duration::hours(1), Duration::seconds(1));
        let first = list.learn(
            vec![revoked("f1", "u", 10), revoked("f2", "u", 10)],
            20,
            true,
        );
        assert_eq!(
            first,
            vec![Revocation {
                username: "u".into()
            }]
        );
        // Read again by the next poll's overlap: known, not reported twice.
        assert!(
            list.learn(vec![revoked("f1", "u", 10)], 1_020, true)
                .is_empty()
        );
        assert_eq!(list.poll_from(1_020), 10 - OVERLAP_MS);
        assert_eq!(list.lookup("f1", 1_020), Some(true));
        // Revoked here: known at once, reported by the next poll.
        list.revoke_locally("f3", "v", 1_500);
        assert_eq!(list.lookup("f3", 1_500), Some(true));
        assert_eq!(
            list.learn(vec![], 2_000, true),
            vec![Revocation {
                username: "v".into()
            }]
        );
        let later = 3_600_000 + OVERLAP_MS + 1_600;
        list.learn(vec![], later, true);
        assert_eq!(list.lookup("f1", later), Some(false), "forgotten");
    }

    #[test]
    fn with_no_cache_the_list_is_never_trusted_to_say_active() {
        let list = Revocations::new(Duration::hours(1), Duration::zero());
        list.learn(vec![revoked("f1", "u", 10)], 20, true);
        assert_eq!(list.lookup("f1", 20), Some(true));
        assert_eq!(list.lookup("f2", 20), None);
    }
}
