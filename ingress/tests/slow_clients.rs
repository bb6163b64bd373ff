//! Slow and silent clients against the server's limits: the header-read timeout, the body idle
//! and total timeouts (408 `body_timeout`), the connection cap and the bound on shutdown.

mod common;

use common::*;
use std::time::Duration;
use tarn_ingress::ServeConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn limits(serve: ServeConfig) -> Options {
    Options {
        serve,
        ..Default::default()
    }
}

/// A whole JSON POST on one connection, closed after its answer.
fn full_post(token: &str) -> String {
    format!(
        "POST /table/events/object HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    )
}

/// Reads until the peer closes or resets the connection; what came before.
async fn read_until_closed(s: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends a space as a chunk every 50 ms until the connection fails; how many it sent.
fn trickle(mut w: tokio::net::tcp::OwnedWriteHalf) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut sent = 0;
        while w.write_all(&chunk(b" ")).await.is_ok() {
            sent += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        sent
    })
}

#[tokio::test]
async fn a_thousand_half_open_connections_do_not_keep_uploads_out() {
    // both ends of each connection are in this process
    ensure_open_files(4096);
    let h = Harness::start_with(limits(ServeConfig {
        header_read_timeout: Duration::from_secs(5),
        ..Default::default()
    }))
    .await;
    assert!(ServeConfig::default().max_connections > 1000);
    let t = h.token("alice", &["tarn-writers"]);
    let mut half_open = Vec::new();
    for i in 0..1000 {
        let mut s = TcpStream::connect(h.addr).await.unwrap();
        // half send nothing, half the start of a head
        if i % 2 == 1 {
            s.write_all(b"POST /table/events/object HTTP/1.1\r\nHost: x\r\nAuthoriz")
                .await
                .unwrap();
        }
        half_open.push(s);
    }
    tokio::time::timeout(Duration::from_secs(60), async {
        for i in 0..20 {
            let r = h
                .post(
                    JSON_TABLE,
                    Some(&t),
                    Some("application/json"),
                    format!("{{\"n\": {i}}}"),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
    })
    .await
    .expect("uploads answered while a thousand connections are half open");
    assert_eq!(h.landed().await.len(), 20);
    // the server closes every one of them once its head is overdue, answering none
    tokio::time::timeout(Duration::from_secs(60), async {
        for s in &mut half_open {
            let got = read_until_closed(s).await;
            assert!(!got.starts_with(b"HTTP/1.1 2"), "{got:?}");
        }
    })
    .await
    .expect("the half-open connections closed by the server");
}

#[tokio::test]
async fn past_the_connection_cap_a_client_waits_for_a_free_slot() {
    let h = Harness::start_with(limits(ServeConfig {
        max_connections: 10,
        header_read_timeout: Duration::from_secs(600),
        ..Default::default()
    }))
    .await;
    let t = h.token("alice", &["tarn-writers"]);
    let mut held = Vec::new();
    for _ in 0..10 {
        held.push(TcpStream::connect(h.addr).await.unwrap());
    }
    // the 11th connection is made (the kernel's backlog) but not served
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    s.write_all(full_post(&t).as_bytes()).await.unwrap();
    let mut b = [0u8; 1];
    assert!(
        tokio::time::timeout(Duration::from_millis(500), s.read(&mut b))
            .await
            .is_err(),
        "no answer while every slot is held"
    );
    // one held connection closes: the waiting one is accepted and answered
    drop(held.pop());
    let r = read_reply(&mut s).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(h.landed().await.len(), 1);
}

#[tokio::test]
async fn a_stalled_body_is_answered_408_and_other_uploads_go_on() {
    let h = Harness::start_with(limits(ServeConfig {
        body_idle_timeout: Duration::from_secs(1),
        ..Default::default()
    }))
    .await;
    let t = h.token("alice", &["tarn-writers"]);
    let mut stalled = TcpStream::connect(h.addr).await.unwrap();
    stalled
        .write_all(chunked_head(JSON_TABLE, &t, "application/json").as_bytes())
        .await
        .unwrap();
    stalled.write_all(&chunk(b"{\"n\"")).await.unwrap();
    for i in 0..10 {
        let r = h
            .post(
                JSON_TABLE,
                Some(&t),
                Some("application/json"),
                format!("{{\"n\": {i}}}"),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let r = read_one_reply(&mut stalled).await;
    r.expect(408, "body_timeout");
    assert!(r.message().contains("no data for 1s"), "{}", r.message());
    assert_eq!(
        h.landed().await.len(),
        10,
        "the stalled document never lands"
    );
}

#[tokio::test]
async fn a_trickled_body_is_cut_at_its_total_time_and_frees_its_permit() {
    let h = Harness::start_with(Options {
        max_in_flight: 1,
        serve: ServeConfig {
            body_idle_timeout: Duration::from_secs(60),
            body_total_timeout: Duration::from_secs(1),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let t = h.token("alice", &["tarn-writers"]);
    let mut slow = TcpStream::connect(h.addr).await.unwrap();
    slow.write_all(chunked_head(JSON_TABLE, &t, "application/json").as_bytes())
        .await
        .unwrap();
    let (mut read, write) = slow.into_split();
    let trickler = trickle(write);
    let r = read_one_reply(&mut read).await;
    r.expect(408, "body_timeout");
    assert!(r.message().contains("longer than 1s"), "{}", r.message());
    // the connection is closed after the answer: the trickler stops
    let sent = tokio::time::timeout(Duration::from_secs(30), trickler)
        .await
        .expect("the trickler's connection closed")
        .unwrap();
    assert!(sent > 0);
    // the only permit is free again
    let r = h
        .post(JSON_TABLE, Some(&t), Some("application/json"), "{}")
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(h.landed().await.len(), 1);
}

#[tokio::test]
async fn shutdown_drops_a_trickling_client_after_its_bound() {
    let mut h = Harness::start_with(limits(ServeConfig {
        body_idle_timeout: Duration::from_secs(60),
        body_total_timeout: Duration::from_secs(600),
        shutdown_timeout: Duration::from_secs(1),
        ..Default::default()
    }))
    .await;
    let t = h.token("alice", &["tarn-writers"]);
    let slow = TcpStream::connect(h.addr).await.unwrap();
    let (mut read, mut write) = slow.into_split();
    write
        .write_all(chunked_head(JSON_TABLE, &t, "application/json").as_bytes())
        .await
        .unwrap();
    let trickler = trickle(write);
    // the server is reading its body before the signal
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!trickler.is_finished());
    // the harness bounds the stop (10 s) and fails if the server has not returned by then
    h.stop().await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), read_until_closed(&mut read))
        .await
        .expect("the trickling connection dropped");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    tokio::time::timeout(Duration::from_secs(30), trickler)
        .await
        .expect("the trickler's writes fail")
        .unwrap();
    assert!(h.landed().await.is_empty());
    assert!(TcpStream::connect(h.addr).await.is_err());
}
