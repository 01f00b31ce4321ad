//! The Redis backend: one queue is a few keys under `{prefix}users:queue:{queue}:`, and every
//! change is one Lua script, so any number of nodes share a queue without races.
//!
//! | key | type | content |
//! |---|---|---|
//! | `…:wait` | ZSET | waiting users, scored by arrival number (not by time: ties would reorder) |
//! | `…:pre` | ZSET | the pre-queue, scored by lottery number ([`crate::lottery`]): first in line once open |
//! | `…:proceed` | ZSET | live admissions, scored by expiry in ms |
//! | `…:spent` | ZSET | used admissions, by expiry, kept to tell a replay |
//! | `…:adm` | HASH | user → number of their admission |
//! | `…:seen` | ZSET | waiting users by last sign of life in ms, for idle drops |
//! | `…:meta` | HASH | arrival and tick counters, last tick, totals, pause and sold-out flags, the opening and its seed, configured policy |
//! | `…:admits` | LIST | recent admissions as `ms:count`, for the admission rate |
//! | `{prefix}users:queues` | SET | queue names a driver should tick |
//!
//! With an empty prefix the keys are `users:queue:{queue}:wait` and `…:proceed`. The keys of one queue are
//! used together in scripts, so this needs one Redis primary (not a cluster).
//! The opening is decided inside a script (the first one to run at or after `opens_at`), so the
//! pre-queue's order is fixed once for every node; it needs no shuffle at the opening, because
//! each member was placed by their lottery number as they joined.

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
    Admission, Consumption, Place, Policy, QueueError, QueueName, QueueStats, Result, Tick,
    TickRule, WaitingQueue,
};

struct Scripts {
    join: Script,
    place: Script,
    leave: Script,
    finish: Script,
    consume: Script,
    release: Script,
    configure: Script,
    schedule: Script,
    sold_out: Script,
    tick: Script,
}

impl Scripts {
    fn load() -> Self {
        let with_prelude =
            |body: &str| Script::new(&format!("{}\n{body}", include_str!("prelude.lua")));
        Self {
            join: with_prelude(include_str!("join.lua")),
            place: with_prelude(include_str!("place.lua")),
            leave: with_prelude(include_str!("leave.lua")),
            finish: with_prelude(include_str!("finish.lua")),
            consume: with_prelude(include_str!("consume.lua")),
            release: with_prelude(include_str!("release.lua")),
            configure: with_prelude(include_str!("configure.lua")),
            schedule: with_prelude(include_str!("schedule.lua")),
            sold_out: with_prelude(include_str!("sold_out.lua")),
            tick: with_prelude(include_str!("tick.lua")),
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
    pre: String,
    spent: String,
    adm: String,
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
    /// Queues under `{prefix}users:queue:` (the prefix may be empty), timed by the
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
            pre: format!("{base}pre"),
            spent: format!("{base}spent"),
            adm: format!("{base}adm"),
        }
    }

    fn index(&self) -> String {
        format!("{}users:queues", self.prefix)
    }

    fn now_ms(&self) -> i64 {
        self.clock.now().timestamp_millis()
    }

    /// `script` with the prelude's keys and arguments (see `prelude.lua`), ready for its own.
    fn call<'a>(&self, script: &'a Script, queue: &QueueName) -> redis::ScriptInvocation<'a> {
        let k = self.keys(queue);
        let p = &self.default_policy;
        let mut invocation = script.prepare_invoke();
        invocation
            .key(k.wait)
            .key(k.proceed)
            .key(k.seen)
            .key(k.meta)
            .key(k.admits)
            .key(self.index())
            .key(k.pre)
            .key(k.spent)
            .key(k.adm)
            .arg(self.now_ms())
            .arg(queue.as_str())
            .arg(p.batch_size)
            .arg(millis(p.interval))
            .arg(p.max_active.unwrap_or(0))
            .arg(millis(p.admitted_ttl))
            .arg(p.idle_timeout.map_or(0, millis))
            .arg(u8::from(p.admit_when_idle));
        invocation
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> Result<T> {
        invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)
    }

    async fn run_tick(&self, queue: &QueueName, mode: &str, n: u64) -> Result<Tick> {
        let mut call = self.call(&self.scripts.tick, queue);
        call.arg(mode).arg(n);
        let (applied, tick, expired, dropped, waiting, admitted): (
            i64,
            u64,
            u64,
            u64,
            u64,
            Vec<String>,
        ) = self.run(call).await?;
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
            admit_when_idle: meta.get("idle_admit").map(String::as_str) == Some("1"),
        })
    }
}

/// Reads a place reply of the scripts (see `prelude.lua`).
fn place_from(reply: &[i64]) -> Result<Option<Place>> {
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(Some(match reply {
        [2, expires, id] => Place::Admitted(Admission {
            expires_at: to_time(*expires),
            id: count(*id),
        }),
        [1, rank, new] => Place::Waiting {
            rank: count(*rank),
            new: *new == 1,
        },
        [3, opens_at, new] => Place::PreQueue {
            opens_at: to_time(*opens_at),
            new: *new == 1,
        },
        [0] => return Ok(None),
        other => {
            return Err(QueueError::unavailable(
                "redis",
                format!("unexpected reply {other:?}"),
            ));
        }
    }))
}

#[async_trait]
impl WaitingQueue for RedisQueue {
    async fn join(&self, queue: &QueueName, user: &str) -> Result<Place> {
        check_user(user)?;
        let mut call = self.call(&self.scripts.join, queue);
        call.arg(user);
        let reply: Vec<i64> = self.run(call).await?;
        if reply == [4] {
            return Err(QueueError::SoldOut);
        }
        place_from(&reply)?.ok_or_else(|| QueueError::unavailable("redis", "join placed nobody"))
    }

