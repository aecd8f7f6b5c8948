//! Tests of the node's redb store through its public API, including a crash (SIGKILL) test.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lien_node::catalog::index::Query;
use lien_node::catalog::Catalog;
use lien_node::store::{FileRecord, LocalDataset, LocalKind, Readers, Store, StoreError};
use lien_protocol::{
    ChunkSize, ContentId, FileEntry, FileList, Manifest, ManifestBody, Metadata, PublisherSecret, RelPath,
};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn secret(seed: u8) -> PublisherSecret {
    PublisherSecret::from_seed(&[seed; 32])
}

fn manifest(secret: &PublisherSecret, slug: &str, version: u64, title: &str, keywords: &[&str]) -> Manifest {
    let entry = FileEntry {
        path: RelPath::new("data.csv").unwrap(),
        size: 1000 + version,
        id: ContentId::of(format!("{slug}/{version}/{title}").as_bytes()),
        chunk_size: ChunkSize::DEFAULT,
        media_type: String::new(),
    };
    let mut metadata = Metadata::titled(title);
    metadata.keywords = keywords.iter().map(|k| (*k).to_owned()).collect();
    let body = ManifestBody {
        publisher: secret.public(),
        slug: slug.parse().unwrap(),
        version,
        previous: (version > 1).then(|| ContentId::of(b"previous")),
        created: 1_700_000_000 + version,
        metadata,
        files: FileList::build(vec![entry]).unwrap().0,
    };
    Manifest::sign(body, secret).unwrap()
}

fn open_temp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("node").join("store.redb")).unwrap();
    (dir, store)
}

const CHUNK: u64 = 1 << 16;

fn file_record(seed: &[u8], chunks: u64, path: &str) -> FileRecord {
    FileRecord {
        id: ContentId::of(seed),
        size: chunks * CHUNK,
        chunk_size: CHUNK,
        path: PathBuf::from(path),
        complete: false,
        in_place: false,
        mtime_ns: None,
        readers: Readers::Anyone,
    }
}

#[test]
fn store_manifest_round_trip_and_catalog_paging() -> TestResult {
    let (_dir, store) = open_temp();
    let s = secret(1);
    let all: Vec<Manifest> = (0..5).map(|i| manifest(&s, &format!("set-{i}"), 1, "Title", &[])).collect();
    assert_eq!(store.manifest_count()?, 0);
    assert_eq!(store.catalog_page(0, 10)?, (vec![], 0, false));
    for m in &all {
        assert!(!store.has_manifest(&m.id())?);
        assert!(store.put_manifest(m)?);
        assert!(store.has_manifest(&m.id())?);
    }
    // A second put is a no-op and does not take a new sequence number.
    assert!(!store.put_manifest(&all[2])?);
    assert_eq!(store.manifest_count()?, 5);
    assert_eq!(store.manifest(&all[3].id())?, Some(all[3].clone()));
    assert_eq!(store.manifest(&ContentId::of(b"nothing"))?, None);

    let bytes = |r: std::ops::Range<usize>| all[r].iter().map(|m| m.bytes().to_vec()).collect::<Vec<_>>();
    assert_eq!(store.catalog_page(0, 2)?, (bytes(0..2), 2, true));
    assert_eq!(store.catalog_page(2, 2)?, (bytes(2..4), 4, true));
    assert_eq!(store.catalog_page(4, 2)?, (bytes(4..5), 5, false));
    assert_eq!(store.catalog_page(5, 2)?, (vec![], 5, false));
    assert_eq!(store.catalog_page(3, 0)?, (vec![], 3, true));
    assert_eq!(store.catalog_page(0, 5)?, (bytes(0..5), 5, false));
    assert_eq!(store.catalog_page(u64::MAX, 5)?, (vec![], u64::MAX, false));
    Ok(())
}

