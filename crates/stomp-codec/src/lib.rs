#![cfg_attr(docsrs, feature(doc_cfg))]
#![doc = include_str!("../README.md")]

mod codec;
mod frame;

pub use codec::{Decoder, Limits, ParseError, decode_all, encode, to_bytes};
pub use frame::{Command, Frame, Wire};

use std::time::Duration;

/// Versions this server speaks, best first.
pub const VERSIONS: [&str; 2] = ["1.2", "1.1"];

/// The version to speak given a CONNECT's `accept-version` header, `None` if none is shared.
/// A CONNECT without the header is a STOMP 1.0 client, which is not supported.
pub fn negotiate_version(accept_version: Option<&str>) -> Option<&'static str> {
    let offered: Vec<&str> = accept_version?.split(',').map(str::trim).collect();
    VERSIONS
        .into_iter()
        .find(|version| offered.contains(version))
}

/// Agreed heart-beat periods; `None` means that direction is off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heartbeats {
    /// How often the server sends something.
    pub send: Option<Duration>,
    /// How often the client promised to send something.
    pub receive: Option<Duration>,
}

/// Parses `cx,cy` from a CONNECT's `heart-beat` header and agrees periods with the server's
/// wishes `(sx, sy)` as STOMP 1.2 prescribes: each direction is off if either side says 0,
/// otherwise the larger of the two. A malformed header is treated as `0,0`.
pub fn negotiate_heartbeats(header: Option<&str>, server: (u64, u64)) -> Heartbeats {
    let (cx, cy) = header
        .and_then(|value| {
            let (x, y) = value.split_once(',')?;
            Some((x.trim().parse::<u64>().ok()?, y.trim().parse::<u64>().ok()?))
        })
        .unwrap_or((0, 0));
    let (sx, sy) = server;
    let period = |a: u64, b: u64| (a != 0 && b != 0).then(|| Duration::from_millis(a.max(b)));
    Heartbeats {
        send: period(sx, cy),
        receive: period(cx, sy),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_shared_version_is_chosen() {
        assert_eq!(negotiate_version(Some("1.0,1.1,1.2")), Some("1.2"));
        assert_eq!(negotiate_version(Some("1.1")), Some("1.1"));
        assert_eq!(negotiate_version(Some("1.0")), None);
        assert_eq!(negotiate_version(None), None);
    }

    #[test]
    fn heartbeats_follow_the_spec() {
        let agreed = negotiate_heartbeats(Some("4000,20000"), (10_000, 10_000));
        assert_eq!(agreed.send, Some(Duration::from_millis(20_000)));
        assert_eq!(agreed.receive, Some(Duration::from_millis(10_000)));
        let off = negotiate_heartbeats(Some("0,0"), (10_000, 10_000));
        assert_eq!((off.send, off.receive), (None, None));
        let junk = negotiate_heartbeats(Some("x"), (10_000, 10_000));
        assert_eq!((junk.send, junk.receive), (None, None));
    }
}
