//! Collectors read at scrape time: the search cache's counters, a dependency's health, the chat
//! hub's connections, deliveries and delivery lag, and the waiting rooms' last reading.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeMetric, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::activity::QueueReadings;

/// Writes one family with one labelled sample.
fn one(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    labels: &impl EncodeLabelSet,
    metric: &impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, metric.metric_type())?;
    metric.encode(family.encode_family(labels)?)
}

/// Writes one family with one sample without labels.
fn plain(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    metric: &impl EncodeMetric,
) -> Result<(), std::fmt::Error> {
    metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)
}

/// Reads a cache's counters.
#[derive(Debug)]
pub(super) struct CacheCollector {
    pub(super) name: &'static str,
    pub(super) stats: Arc<search_cache::CacheStats>,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
}

impl Collector for CacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.stats.snapshot();
        let labels = CacheLabels { cache: self.name };
        for (name, help, value) in [
            ("cache_hits", "Lookups answered from the cache", s.hits),
            ("cache_misses", "Lookups that ran the query", s.misses),
            (
                "cache_coalesced",
                "Lookups that waited for a query another caller was running",
                s.coalesced,
            ),
            (
                "cache_errors",
                "Cache backend failures (the query ran uncached)",
                s.errors,
            ),
        ] {
            one(&mut encoder, name, help, &labels, &ConstCounter::new(value))?;
        }
        Ok(())
    }
}

/// Reads a shared service's health.
#[derive(Debug)]
pub(super) struct DependencyCollector(pub(super) Arc<crate::outage::Dependency>);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DependencyLabels {
    dependency: &'static str,
}

impl Collector for DependencyCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let labels = DependencyLabels {
            dependency: self.0.name(),
        };
        one(
            &mut encoder,
            "dependency_up",
            "Whether the service answers (1) or is known to be down (0)",
            &labels,
            &ConstGauge::new(i64::from(self.0.is_up())),
        )?;
        one(
            &mut encoder,
            "dependency_outages",
            "Times the service went down since start",
            &labels,
            &ConstCounter::new(self.0.outages()),
        )
    }
}

/// A histogram read from somewhere else: per-bucket counts with their upper bounds (the last
/// `f64::MAX`, written `+Inf`).
struct ConstHistogram {
    sum: f64,
    count: u64,
    buckets: Vec<(f64, u64)>,
}

impl EncodeMetric for ConstHistogram {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_histogram::<NoLabelSet>(self.sum, self.count, &self.buckets, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

/// Reads this node's chat hub.
#[derive(Debug)]
pub(super) struct ChatCollector(pub(super) chat_relay::ChatServer);

impl Collector for ChatCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.0.stats();
        plain(
            &mut encoder,
            "chat_connections",
            "Chat (STOMP) connections open on this node",
            &ConstGauge::new(i64::try_from(stats.connections).unwrap_or(i64::MAX)),
        )?;
        plain(
            &mut encoder,
            "chat_deliveries",
            "Messages handed to a subscriber's connection on this node",
            &ConstCounter::new(stats.delivered),
        )?;
        plain(
            &mut encoder,
            "chat_overflows",
            "Deliveries refused because a subscriber fell behind (each closed its connection)",
            &ConstCounter::new(stats.overflowed),
        )?;
        let lag = stats.lag;
        let buckets = chat_relay::LAG_BOUNDS_MS
            .iter()
            .map(|ms| *ms as f64 / 1000.0)
            .chain([f64::MAX])
            .zip(lag.counts)
            .collect();
        plain(
            &mut encoder,
            "chat_delivery_lag_seconds",
            "Time from a message's acceptance to its fan-out on this node",
            &ConstHistogram {
                sum: lag.sum_ms as f64 / 1000.0,
                count: lag.count(),
                buckets,
            },
        )
    }
}

/// Reads the waiting rooms as the sold-out watcher last saw them.
#[derive(Debug)]
pub(super) struct QueueCollector(pub(super) Arc<QueueReadings>);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    queue: String,
}

impl Collector for QueueCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let readings = self.0.all();
        type Read = fn(&super::activity::QueueReading) -> u64;
        let families: [(&str, &str, bool, Read); 5] = [
            (
                "queue_waiting",
                "People in the waiting room's line",
                false,
                |r| r.waiting,
            ),
            (
                "queue_admitted_live",
                "Admissions not yet used or lapsed",
                false,
                |r| r.admitted,
            ),
            (
                "queue_admissions",
                "Admissions ever made (shared by every node)",
                true,
                |r| r.admitted_total,
            ),
            (
                "queue_paused",
                "Whether an admin paused admission (1)",
                false,
                |r| u64::from(r.paused),
            ),
            (
                "festival_days_sold_out",
                "Days of the queue's festival with no ticket left",
                false,
                |r| r.days_sold_out,
            ),
        ];
        for (name, help, counter, read) in families {
            let kind = if counter {
                MetricType::Counter
            } else {
                MetricType::Gauge
            };
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for (queue, reading) in &readings {
                let labels = QueueLabels {
                    queue: queue.clone(),
                };
                let value = read(reading);
                let sample = family.encode_family(&labels)?;
                if counter {
                    ConstCounter::new(value).encode(sample)?;
                } else {
                    ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(sample)?;
                }
            }
        }
        Ok(())
    }
}
