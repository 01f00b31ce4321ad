//! The Redis backend: one queue is a few keys under `{prefix}users:queue:{queue}:`, and every
//! change is one Lua script, so any number of nodes share a queue without races.
//!
//! | key | type | content |
//! |---|---|---|
//! | `…:wait` | ZSET | waiting users, scored by arrival number (the seed scored by second, so ties reordered) |
//! | `…:proceed` | ZSET | admitted users, scored by expiry in ms (the seed's never expired) |
//! | `…:seen` | ZSET | waiting users by last sign of life in ms, for idle drops |
//! | `…:meta` | HASH | arrival and tick counters, last tick, totals, pause flag, configured policy |
//! | `…:admits` | LIST | recent ticks as `ms:count`, for the admission rate |
//! | `{prefix}users:queues` | SET | queue names a driver should tick |
//!
//! With an empty prefix the first two are exactly the seed's keys. The keys of one queue are
//! used together in scripts, so this needs one Redis primary (not a cluster), as the seed did.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use engine_clock::{Clock, SystemClock};
use redis::Script;
use redis::aio::ConnectionManager;

use crate::model::{check_user, rate};
use crate::{
    Admission, Place, Policy, QueueError, QueueName, QueueStats, Result, Tick, TickRule,
    WaitingQueue,
};

struct Scripts {
    join: Script,
    rank: Script,
    leave: Script,
    finish: Script,
    configure: Script,
    tick: Script,
}

impl Scripts {
    fn load() -> Self {
        Self {
            join: Script::new(include_str!("join.lua")),
            rank: Script::new(include_str!("rank.lua")),
            leave: Script::new(include_str!("leave.lua")),
            finish: Script::new(include_str!("finish.lua")),
            configure: Script::new(include_str!("configure.lua")),
            tick: Script::new(include_str!("tick.lua")),
        }
    }
}

/// The Redis [`WaitingQueue`].
#[derive(Clone)]
pub struct RedisQueue {
    conn: ConnectionManager,
    prefix: String,
    clock: Arc<dyn Clock>,
    default_policy: Policy,
    scripts: Arc<Scripts>,
}

impl std::fmt::Debug for RedisQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQueue")
            .field("prefix", &self.prefix)
            .field("default_policy", &self.default_policy)
            .finish_non_exhaustive()
    }
}

struct Keys {
    wait: String,
    proceed: String,
    seen: String,
    meta: String,
    admits: String,
}