#[test]
fn store_names_never_roll_back() -> TestResult {
    let (_dir, store) = open_temp();
    let s = secret(2);
    let slug = "census".parse()?;
    let v1 = manifest(&s, "census", 1, "Census", &[]);
    let v2 = manifest(&s, "census", 2, "Census", &[]);
    assert_eq!(store.resolve(&s.public(), &slug)?, None);
    assert!(store.put_manifest(&v2)?);
    assert!(store.put_manifest(&v1)?); // an old version replayed later
    assert_eq!(store.resolve(&s.public(), &slug)?, Some((2, v2.id())));
    assert_eq!(store.versions(&s.public(), &slug)?, vec![(1, v1.id()), (2, v2.id())]);

    // Another manifest claiming the same version does not replace the first one heard.
    let v2b = manifest(&s, "census", 2, "Census (again)", &[]);
    assert!(store.put_manifest(&v2b)?);
    assert_eq!(store.resolve(&s.public(), &slug)?, Some((2, v2.id())));
    assert_eq!(store.versions(&s.public(), &slug)?, vec![(1, v1.id()), (2, v2.id())]);

    let v3 = manifest(&s, "census", 3, "Census", &[]);
    assert!(store.put_manifest(&v3)?);
    assert_eq!(store.resolve(&s.public(), &slug)?, Some((3, v3.id())));
    assert_eq!(store.versions(&s.public(), &slug)?.len(), 3);

    // Names that share a prefix stay apart; other publishers are separate.
    let other = manifest(&s, "census2", 7, "Census", &[]);
    store.put_manifest(&other)?;
    assert_eq!(store.versions(&s.public(), &slug)?.len(), 3);
    assert_eq!(store.resolve(&s.public(), &"census2".parse()?)?, Some((7, other.id())));
    assert_eq!(store.resolve(&secret(3).public(), &slug)?, None);
    assert_eq!(store.versions(&secret(3).public(), &slug)?, vec![]);
    Ok(())
}

/// The catalog's search (the in-memory index `Node::search`, `/v1/search` and the portal answer
/// from) over what the store holds: the queries the store's retired word index answered.
fn search(
    catalog: &Catalog,
    store: &Store,
    text: &str,
    rows: usize,
) -> Result<Vec<ContentId>, Box<dyn std::error::Error>> {
    catalog.refresh(store)?;
    let q = Query { text: text.to_owned(), rows, ..Query::default() };
    Ok(catalog.read()?.search(&q).docs.iter().map(|d| d.id).collect())
}

#[test]
fn catalog_search_words_prefixes_and_publishers() -> TestResult {
    let (_dir, store) = open_temp();
    let a = secret(4);
    let b = secret(5);
    let census1 = manifest(&a, "population", 1, "Population Census 2025", &["demography"]);
    let census2 = manifest(&a, "population", 2, "Population Census 2025", &["demography", "Dân-số"]);
    let rice = manifest(&b, "rice-harvest", 1, "Rice harvest", &["agriculture", "census"]);
    let roads = manifest(&b, "roads", 1, "Road network", &["transport"]);
    let catalog = Catalog::default();
    store.put_manifest(&census1)?;
    store.put_manifest(&rice)?;
    // Taken in as they are heard: a search between two manifests sees the first only.
    assert_eq!(search(&catalog, &store, "population", 10)?, vec![census1.id()]);
    store.put_manifest(&census2)?;
    store.put_manifest(&roads)?;

    // The newest version of each name, the better match first (a title word outweighs a keyword).
    assert_eq!(search(&catalog, &store, "census", 10)?, vec![census2.id(), rice.id()]);
    assert_eq!(search(&catalog, &store, "CENSUS", 1)?, vec![census2.id()]);
    // Prefix match, AND semantics.
    assert_eq!(search(&catalog, &store, "popul", 10)?, vec![census2.id()]);
    assert_eq!(search(&catalog, &store, "cen agri", 10)?, vec![rice.id()]);
    assert_eq!(search(&catalog, &store, "population rice", 10)?, vec![]);
    assert_eq!(search(&catalog, &store, "zebra", 10)?, vec![]);
    assert_eq!(search(&catalog, &store, "dân", 10)?, vec![census2.id()]);
    // Slug words and the publisher key's text (or a prefix of it), and `publisher/slug`.
    assert_eq!(search(&catalog, &store, "harvest", 10)?, vec![rice.id()]);
    let key_b = b.public().to_string();
    let mut by_b = search(&catalog, &store, &key_b, 10)?;
    by_b.sort();
    let mut expected = vec![roads.id(), rice.id()];
    expected.sort();
    assert_eq!(by_b, expected);
    assert_eq!(search(&catalog, &store, &key_b[..12], 10)?.len(), 2);
    assert_eq!(search(&catalog, &store, &format!("{key_b}/roads"), 10)?, vec![roads.id()]);
    // An empty query: every name, newest first (census v2 is the newest; then the last heard).
    assert_eq!(search(&catalog, &store, "", 3)?, vec![census2.id(), roads.id(), rice.id()]);
    assert_eq!(search(&catalog, &store, "  -- ", 10)?.len(), 3);
    assert_eq!(search(&catalog, &store, "census", 0)?, vec![]);
    Ok(())
}

