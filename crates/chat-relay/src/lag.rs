//! How long deliveries took from their acceptance to this node's fan-out, kept as a fixed-bucket
//! histogram so that an application can export it (to Prometheus or anything else) without this
//! crate choosing a metrics library. Across nodes the figure includes their clocks' skew.

use std::sync::atomic::{AtomicU64, Ordering};

/// The buckets' upper bounds in milliseconds; one more bucket counts everything slower.
pub const LAG_BOUNDS_MS: [u64; 12] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 10_000];

const BUCKETS: usize = LAG_BOUNDS_MS.len() + 1;

/// A snapshot of delivery lags on one node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeliveryLag {
    /// `counts[i]` deliveries took at most `LAG_BOUNDS_MS[i]` ms (and more than the bound
    /// before); the last entry counts those slower than every bound.
    pub counts: [u64; BUCKETS],
    /// The lags added up, in milliseconds.
    pub sum_ms: u64,
}

impl DeliveryLag {
    /// Deliveries measured.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// Records lags without a lock.
#[derive(Debug, Default)]
pub(crate) struct LagRecorder {
    counts: [AtomicU64; BUCKETS],
    sum_ms: AtomicU64,
}

impl LagRecorder {
    /// Counts one delivery that took `ms` milliseconds (a clock behind the sender's counts as 0).
    pub(crate) fn record(&self, ms: i64) {
        let ms = u64::try_from(ms).unwrap_or(0);
        let bucket = LAG_BOUNDS_MS.partition_point(|bound| *bound < ms);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
    }

    pub(crate) fn snapshot(&self) -> DeliveryLag {
        DeliveryLag {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            sum_ms: self.sum_ms.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lags_land_in_the_first_bucket_that_holds_them() {
        let lag = LagRecorder::default();
        for ms in [-5, 0, 1, 2, 3, 10_000, 10_001] {
            lag.record(ms);
        }
        let snapshot = lag.snapshot();
        assert_eq!(snapshot.counts[0], 3, "-5 (clock skew), 0 and 1 ms");
        assert_eq!(snapshot.counts[1], 1, "2 ms");
        assert_eq!(snapshot.counts[2], 1, "3 ms");
        assert_eq!(snapshot.counts[LAG_BOUNDS_MS.len() - 1], 1, "10 s");
        assert_eq!(
            snapshot.counts[LAG_BOUNDS_MS.len()],
            1,
            "slower than every bound"
        );
        assert_eq!(snapshot.count(), 7);
        assert_eq!(snapshot.sum_ms, 1 + 2 + 3 + 10_000 + 10_001);
    }
}
