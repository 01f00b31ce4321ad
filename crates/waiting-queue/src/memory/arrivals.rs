//! The line itself: arrivals numbered in order, with the rank of any arrival in O(log n).
//!
//! A slot per arrival and a Fenwick tree of 0/1 counts over the slots: a rank is a prefix sum.
//! People leave from anywhere but are mostly admitted from the front, so the consumed front is
//! cut off (and the tree rebuilt, O(n)) once it is at least half of the slots: amortised O(1).

use std::sync::Arc;

/// Below this many consumed slots the front is not worth cutting off.
const COMPACT_MIN: usize = 1024;

#[derive(Debug, Default)]
pub(super) struct Arrivals {
    /// Arrival number of `slots[0]`.
    base: u64,
    slots: Vec<Option<Arc<str>>>,
    /// 1-based Fenwick tree over `slots`; `tree[0]` is unused.
    tree: Vec<u32>,
    /// No one is in `slots[..head]`.
    head: usize,
    present: usize,
}

impl Arrivals {
    /// Appends `user`; returns their arrival number.
    pub(super) fn push(&mut self, user: Arc<str>) -> u64 {
        if self.tree.is_empty() {
            self.tree.push(0);
        }
        self.slots.push(Some(user));
        let i = self.slots.len();
        // A new last node covers (i - lowbit(i), i]: itself plus the nodes before it in range.
        let low = i & i.wrapping_neg();
        let covered = self.prefix(i - 1) - self.prefix(i - low);
        self.tree.push(1 + covered);
        self.present += 1;
        self.base + (i as u64 - 1)
    }

    /// Removes the arrival `seq`; returns who it was.
    pub(super) fn remove(&mut self, seq: u64) -> Option<Arc<str>> {
        let index = usize::try_from(seq.checked_sub(self.base)?).ok()?;
        let user = self.slots.get_mut(index)?.take()?;
        self.add(index + 1, -1);
        self.present -= 1;
        self.advance_head();
        Some(user)
    }

    /// 1-based rank of the arrival `seq`, which must be present.
    pub(super) fn rank(&self, seq: u64) -> u64 {
        let index = (seq - self.base) as usize;
        u64::from(self.prefix(index + 1))
    }

    /// Takes up to `n` from the front, in order.
    pub(super) fn pop_front(&mut self, n: usize) -> Vec<(u64, Arc<str>)> {
        let mut out = Vec::with_capacity(n.min(self.present));
        let mut i = self.head;
        while out.len() < n && i < self.slots.len() {
            if let Some(user) = self.slots[i].take() {
                self.add(i + 1, -1);
                self.present -= 1;
                out.push((self.base + i as u64, user));
            }
            i += 1;
        }
        self.advance_head();
        out
    }

    pub(super) fn len(&self) -> usize {
        self.present
    }

    fn advance_head(&mut self) {
        while self.head < self.slots.len() && self.slots[self.head].is_none() {
            self.head += 1;
        }
        if self.present == 0 {
            self.base += self.slots.len() as u64;
            self.slots.clear();
            self.tree.clear();
            self.head = 0;
        } else if self.head >= COMPACT_MIN && self.head * 2 >= self.slots.len() {
            self.compact();
        }
    }

    fn compact(&mut self) {
        self.slots.drain(..self.head);
        self.base += self.head as u64;
        self.head = 0;
        // Linear build: each node passes its total to its parent.
        self.tree.clear();
        self.tree.push(0);
        self.tree
            .extend(self.slots.iter().map(|s| u32::from(s.is_some())));
        for i in 1..self.tree.len() {
            let parent = i + (i & i.wrapping_neg());
            if parent < self.tree.len() {
                self.tree[parent] += self.tree[i];
            }
        }
    }

    fn prefix(&self, mut i: usize) -> u32 {
        let mut sum = 0;
        while i > 0 {
            sum += self.tree[i];
            i &= i - 1;
        }
        sum
    }

    fn add(&mut self, mut i: usize, delta: i32) {
        while i < self.tree.len() {
            self.tree[i] = self.tree[i].wrapping_add_signed(delta);
            i += i & i.wrapping_neg();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u64) -> Arc<str> {
        Arc::from(n.to_string())
    }

    /// Checks every rank against a plain list, through pushes, removals, pops and compactions.
    #[test]
    fn ranks_match_a_plain_list() {
        let mut arrivals = Arrivals::default();
        let mut model: Vec<u64> = Vec::new();
        let mut next = 0u64;
        // A deterministic mix: mostly joins, some leaves from the middle, batches off the front.
        let mut state = 0x2545_f491_u64;
        for step in 0..20_000u64 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            match state % 10 {
                0..=5 => {
                    let seq = arrivals.push(user(next));
                    assert_eq!(seq, next);
                    model.push(next);
                    next += 1;
                }
                6 | 7 if !model.is_empty() => {
                    let victim = model.remove((state >> 8) as usize % model.len());
                    assert_eq!(
                        arrivals.remove(victim).as_deref(),
                        Some(&*victim.to_string())
                    );
                    assert!(arrivals.remove(victim).is_none(), "removed twice");
                }
                _ => {
                    let n = (state >> 16) as usize % 4;
                    let popped: Vec<u64> = arrivals.pop_front(n).iter().map(|p| p.0).collect();
                    let expected: Vec<u64> = model.drain(..n.min(model.len())).collect();
                    assert_eq!(popped, expected);
                }
            }
            assert_eq!(arrivals.len(), model.len());
            if step % 97 == 0 {
                for (i, seq) in model.iter().enumerate() {
                    assert_eq!(arrivals.rank(*seq), i as u64 + 1);
                }
            }
        }
    }

    #[test]
    fn the_consumed_front_is_cut_off() {
        let mut arrivals = Arrivals::default();
        for n in 0..10_000 {
            arrivals.push(user(n));
        }
        arrivals.pop_front(9_000);
        assert!(
            arrivals.slots.len() <= 1_000,
            "{} slots kept",
            arrivals.slots.len()
        );
        assert_eq!(arrivals.rank(9_000), 1);
        assert_eq!(arrivals.rank(9_999), 1_000);
    }
}