#[test]
fn store_blobs_files_and_chunk_bitmaps() -> TestResult {
    let (_dir, store) = open_temp();
    let blob_id = ContentId::of(b"blob");
    assert_eq!(store.blob(&blob_id)?, None);
    store.put_blob(&blob_id, b"blob")?;
    assert_eq!(store.blob(&blob_id)?.as_deref(), Some(&b"blob"[..]));

    // 20 full chunks and one byte: 21 chunks, a 3-byte bitmap.
    let mut rec = file_record(b"file", 20, "/tmp/part");
    rec.size += 1;
    assert_eq!(store.file(&rec.id)?, None);
    assert_eq!(store.have(&rec.id)?, None);
    assert!(matches!(store.mark_chunks(&rec.id, &[0]), Err(StoreError::UnknownFile(id)) if id == rec.id));
    store.put_file(&rec)?;
    assert_eq!(store.file(&rec.id)?, Some(rec.clone()));
    assert_eq!(store.have(&rec.id)?, Some(vec![0, 0, 0]));
    store.mark_chunks(&rec.id, &[0, 9, 20])?;
    store.mark_chunks(&rec.id, &[9, 1])?;
    store.mark_chunks(&rec.id, &[])?;
    assert_eq!(store.have(&rec.id)?, Some(vec![0b0000_0011, 0b0000_0010, 0b0001_0000]));
    // An out-of-range index rejects the whole batch.
    assert!(matches!(
        store.mark_chunks(&rec.id, &[2, 21]),
        Err(StoreError::ChunkOutOfRange { index: 21, count: 21, .. })
    ));
    assert_eq!(store.have(&rec.id)?, Some(vec![0b0000_0011, 0b0000_0010, 0b0001_0000]));
    // Putting the record again (e.g. over a recreated partial file) starts from no chunks.
    store.put_file(&rec)?;
    assert_eq!(store.have(&rec.id)?, Some(vec![0, 0, 0]));
    store.mark_chunks(&rec.id, &[0, 1, 9, 20])?;
    assert_eq!(store.have(&rec.id)?, Some(vec![0b0000_0011, 0b0000_0010, 0b0001_0000]));

    store.set_file_complete(&rec.id, Path::new("/data/final.csv"))?;
    let done = store.file(&rec.id)?.unwrap();
    assert!(done.complete);
    assert_eq!(done.path, PathBuf::from("/data/final.csv"));
    assert_eq!(store.have(&rec.id)?, Some(vec![0xff, 0xff, 0b0001_1111]));
    store.mark_chunks(&rec.id, &[3])?; // no effect on a complete file
    assert_eq!(store.have(&rec.id)?, Some(vec![0xff, 0xff, 0b0001_1111]));
    assert!(matches!(
        store.set_file_complete(&ContentId::of(b"unknown"), Path::new("/x")),
        Err(StoreError::UnknownFile(_))
    ));

    // A complete in-place file, an empty file, a bad chunk size.
    let mut in_place = file_record(b"in place", 8, "/home/me/data.bin");
    in_place.complete = true;
    in_place.in_place = true;
    in_place.mtime_ns = Some(1_700_000_000_123_456_789);
    store.put_file(&in_place)?;
    assert_eq!(store.file(&in_place.id)?, Some(in_place.clone()));
    assert_eq!(store.have(&in_place.id)?, Some(vec![0xff]));
    let empty = file_record(b"", 0, "/tmp/empty");
    store.put_file(&empty)?;
    assert_eq!(store.have(&empty.id)?, Some(vec![]));
    assert!(matches!(store.mark_chunks(&empty.id, &[0]), Err(StoreError::ChunkOutOfRange { count: 0, .. })));
    let mut bad = file_record(b"bad", 1, "/tmp/bad");
    bad.chunk_size = 0;
    assert!(matches!(store.put_file(&bad), Err(StoreError::InvalidRecord(_))));

    store.remove_file(&rec.id)?;
    assert_eq!(store.file(&rec.id)?, None);
    assert_eq!(store.have(&rec.id)?, None);
    store.remove_file(&rec.id)?; // removing twice is fine
                                 // A new record under the same id starts with an empty bitmap.
    let partial = file_record(b"file", 3, "/tmp/p2");
    store.put_file(&FileRecord { id: rec.id, ..partial.clone() })?;
    assert_eq!(store.have(&rec.id)?, Some(vec![0]));
    Ok(())
}

