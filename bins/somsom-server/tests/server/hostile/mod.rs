//! The hostile-client suite: what an internet-facing ticket drop meets on its first day, one
//! file per theme. Every test here fails without the defence it names.

mod accounts;
mod chat;
mod drop;
mod memory;
mod operations;
mod proxies;
mod push;
mod slow_clients;

/// A process's resident memory now and at its peak, in KiB (`/proc/PID/status`).
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in /proc/{pid}/status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The seed's password rules, met.
pub const PASSWORD: &str = "Festival1!";
