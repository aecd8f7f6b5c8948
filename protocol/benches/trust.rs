//! Trust-check benchmark (issue 12, item 3): 150 keys that all delegate to each other, one chain
//! from the root reaching them, then a target key. A check must stay a lookup (< 1 ms), whatever
//! records an attacker sends. Baseline in the same run: a check with only the one chain.
//! Run `cargo bench -p lien-protocol --bench trust`.

use criterion::{criterion_group, criterion_main, Criterion};
use lien_protocol::trust::{Delegation, DelegationBody, TrustPolicy, TrustRecord, TrustState};
use lien_protocol::{PublisherSecret, Slug};

const NOW: u64 = 1_800_000_000;

fn key(n: u32) -> PublisherSecret {
    let mut seed = [7u8; 32];
    seed[..4].copy_from_slice(&n.to_be_bytes());
    PublisherSecret::from_seed(&seed)
}

fn delegation(issuer: &PublisherSecret, subject: &PublisherSecret, can_delegate: bool) -> TrustRecord {
    let body = DelegationBody {
        issuer: issuer.public(),
        subject: subject.public(),
        organisation: "Bo".into(),
        prefix: String::new(),
        not_before: NOW - 1000,
        not_after: NOW + 1000,
        can_delegate,
    };
    TrustRecord::Delegation(Delegation::sign(issuer, body).expect("valid delegation"))
}

fn bench(c: &mut Criterion) {
    let root = key(0);
    let mesh: Vec<PublisherSecret> = (1..=150).map(key).collect();
    let target = key(1000);
    let policy = TrustPolicy { roots: [root.public()].into(), ..TrustPolicy::default() };
    let chain = [delegation(&root, &mesh[0], true), delegation(&mesh[149], &target, false)];
    let mut all_pairs = Vec::new();
    for a in &mesh {
        for b in &mesh {
            if a.public() != b.public() {
                all_pairs.push(delegation(a, b, true));
            }
        }
    }
    let slug: Slug = "moh-x".parse().expect("slug");

    let mut plain = TrustState::new(policy.clone());
    plain.add_all(chain.iter().cloned().chain([delegation(&mesh[0], &mesh[149], true)]), NOW);
    let mut attacked = TrustState::new(policy.clone());
    attacked.add_all(chain.iter().cloned().chain(all_pairs.iter().cloned()), NOW);
    assert!(plain.check(&target.public(), &slug, NOW).is_ok());
    assert!(attacked.check(&target.public(), &slug, NOW).is_ok());

    let mut g = c.benchmark_group("trust-check");
    g.bench_function("one chain (baseline)", |b| b.iter(|| plain.check(&target.public(), &slug, NOW)));
    g.bench_function("150 keys, all-pairs delegations", |b| b.iter(|| attacked.check(&target.public(), &slug, NOW)));
    let stranger = key(5000).public();
    g.bench_function("150 keys, untrusted key", |b| b.iter(|| attacked.check(&stranger, &slug, NOW)));
    g.finish();

    let mut g = c.benchmark_group("trust-recompute");
    g.sample_size(10);
    g.bench_function("all-pairs set, recomputed at a window boundary", |b| {
        b.iter(|| {
            let mut s = attacked.clone();
            s.refresh(NOW + 2000);
            s.refresh(NOW);
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