/// A file's readers merge over every record put for it (one per manifest that lists it): they
/// only narrow. A public manifest naming a restricted file's id (anyone can sign one) cannot
/// open it up, in whichever order the two are put, nor can a record put over a partial file.
#[test]
fn store_file_readers_only_narrow() -> TestResult {
    let (_dir, store) = open_temp();
    let only = |names: &[&str]| Readers::Only(names.iter().map(|n| n.to_string()).collect());
    let mut restricted = file_record(b"salaries", 4, "/data/salaries.csv");
    restricted.complete = true;
    restricted.readers = only(&["Ministry of Finance"]);
    assert_eq!(store.put_file(&restricted)?, restricted.readers);
    // A public alias's record over it (e.g. a new partial file for the alias's folder).
    let alias = FileRecord { path: PathBuf::from("/data/alias/copy.csv.part"), ..file_record(b"salaries", 4, "") };
    assert_eq!(store.put_file(&alias)?, only(&["Ministry of Finance"]), "a public record widened a restricted one");
    let rec = store.file(&alias.id)?.ok_or("record lost")?;
    assert_eq!(rec.path, alias.path, "the rest of the record is the new one");
    assert_eq!(rec.readers, only(&["Ministry of Finance"]));
    assert_eq!(store.narrow_readers(&alias.id, &Readers::Anyone)?, Some(only(&["Ministry of Finance"])));
    // Two restrictions: only what both allow; none in common: nobody.
    assert_eq!(
        store.narrow_readers(&alias.id, &only(&["Ministry of Finance", "Audit Office"]))?,
        Some(only(&["Ministry of Finance"]))
    );
    assert_eq!(store.narrow_readers(&alias.id, &only(&["Audit Office"]))?, Some(only(&[])));
    let nobody = store.file(&alias.id)?.ok_or("record lost")?.readers;
    assert!(nobody.is_restricted() && !nobody.allows(&["Ministry of Finance".into(), "Audit Office".into()]));
    assert_eq!(store.put_file(&alias)?, only(&[]), "nobody stays nobody");
    // Public first, then restricted: restricted.
    let public = file_record(b"open data", 2, "/data/open.csv");
    store.put_file(&public)?;
    assert_eq!(store.narrow_readers(&public.id, &only(&["X"]))?, Some(only(&["X"])));
    assert_eq!(store.narrow_readers(&ContentId::of(b"unknown"), &only(&["X"]))?, None);
    // A forgotten file starts afresh.
    store.remove_file(&public.id)?;
    assert_eq!(store.put_file(&public)?, Readers::Anyone);
    Ok(())
}

