//! The bulk channel's denial-of-service bounds against a real node on 127.0.0.1.

use std::sync::Arc;
use std::time::Duration;

use libp2p::identity::Keypair;
use lien_protocol::bulk::{split_response, MAX_FRAME_LEN, TLS_HANDSHAKE_BYTE};
use lien_protocol::chunk::ChunkSize;
use lien_protocol::metadata::Metadata;
use lien_protocol::wire::{ErrorCode, Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::frames::{read_message, write_message};
use super::server::{HANDSHAKE_TIMEOUT, MAX_PER_PEER, STALL_TIMEOUT};
use super::tls::Identity;
use crate::{Node, NodeConfig, PublishRequest};

type TestResult = Result<(), Box<dyn std::error::Error>>;
type Tls = crate::bulk::BulkStream;

async fn start(home: &std::path::Path, uploads: usize) -> Result<(Node, u16), Box<dyn std::error::Error>> {
    let mut config = NodeConfig::for_home(home);
    config.network = "test".into();
    config.listen = vec!["/ip4/127.0.0.1/tcp/0".parse()?];
    config.max_concurrent_uploads = uploads;
    let node = Node::start(config).await?;
    let port = node.listen_addrs().await?.iter().find_map(crate::node::tcp_port_of).ok_or("no TCP listen port")?;
    Ok((node, port))
}

/// A TLS connection to `node` under a fresh identity (a peer the node has never met).
async fn stranger(node: &Node, port: u16) -> Result<Tls, Box<dyn std::error::Error>> {
    let identity = Identity::new(&Keypair::generate_ed25519())?;
    let config = identity.client_config(node.peer_id())?;
    Ok(super::connect(config, std::net::Ipv4Addr::LOCALHOST.into(), port).await?)
}

async fn ask(tls: &mut Tls, request: &Request) -> Result<(Response, Vec<u8>), Box<dyn std::error::Error>> {
    write_message(tls, &[&request.encode()?], None).await?;
    let mut body = tokio::time::timeout(Duration::from_secs(20), read_message(tls, MAX_FRAME_LEN, None))
        .await??
        .ok_or("connection closed")?;
    let header = split_response(&mut body)?;
    Ok((header, body))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_have_requests_count_against_the_inbound_limit() -> TestResult {
    let home = tempfile::tempdir()?;
    let (node, port) = start(home.path(), 4).await?;
    let mut tls = stranger(&node, port).await?;
    let have = Request::Have { file: lien_protocol::id::ContentId::of(b"nothing") };
    let (answer, _) = ask(&mut tls, &have).await?;
    assert!(matches!(answer, Response::Error { code: ErrorCode::NotFound, .. }), "{answer:?}");
    // Every inbound in-flight permit taken: a Have on the fast path is refused like on libp2p.
    let all = crate::server::MAX_INBOUND_IN_FLIGHT as u32;
    let taken = node.serving().inbound.clone().acquire_many_owned(all).await?;
    let (answer, _) = ask(&mut tls, &have).await?;
    assert!(matches!(answer, Response::Error { code: ErrorCode::Busy, .. }), "{answer:?}");
    drop(taken);
    let (answer, _) = ask(&mut tls, &have).await?;
    assert!(matches!(answer, Response::Error { code: ErrorCode::NotFound, .. }), "{answer:?}");
    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_silent_connections_give_way_and_time_out() -> TestResult {
    let home = tempfile::tempdir()?;
    let (node, port) = start(home.path(), 4).await?;
    let server = node.serving().bulk.clone().ok_or("no bulk server")?;
    let per_ip = node.config().max_connections_per_ip as usize;
    // 300 connections that start a TLS record and then say nothing.
    let mut silent = Vec::new();
    for _ in 0..300 {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(&[TLS_HANDSHAKE_BYTE]).await?;
        silent.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(server.connections() <= per_ip, "{} bulk connections from one address", server.connections());
    // A real peer from the same address still gets in and is served.
    let mut tls = stranger(&node, port).await?;
    let have = Request::Have { file: lien_protocol::id::ContentId::of(b"nothing") };
    let (answer, _) = ask(&mut tls, &have).await?;
    assert!(matches!(answer, Response::Error { code: ErrorCode::NotFound, .. }), "{answer:?}");
    // Every silent connection is closed within the handshake timeout (bounded wait).
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT + Duration::from_secs(5);
    for s in &mut silent {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout_at(deadline, s.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "a silent connection stayed open: {read:?}");
    }
    // The server closes a connection, then counts it gone: wait (bounded) for the count.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while server.connections() > 1 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.connections(), 1, "only the real peer's connection is left");
    node.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_slots_are_not_held_by_a_stalled_reader() -> TestResult {
    let home = tempfile::tempdir()?;
    let (node, port) = start(home.path(), 2).await?;
    let src = tempfile::tempdir()?;
    let data: Vec<u8> = (0..24u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(src.path().join("big.bin"), &data)?;
    let request = PublishRequest {
        path: src.path().join("big.bin"),
        slug: "big".parse()?,
        metadata: Metadata::titled("Big"),
        in_place: false,
        chunk_size: ChunkSize::new(4 << 20)?,
    };
    let m = node.publish(request, Arc::new(|_, _| {})).await?;
    let file = m.body().files.inline().ok_or("no inline file list")?[0].id;
    // The greedy peer pipelines 16 MiB requests on its every connection and reads nothing.
    let greedy = Identity::new(&Keypair::generate_ed25519())?;
    let mut stalled = Vec::new();
    for _ in 0..MAX_PER_PEER {
        let mut tls =
            super::connect(greedy.client_config(node.peer_id())?, std::net::Ipv4Addr::LOCALHOST.into(), port).await?;
        for first in [0, 2, 0, 2] {
            write_message(&mut tls, &[&Request::Chunks { file, first, count: 4 }.encode()?], None).await?;
        }
        stalled.push(tls);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Another peer is served within the stall timeout (plus retries after Busy), not after
    // every stalled response's full write timeout.
    let started = tokio::time::Instant::now();
    let mut tls = stranger(&node, port).await?;
    let mut served = false;
    for _ in 0..200 {
        if started.elapsed() > STALL_TIMEOUT + Duration::from_secs(15) {
            break;
        }
        let (answer, body) = ask(&mut tls, &Request::Chunks { file, first: 1, count: 1 }).await?;
        match answer {
            Response::Chunks { .. } => {
                assert_eq!(body, data[4 << 20..8 << 20]);
                served = true;
                break;
            }
            Response::Error { code: ErrorCode::Busy, .. } => tokio::time::sleep(Duration::from_millis(250)).await,
            other => return Err(format!("unexpected answer {other:?}").into()),
        }
    }
    assert!(served, "a stalled reader kept another peer out for {:?}", started.elapsed());
    drop(stalled);
    node.shutdown().await;
    Ok(())
}
