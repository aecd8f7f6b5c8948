//! Search latency at catalog scale of the in-memory catalog index (`lien_node::catalog`: ranking,
//! filters and facets; what `Node::search`, `/v1/search`, the CKAN API and the web page use), at
//! 10,000 and 100,000 manifests. (The store's word index it was measured against is retired;
//! BENCHMARKS.md keeps those numbers.)
//!
//!     cargo run --release -p lien-node --example search_bench -- 10000 100000
//!
//! Manifests are synthetic but shaped like a national catalog: 60 organisations, a 3,000-word
//! vocabulary with a Zipf-like spread (a few words in most titles, most words rare), 2–6
//! keywords, 5 licenses, one to three files each. The store lives in a temporary folder (on
//! `/dev/shm` when there is one, so the 100k inserts do not wait on a disk's fsyncs).

use std::time::{Duration, Instant};

use lien_node::catalog::index::{CatalogIndex, Field, Query, Sort};
use lien_node::store::Store;
use lien_protocol::{
    ChunkSize, ContentId, FileEntry, FileList, Manifest, ManifestBody, Metadata, PublisherSecret, RelPath,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ORGS: usize = 60;
const VOCAB: usize = 3000;
const LICENSES: [&str; 5] = ["CC-BY-4.0", "CC0-1.0", "ODbL-1.0", "OGL-VN-1.0", "CC-BY-SA-4.0"];

fn word(i: usize) -> String {
    // Pronounceable, distinct words: "bac", "dan", ... with a number for the rare tail.
    const SYL: [&str; 20] = [
        "ba", "da", "ha", "la", "ma", "na", "pha", "qua", "sa", "ta", "vi", "xa", "cu", "do", "ke", "lo", "mi", "no",
        "ru", "to",
    ];
    format!("{}{}{}", SYL[i % 20], SYL[(i / 20) % 20], if i >= 400 { (i / 400).to_string() } else { String::new() })
}

/// A Zipf-ish draw over the vocabulary: word k has weight ~ 1/(k+1).
fn zipf(rng: &mut StdRng) -> usize {
    let u: f64 = rng.gen();
    (((VOCAB as f64 + 1.0).powf(u)) - 1.0) as usize % VOCAB
}

fn manifest(rng: &mut StdRng, secrets: &[PublisherSecret], i: usize) -> Manifest {
    let org = rng.gen_range(0..ORGS);
    let title: Vec<String> = (0..rng.gen_range(3..8)).map(|_| word(zipf(rng))).collect();
    let description: Vec<String> = (0..rng.gen_range(10..40)).map(|_| word(zipf(rng))).collect();
    let keywords: Vec<String> = (0..rng.gen_range(2..7)).map(|_| word(zipf(rng))).collect();
    let md = Metadata {
        title: format!("{} {i}", title.join(" ")),
        description: description.join(" "),
        keywords,
        license: LICENSES[rng.gen_range(0..LICENSES.len())].into(),
        organisation: format!("Organisation {org}"),
        ..Metadata::default()
    };
    let files = (0..rng.gen_range(1..4))
        .map(|f| FileEntry {
            path: RelPath::new(&format!("part-{f}.{}", ["csv", "json", "parquet"][f % 3]))
                .unwrap_or_else(|_| unreachable!()),
            size: rng.gen_range(1_000..1_000_000_000),
            id: ContentId::of(format!("{i}/{f}").as_bytes()),
            chunk_size: ChunkSize::DEFAULT,
            media_type: "text/csv".into(),
        })
        .collect();
    let secret = &secrets[org];
    let body = ManifestBody {
        publisher: secret.public(),
        slug: format!("dataset-{i}").parse().unwrap_or_else(|_| unreachable!()),
        version: 1,
        previous: None,
        created: 1_700_000_000 + i as u64,
        metadata: md,
        files: FileList::Inline(files),
    };
    Manifest::sign(body, secret).unwrap_or_else(|e| panic!("sign: {e}"))
}

fn time<T>(runs: u32, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut last = None;
    let mut samples = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f());
        samples.push(t.elapsed());
    }
    samples.sort();
    (samples[samples.len() / 2], last.unwrap_or_else(|| unreachable!()))
}

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let sizes = if sizes.is_empty() { vec![10_000, 100_000] } else { sizes };
    let tmp_root = if std::path::Path::new("/dev/shm").is_dir() { "/dev/shm" } else { "/tmp" };
    println!("| manifests | query | store word index (median) | hits | portal index (median) | hits |");
    println!("|---:|---|---:|---:|---:|---:|");
    for n in sizes {
        let dir = tempfile_dir(tmp_root);
        let store = Store::open(&dir.join("store.redb")).unwrap_or_else(|e| panic!("open: {e}"));
        let mut rng = StdRng::seed_from_u64(7);
        let secrets: Vec<PublisherSecret> = (0..ORGS).map(|_| PublisherSecret::generate()).collect();
        let t = Instant::now();
        let mut index = CatalogIndex::default();
        for i in 0..n {
            let m = manifest(&mut rng, &secrets, i);
            store.put_manifest(&m).unwrap_or_else(|e| panic!("put: {e}"));
        }
        let insert = t.elapsed();
        let t = Instant::now();
        let (mut after, mut seq) = (0, 0);
        loop {
            let (page, cursor, more) = store.catalog_page(after, 1000).unwrap_or_else(|e| panic!("page: {e}"));
            for bytes in &page {
                seq += 1;
                let m = Manifest::decode(bytes).unwrap_or_else(|e| panic!("decode: {e}"));
                let files = match &m.body().files {
                    FileList::Inline(f) => Some(f.clone()),
                    FileList::Blob(_) => None,
                };
                index.add(&m, seq, files.as_deref());
            }
            after = cursor;
            if !more {
                break;
            }
        }
        let build = t.elapsed();
        eprintln!("{n} manifests: store inserts {insert:.2?}, portal index built from the store in {build:.2?}");
        let queries = [
            ("common word", word(0)),
            ("mid word", word(150)),
            ("rare word", word(2500)),
            ("two words", format!("{} {}", word(1), word(40))),
            ("prefix (2 letters)", "ba".to_owned()),
            ("no match", "zzzz".to_owned()),
        ];
        for (label, q) in &queries {
            let query = Query {
                text: q.clone(),
                rows: 20,
                facets: vec![Field::Organization, Field::Tags, Field::License, Field::Format],
                ..Query::default()
            };
            let (portal_t, hits) = time(7, || index.search(&query).count);
            println!("| {n} | {label} `{q}` | — | — | {portal_t:.2?} | {hits} |");
        }
        let filtered = Query {
            text: word(3),
            filters: vec![(Field::Organization, "organisation-7".into()), (Field::License, "CC0-1.0".into())],
            sort: Sort::Modified { desc: true },
            rows: 20,
            facets: vec![Field::Tags],
            ..Query::default()
        };
        let (t_f, hits) = time(7, || index.search(&filtered).count);
        println!("| {n} | `{}` + fq organization, license, newest first | — | — | {t_f:.2?} | {hits} |", word(3));
        let all = Query {
            facets: vec![Field::Organization, Field::Tags, Field::License, Field::Format],
            rows: 20,
            ..Query::default()
        };
        let (t_all, hits) = time(7, || index.search(&all).count);
        println!("| {n} | everything (`*:*`) with 4 facets | — | — | {t_all:.2?} | {hits} |");
        drop(store);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn tempfile_dir(root: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(root).join(format!("lien-search-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
    dir
}