#[test]
fn store_locals_and_peers() -> TestResult {
    let (_dir, store) = open_temp();
    let local = |seed: &[u8], added: u64| LocalDataset {
        manifest: ContentId::of(seed),
        root: PathBuf::from(format!("/data/{added}")),
        kind: LocalKind::Fetched,
        pinned: false,
        complete: false,
        added,
    };
    let first = local(b"one", 10);
    let mut second = local(b"two", 5);
    assert_eq!(store.locals()?, vec![]);
    store.put_local(&first)?;
    store.put_local(&second)?;
    assert_eq!(store.local(&first.manifest)?, Some(first.clone()));
    assert_eq!(store.locals()?, vec![second.clone(), first.clone()]);
    second.kind = LocalKind::Published;
    second.pinned = true;
    second.complete = true;
    store.put_local(&second)?;
    assert_eq!(store.local(&second.manifest)?, Some(second.clone()));
    store.remove_local(&first.manifest)?;
    assert_eq!(store.local(&first.manifest)?, None);
    assert_eq!(store.locals()?, vec![second]);

    assert_eq!(store.known_peers(10)?, vec![]);
    let addrs = |s: &str| vec![format!("/ip4/10.0.0.{s}/tcp/4001"), format!("/ip4/10.0.0.{s}/udp/4001/quic-v1")];
    store.remember_peer("peer-a", &addrs("1"))?;
    store.remember_peer("peer-b", &addrs("2"))?;
    store.remember_peer("peer-c", &addrs("3"))?;
    store.remember_peer("peer-a", &addrs("9"))?;
    assert_eq!(
        store.known_peers(10)?,
        vec![("peer-a".into(), addrs("9")), ("peer-c".into(), addrs("3")), ("peer-b".into(), addrs("2"))]
    );
    assert_eq!(store.known_peers(1)?, vec![("peer-a".into(), addrs("9"))]);
    store.remember_peer("peer-b", &[])?;
    assert_eq!(store.known_peers(2)?, vec![("peer-b".into(), vec![]), ("peer-a".into(), addrs("9"))]);
    Ok(())
}

#[test]
fn store_survives_reopen() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.redb");
    let s = secret(6);
    let m = manifest(&s, "kept", 4, "Kept across restarts", &["durable"]);
    let rec = file_record(b"kept file", 10, "/tmp/kept");
    {
        let store = Store::open(&path)?;
        // The file is locked while open.
        assert!(matches!(Store::open(&path), Err(StoreError::AlreadyOpen)));
        let clone = store.clone();
        clone.put_manifest(&m)?;
        store.put_blob(&ContentId::of(b"b"), b"b")?;
        store.put_file(&rec)?;
        store.mark_chunks(&rec.id, &[1, 8])?;
        store.remember_peer("peer", &["/ip4/1.2.3.4/tcp/1".into()])?;
    }
    let store = Store::open(&path)?;
    assert_eq!(store.path(), path.as_path());
    assert_eq!(store.manifest(&m.id())?, Some(m.clone()));
    assert_eq!(store.resolve(&s.public(), &"kept".parse()?)?, Some((4, m.id())));
    assert_eq!(search(&Catalog::default(), &store, "dura", 5)?, vec![m.id()]);
    assert_eq!(store.blob(&ContentId::of(b"b"))?, Some(b"b".to_vec()));
    assert_eq!(store.file(&rec.id)?, Some(rec.clone()));
    assert_eq!(store.have(&rec.id)?, Some(vec![0b0000_0010, 0b0000_0001]));
    assert_eq!(store.known_peers(5)?, vec![("peer".into(), vec!["/ip4/1.2.3.4/tcp/1".into()])]);
    // The next manifest continues the catalog sequence.
    let m2 = manifest(&s, "kept", 5, "Kept", &[]);
    store.put_manifest(&m2)?;
    assert_eq!(store.catalog_page(1, 10)?, (vec![m2.bytes().to_vec()], 2, false));
    Ok(())
}

// ---- crash test: a child process writes in a loop and is killed with SIGKILL ----

const CRASH_ENV: &str = "LIEN_STORE_CRASH_CHILD";
const CRASH_CHUNKS: u64 = 100_000;
const CRASH_SLUG: &str = "crash";

fn crash_file() -> FileRecord {
    file_record(b"crash file", CRASH_CHUNKS, "/tmp/crash.part")
}

