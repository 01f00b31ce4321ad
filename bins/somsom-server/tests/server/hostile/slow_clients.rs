//! Slow clients: connections that dribble a request's head, or sit idle, are closed after the
//! configured deadlines while everyone else is served; at the connection cap, new connections
//! wait until one closes.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::start;

/// Dribbles a request head one header line at a time until the server closes the connection;
/// `true` when it did.
async fn dribble(addr: std::net::SocketAddr) -> bool {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    if tcp
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: somsom\r\n")
        .await
        .is_err()
    {
        return true;
    }
    let mut buf = [0u8; 512];
    // A guard against hanging for ever (the test's only time bound, not a measurement).
    for _ in 0..200 {
        tokio::select! {
            read = tcp.read(&mut buf) => match read {
                Ok(0) | Err(_) => return true,
                Ok(_) => {}
            },
            () = tokio::time::sleep(Duration::from_millis(300)) => {
                if tcp.write_all(b"X-Slow: still-coming\r\n").await.is_err() {
                    return true;
                }
            }
        }
    }
    false
}

/// 1,000 connections dribbling headers are closed after the header timeout; a normal request
/// meanwhile is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slow_header_connections_are_closed_and_others_are_served() {
    let ctx = start(|c| c.http.header_read_timeout_secs = 1).await;
    let addr = ctx.server.addr;
    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..1_000 {
        slow.spawn(dribble(addr));
    }
    // While they dribble, a normal client is served.
    let (status, body) = ctx.get("/healthz", None).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("UP")));
    let closed = slow.join_all().await;
    let open = closed.iter().filter(|c| !**c).count();
    assert_eq!(open, 0, "{open} slow connections were never closed");
    ctx.server.shutdown().await;
}

/// A keep-alive connection that asks nothing more is closed after the idle timeout, and one
/// that keeps asking is not.
#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    let ctx = start(|c| {
        c.http.keep_alive_idle_secs = 1;
        c.http.header_read_timeout_secs = 1;
    })
    .await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: somsom\r\n\r\n";
    let mut tcp = TcpStream::connect(ctx.server.addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    // Busy: one request every half second for three seconds, all on one connection.
    for _ in 0..6 {
        tcp.write_all(request).await.unwrap();
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "answered on the same connection"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Idle: the server closes it.
    let end = tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut buf)).await;
    assert!(
        matches!(end, Ok(Ok(0) | Err(_))),
        "the idle connection stayed open: {end:?}"
    );
    ctx.server.shutdown().await;
}

/// At the connection cap a new connection is not served until an open one closes.
#[tokio::test]
async fn at_the_connection_cap_new_connections_wait_for_a_free_place() {
    let ctx = start(|c| c.http.max_connections = 20).await;
    let addr = ctx.server.addr;
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let mut late = TcpStream::connect(addr).await.unwrap();
    late.write_all(b"GET /healthz HTTP/1.1\r\nHost: somsom\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let early = tokio::time::timeout(Duration::from_secs(2), late.read_to_end(&mut answer)).await;
    assert!(
        early.is_err(),
        "answered past the cap: {}",
        String::from_utf8_lossy(&answer)
    );
    // One place frees up: now it is served.
    drop(silent.pop());
    late.read_to_end(&mut answer).await.unwrap();
    assert!(
        answer.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    drop(silent);
    ctx.server.shutdown().await;
}