    async fn place(&self, queue: &QueueName, user: &str) -> Result<Option<Place>> {
        let mut call = self.call(&self.scripts.place, queue);
        call.arg(user);
        let reply: Vec<i64> = self.run(call).await?;
        place_from(&reply)
    }

    async fn admission(&self, queue: &QueueName, user: &str) -> Result<Option<Admission>> {
        let k = self.keys(queue);
        let (expires, id): (Option<f64>, Option<u64>) = redis::pipe()
            .atomic()
            .zscore(&k.proceed, user)
            .hget(&k.adm, user)
            .query_async(&mut self.conn.clone())
            .await
            .map_err(unavailable)?;
        Ok(match (expires.map(|ms| ms as i64), id) {
            (Some(ms), Some(id)) if ms > self.now_ms() => Some(Admission {
                expires_at: to_time(ms),
                id,
            }),
            _ => None,
        })
    }

    async fn leave(&self, queue: &QueueName, user: &str) -> Result<bool> {
        let mut call = self.call(&self.scripts.leave, queue);
        call.arg(user);
        Ok(self.run::<i64>(call).await? == 1)
    }

    async fn finish(&self, queue: &QueueName, user: &str) -> Result<bool> {
        let mut call = self.call(&self.scripts.finish, queue);
        call.arg(user);
        Ok(self.run::<i64>(call).await? == 1)
    }

    async fn consume(&self, queue: &QueueName, user: &str, admission: u64) -> Result<Consumption> {
        let mut call = self.call(&self.scripts.consume, queue);
        call.arg(user).arg(admission);
        Ok(match self.run::<i64>(call).await? {
            1 => Consumption::Consumed,
            2 => Consumption::AlreadyUsed,
            _ => Consumption::NotAdmitted,
        })
    }

    async fn release(&self, queue: &QueueName, user: &str, admission: u64) -> Result<bool> {
        let mut call = self.call(&self.scripts.release, queue);
        call.arg(user).arg(admission);
        Ok(self.run::<i64>(call).await? == 1)
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
        let p = policy.unwrap_or(self.default_policy);
        let mut call = self.call(&self.scripts.configure, queue);
        call.arg(u8::from(policy.is_some()))
            .arg(p.batch_size)
            .arg(millis(p.interval))
            .arg(p.max_active.unwrap_or(0))
            .arg(millis(p.admitted_ttl))
            .arg(p.idle_timeout.map_or(0, millis))
            .arg(u8::from(p.admit_when_idle));
        self.run::<i64>(call).await.map(drop)
    }

    async fn schedule(&self, queue: &QueueName, opens_at: Option<DateTime<Utc>>) -> Result<()> {
        let mut call = self.call(&self.scripts.schedule, queue);
        call.arg(opens_at.map_or(String::new(), |t| t.timestamp_millis().to_string()))
            .arg(rand::random::<u64>().to_string());
        match self.run::<i64>(call).await? {
            1 => Ok(()),
            2 => Err(QueueError::Invalid {
                field: "opensAt",
                reason: "people are waiting already; a pre-queue would jump them".into(),
            }),
            _ => Err(QueueError::Invalid {
                field: "opensAt",
                reason: "the queue opened already".into(),
            }),
        }
    }

    async fn set_sold_out(&self, queue: &QueueName, sold_out: bool) -> Result<()> {
        let mut call = self.call(&self.scripts.sold_out, queue);
        call.arg(u8::from(sold_out));
        self.run::<i64>(call).await.map(drop)
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
        let (wait, pre, admitted, meta, recent): (
            u64,
            u64,
            u64,
            HashMap<String, String>,
            Vec<String>,
        ) = redis::pipe()
            .atomic()
            .zcard(&k.wait)
            .zcard(&k.pre)
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
        let opens_at = num("opens_at");
        // A read does not open the queue: an opening that is due counts as taken effect.
        let opened_at = num("opened_at").or(opens_at.filter(|&at| at <= now));
        let open = opens_at.is_none() || opened_at.is_some();
        Ok(QueueStats {
            waiting: if open { wait + pre } else { wait },
            admitted,
            admitted_total: num("admitted_total").unwrap_or(0) as u64,
            paused: meta.get("paused").map(String::as_str) == Some("1"),
            configured: configured.is_some(),
            policy,
            tick: num("tick").unwrap_or(0) as u64,
            last_tick_at: num("last_tick").map(to_time),
            admission_rate: rate(recent, now, &policy),
            opens_at: opens_at.map(to_time),
            opened_at: opened_at.map(to_time),
            pre_queue: if open { 0 } else { pre },
            seed: opened_at
                .and_then(|_| meta.get("seed"))
                .and_then(|s| s.parse().ok()),
            sold_out: meta.get("sold_out").map(String::as_str) == Some("1"),
            consumed_total: num("consumed_total").unwrap_or(0).max(0) as u64,
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
        let (version, opens_at, opened_at): (Option<u64>, Option<i64>, Option<i64>) =
            redis::cmd("HMGET")
                .arg(self.keys(queue).meta)
                .arg("version")
                .arg("opens_at")
                .arg("opened_at")
                .query_async(&mut self.conn.clone())
                .await
                .map_err(unavailable)?;
        // An opening that is due but not yet taken effect moves ranks: say so.
        let due = opened_at.is_none() && opens_at.is_some_and(|at| at <= self.now_ms());
        Ok(version.unwrap_or(0) + u64::from(due))
    }
}