/// The child's side: does nothing unless started by `store_crash_leaves_committed_writes`.
#[test]
fn store_crash_child() {
    let Ok(path) = std::env::var(CRASH_ENV) else {
        return;
    };
    let store = Store::open(Path::new(&path)).unwrap();
    let file = crash_file().id;
    let s = secret(7);
    let start = Instant::now();
    let mut out = std::io::stdout().lock();
    for i in 0..CRASH_CHUNKS {
        if start.elapsed() > Duration::from_secs(30) {
            break;
        }
        store.mark_chunks(&file, &[i]).unwrap();
        writeln!(out, "marked {i}").unwrap();
        out.flush().unwrap();
        store.put_manifest(&manifest(&s, CRASH_SLUG, i + 1, "Crash", &["loop"])).unwrap();
        writeln!(out, "manifest {i}").unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn store_crash_leaves_committed_writes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("store.redb");
    {
        let store = Store::open(&path)?;
        store.put_file(&crash_file())?;
    }
    let mut child = Command::new(std::env::current_exe()?)
        .args(["store_crash_child", "--exact", "--nocapture", "--test-threads=1"])
        .env(CRASH_ENV, &path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no child stdout")?;
    let mut stderr = child.stderr.take().ok_or("no child stderr")?;
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // Wait (bounded) for the first commit, let the child run ~200 ms more, then SIGKILL it.
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !lines.iter().any(|l: &String| l.starts_with("marked ")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                let mut err = String::new();
                let _ = stderr.read_to_string(&mut err);
                return Err(format!("child never committed; stdout {lines:?}, stderr {err}").into());
            }
        }
    }
    std::thread::sleep(Duration::from_millis(200));
    child.kill()?; // SIGKILL on Unix
    let status = child.wait()?;
    reader.join().map_err(|_| "reader thread panicked")?;
    lines.extend(rx.try_iter());
    assert!(!status.success(), "the child should have been killed mid-loop");

    let last = |prefix: &str| -> Option<u64> {
        lines.iter().filter_map(|l| l.strip_prefix(prefix)).filter_map(|n| n.parse().ok()).max()
    };
    let marked = last("marked ").ok_or("no mark reported")?;
    let manifests = last("manifest ").map_or(0, |i| i + 1);
    assert!(marked >= 1 || manifests >= 1, "the child made almost no progress: {lines:?}");

    let store = Store::open(&path)?;
    println!("child reported marks 0..={marked} and {manifests} manifests before SIGKILL");
    let bitmap = store.have(&crash_file().id)?.ok_or("file record lost")?;
    let set: Vec<u64> = (0..CRASH_CHUNKS).filter(|&i| bitmap[(i / 8) as usize] & (1 << (i % 8)) != 0).collect();
    // Every reported mark survived; at most one more (committed but not yet reported) exists.
    let n = set.len() as u64;
    assert!(n == marked + 1 || n == marked + 2, "{n} bits set, last reported mark {marked}");
    assert_eq!(set, (0..n).collect::<Vec<_>>(), "set bits must be exactly the committed prefix");
    // Likewise for manifests, and the name points at the highest committed version.
    let count = store.manifest_count()?;
    assert!(count == manifests || count == manifests + 1, "{count} manifests, {manifests} reported");
    let s = secret(7);
    let slug = CRASH_SLUG.parse()?;
    if count > 0 {
        let (version, id) = store.resolve(&s.public(), &slug)?.ok_or("name lost")?;
        assert_eq!(version, count);
        assert_eq!(store.manifest(&id)?.map(|m| m.body().version), Some(count));
    }
    assert_eq!(store.versions(&s.public(), &slug)?.len() as u64, count);
    let (page, next, more) = store.catalog_page(0, u32::MAX)?;
    assert_eq!((page.len() as u64, next, more), (count, count, false));
    for bytes in &page {
        Manifest::decode(bytes)?;
    }
    // The store still takes writes.
    store.mark_chunks(&crash_file().id, &[CRASH_CHUNKS - 1])?;
    Ok(())
}
