//! Hashing benchmark: Lien's one-pass id + chunk list vs a plain `blake3::hash` of the same
//! 256 MiB buffer. The ratio between the two is what matters (run `cargo bench -p lien-protocol`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lien_protocol::chunk::hash_reader;
use lien_protocol::ChunkSize;

fn bench(c: &mut Criterion) {
    let len = 256usize << 20;
    let buf: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut g = c.benchmark_group("hash-256MiB");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(len as u64));
    g.bench_function("blake3::hash (baseline, 1 thread)", |b| b.iter(|| blake3::hash(&buf)));
    g.bench_function("lien id + chunk list, 1 thread", |b| {
        b.iter(|| hash_reader(&buf[..], ChunkSize::DEFAULT, 1, |_| {}).map(|d| d.id))
    });
    g.bench_function(format!("lien id + chunk list, {threads} threads"), |b| {
        b.iter(|| hash_reader(&buf[..], ChunkSize::DEFAULT, threads, |_| {}).map(|d| d.id))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