fn unavailable(e: redis::RedisError) -> QueueError {
    QueueError::unavailable("redis", e)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl RedisQueue {
    /// Queues under `{prefix}users:queue:` (an empty prefix gives the seed's keys), timed by the
    /// system clock.
    pub fn new(conn: ConnectionManager, prefix: impl Into<String>) -> Self {
        Self {
            conn,
            prefix: prefix.into(),
            clock: Arc::new(SystemClock),
            default_policy: Policy::default(),
            scripts: Arc::new(Scripts::load()),
        }
    }

    /// Reads the time from `clock` (tests move a manual one). Every node must agree roughly on
    /// the time: admissions expire by it.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Uses `policy` for queues that were not configured.
    pub fn with_default_policy(mut self, policy: Policy) -> Self {
        self.default_policy = policy;
        self
    }

    /// The key of `queue`'s waiting set (for inspection and tests).
    pub fn wait_key(&self, queue: &QueueName) -> String {
        self.keys(queue).wait
    }

    fn keys(&self, queue: &QueueName) -> Keys {
        let base = format!("{}users:queue:{queue}:", self.prefix);
        Keys {
            wait: format!("{base}wait"),
            proceed: format!("{base}proceed"),
            seen: format!("{base}seen"),
            meta: format!("{base}meta"),
            admits: format!("{base}admits"),
        }
    }

    fn index(&self) -> String {
        format!("{}users:queues", self.prefix)
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    async fn run_tick(&self, queue: &QueueName, mode: &str, n: u64) -> Result<Tick> {
        let k = self.keys(queue);
        let p = &self.default_policy;
        let (applied, tick, expired, dropped, waiting, admitted): (
            i64,
            u64,
            u64,
            u64,
            u64,
            Vec<String>,
        ) = self
            .scripts
            .tick
            .key(&k.wait)
            .key(&k.proceed)
            .key(&k.seen)
            .key(&k.meta)
            .key(&k.admits)
            .key(self.index())
            .arg(self.now_ms())
            .arg(p.batch_size)
            .arg(millis(p.interval))
            .arg(p.max_active.unwrap_or(0))
            .arg(millis(p.admitted_ttl))
            .arg(p.idle_timeout.map_or(0, millis))
            .arg(mode)
            .arg(n)
            .arg(queue.as_str())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(Tick {
            applied: applied == 1,
            tick,
            admitted,
            expired,
            dropped,
            waiting,
        })
    }

    fn policy_from(&self, meta: &HashMap<String, String>) -> Option<Policy> {
        if meta.get("configured").map(String::as_str) != Some("1") {
            return None;
        }
        let num = |field: &str| meta.get(field).and_then(|v| v.parse::<u64>().ok());
        let ms = |field: &str| num(field).map(Duration::from_millis);
        Some(Policy {
            batch_size: num("batch").and_then(|v| u32::try_from(v).ok())?,
            interval: ms("interval_ms")?,
            max_active: num("max_active")
                .filter(|&v| v > 0)
                .and_then(|v| u32::try_from(v).ok()),
            admitted_ttl: ms("ttl_ms")?,
            idle_timeout: ms("idle_ms").filter(|d| !d.is_zero()),
        })
    }
}

#[async_trait]
impl WaitingQueue for RedisQueue {
    async fn join(&self, queue: &QueueName, user: &str) -> Result<Place> {
        check_user(user)?;
        let k = self.keys(queue);
        let reply: Vec<i64> = self
            .scripts
            .join
            .key(&k.wait)
            .key(&k.proceed)
            .key(&k.seen)
            .key(&k.meta)
            .key(self.index())
            .arg(self.now_ms())
            .arg(user)
            .arg(queue.as_str())
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        match reply.as_slice() {
            [2, expires] => Ok(Place::Admitted(Admission {
                expires_at: to_time(*expires),
            })),
            [1, rank, new] => Ok(Place::Waiting {
                rank: u64::try_from(*rank).unwrap_or(0),
                new: *new == 1,
            }),
            other => Err(QueueError::unavailable(
                "redis",
                format!("unexpected join reply {other:?}"),
            )),
        }
    }

    async fn rank(&self, queue: &QueueName, user: &str) -> Result<Option<u64>> {
        let k = self.keys(queue);
        let rank: i64 = self
            .scripts
            .rank
            .key(&k.wait)
            .key(&k.seen)
            .arg(self.now_ms())
            .arg(user)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(u64::try_from(rank).ok())
    }

    async fn admission(&self, queue: &QueueName, user: &str) -> Result<Option<Admission>> {
        let k = self.keys(queue);
        let expires: Option<f64> = redis::cmd("ZSCORE")
            .arg(&k.proceed)
            .arg(user)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(expires
            .map(|ms| ms as i64)
            .filter(|&ms| ms > self.now_ms())
            .map(|ms| Admission {
                expires_at: to_time(ms),
            }))
    }

    async fn leave(&self, queue: &QueueName, user: &str) -> Result<bool> {
        let k = self.keys(queue);
        let removed: i64 = self
            .scripts
            .leave
            .key(&k.wait)
            .key(&k.seen)
            .key(&k.meta)
            .arg(user)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(removed == 1)
    }

    async fn finish(&self, queue: &QueueName, user: &str) -> Result<bool> {
        let k = self.keys(queue);
        let live: i64 = self
            .scripts
            .finish
            .key(&k.proceed)
            .arg(self.now_ms())
            .arg(user)
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(live == 1)
    }

    async fn admit(&self, queue: &QueueName, count: u32) -> Result<Tick> {
        self.run_tick(queue, "manual", u64::from(count)).await
    }

    async fn tick(&self, queue: &QueueName, rule: TickRule) -> Result<Tick> {
        match rule {
            TickRule::Due => self.run_tick(queue, "due", 0).await,
            TickRule::Sequence(n) => self.run_tick(queue, "seq", n).await,
        }
    }

    async fn configure(&self, queue: &QueueName, policy: Option<Policy>) -> Result<()> {
        if let Some(p) = &policy {
            p.validate()?;
        }
        let k = self.keys(queue);
        let p = policy.unwrap_or(self.default_policy);
        let _: i64 = self
            .scripts
            .configure
            .key(&k.meta)
            .key(self.index())
            .arg(queue.as_str())
            .arg(u8::from(policy.is_some()))
            .arg(p.batch_size)
            .arg(millis(p.interval))
            .arg(p.max_active.unwrap_or(0))
            .arg(millis(p.admitted_ttl))
            .arg(p.idle_timeout.map_or(0, millis))
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn set_paused(&self, queue: &QueueName, paused: bool) -> Result<()> {
        let _: i64 = redis::cmd("HSET")
            .arg(self.keys(queue).meta)
            .arg("paused")
            .arg(u8::from(paused))
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn stats(&self, queue: &QueueName) -> Result<QueueStats> {
        let k = self.keys(queue);
        let now = self.now_ms();
        let (waiting, admitted, meta, recent): (u64, u64, HashMap<String, String>, Vec<String>) =
            redis::pipe()
                .atomic()
                .zcard(&k.wait)
                .cmd("ZCOUNT")
                .arg(&k.proceed)
                .arg(format!("({now}"))
                .arg("+inf")
                .hgetall(&k.meta)
                .lrange(&k.admits, 0, -1)
                .query_async(&mut self.conn.clone())
                .await
                .map_err(unavailable)?;
        let configured = self.policy_from(&meta);
        let policy = configured.unwrap_or(self.default_policy);
        let num = |field: &str| meta.get(field).and_then(|v| v.parse::<i64>().ok());
        let recent = recent.iter().filter_map(|entry| {
            let (at, count) = entry.split_once(':')?;
            Some((at.parse().ok()?, count.parse().ok()?))
        });
        Ok(QueueStats {
            waiting,
            admitted,
            admitted_total: num("admitted_total").unwrap_or(0) as u64,
            paused: meta.get("paused").map(String::as_str) == Some("1"),
            configured: configured.is_some(),
            policy,
            tick: num("tick").unwrap_or(0) as u64,
            last_tick_at: num("last_tick").map(to_time),
            admission_rate: rate(recent, now, &policy),
        })
    }

    async fn queues(&self) -> Result<Vec<QueueName>> {
        let names: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.index())
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        let mut queues: Vec<QueueName> = names
            .into_iter()
            .filter_map(|n| QueueName::new(n).ok())
            .collect();
        queues.sort();
        Ok(queues)
    }

    async fn version(&self, queue: &QueueName) -> Result<u64> {
        let version: Option<u64> = redis::cmd("HGET")
            .arg(self.keys(queue).meta)
            .arg("version")
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(version.unwrap_or(0))
    }
}
