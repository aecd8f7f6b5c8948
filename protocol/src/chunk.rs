//! Chunking, one-pass hashing and chunk verification.
//!
//! Files are cut into fixed-size chunks (a power of two from 64 KiB to 16 MiB; 1 MiB by
//! default). Because BLAKE3 is itself a tree hash whose leaves are 1 KiB, every aligned chunk of
//! a power-of-two size is a subtree of the file's BLAKE3 tree. A chunk's *chaining value*
//! (BLAKE3's non-root hash of that subtree, at that offset) is what the chunk list records, and
//! merging the chaining values up the tree gives exactly the file's plain BLAKE3 hash, the id
//! `b3sum` prints.
//!
//! So:
//! - one pass over the file (on all cores, chunk by chunk) yields both the id and the chunk list;
//! - a chunk list received from a peer is verified against the file id alone (merge to the root),
//!   so manifests list no chunk hashes and no separate chunk-list hash;
//! - a chunk received from a peer is verified on its own against its entry; the offset is part of
//!   the hash, so a chunk from another file or another offset never verifies.
//!
//! A file of at most one chunk has an empty chunk list: its single chunk is checked against the
//! file id directly.

use std::io::{self, Read};

use blake3::hazmat::{merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode};

use crate::id::ContentId;

/// Length of one chunk-list entry (a BLAKE3 chaining value).
pub const CV_LEN: usize = 32;

/// The size of a file's chunks: a power of two from 64 KiB to 16 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ChunkSize(u32);

/// Why chunking data was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A chunk size that is not a power of two between 64 KiB and 16 MiB.
    #[error("chunk size {0} is not a power of two from 65536 to 16777216")]
    BadChunkSize(u64),
    /// A chunk list whose length does not match the file size.
    #[error("chunk list has {got} bytes, expected {expected}")]
    ChunkListLength {
        /// Expected length.
        expected: u64,
        /// Received length.
        got: u64,
    },
    /// A chunk list that does not hash up to the file id.
    #[error("chunk list does not match file {0}")]
    ChunkListMismatch(ContentId),
    /// A chunk index past the end of the file.
    #[error("chunk {index} is out of range: the file has {count} chunks")]
    IndexOutOfRange {
        /// Requested index.
        index: u64,
        /// Chunks in the file.
        count: u64,
    },
    /// A chunk with the wrong number of bytes.
    #[error("chunk {index} has {got} bytes, expected {expected}")]
    ChunkLength {
        /// Chunk index.
        index: u64,
        /// Expected length.
        expected: u64,
        /// Received length.
        got: u64,
    },
    /// A chunk whose bytes do not hash to its chunk-list entry.
    #[error("chunk {index} of file {file} does not verify")]
    ChunkMismatch {
        /// The file.
        file: ContentId,
        /// Chunk index.
        index: u64,
    },
}

impl ChunkSize {
    /// 1 MiB, the default.
    pub const DEFAULT: ChunkSize = ChunkSize(1 << 20);
    /// The smallest chunk size, 64 KiB.
    pub const MIN: u32 = 1 << 16;
    /// The largest chunk size, 16 MiB.
    pub const MAX: u32 = 1 << 24;

    /// Validates a chunk size in bytes.
    pub fn new(bytes: u64) -> Result<Self, ChunkError> {
        if bytes.is_power_of_two() && (u64::from(Self::MIN)..=u64::from(Self::MAX)).contains(&bytes) {
            Ok(Self(bytes as u32))
        } else {
            Err(ChunkError::BadChunkSize(bytes))
        }
    }

    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        u64::from(self.0)
    }

    /// How many chunks a file of `size` bytes has (0 for an empty file).
    pub fn count(self, size: u64) -> u64 {
        size.div_ceil(self.bytes())
    }

    /// Offset and length of chunk `index` of a file of `size` bytes.
    pub fn range(self, size: u64, index: u64) -> (u64, u64) {
        let start = index.saturating_mul(self.bytes()).min(size);
        let end = start.saturating_add(self.bytes()).min(size);
        (start, end - start)
    }
}

impl Default for ChunkSize {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl<'de> serde::Deserialize<'de> for ChunkSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = u64::deserialize(d)?;
        Self::new(n).map_err(serde::de::Error::custom)
    }
}

/// The verification data of one file: chaining values of its chunks, checked against its id.
#[derive(Clone, PartialEq, Eq)]
pub struct ChunkList {
    id: ContentId,
    size: u64,
    chunk_size: ChunkSize,
    cvs: Vec<ChainingValue>,
}

impl std::fmt::Debug for ChunkList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkList")
            .field("id", &self.id)
            .field("size", &self.size)
            .field("chunks", &self.chunk_count())
            .finish()
    }
}

impl ChunkList {
    /// Parses and verifies a chunk list received for file `id` of `size` bytes.
    pub fn from_bytes(id: ContentId, size: u64, chunk_size: ChunkSize, bytes: &[u8]) -> Result<Self, ChunkError> {
        let count = chunk_size.count(size);
        let expected = if count <= 1 { 0 } else { count * CV_LEN as u64 };
        if bytes.len() as u64 != expected {
            return Err(ChunkError::ChunkListLength { expected, got: bytes.len() as u64 });
        }
        let cvs: Vec<ChainingValue> = bytes
            .chunks_exact(CV_LEN)
            .map(|c| {
                let mut cv = [0u8; CV_LEN];
                cv.copy_from_slice(c);
                cv
            })
            .collect();
        if cvs.len() >= 2 && root_of(&cvs) != id {
            return Err(ChunkError::ChunkListMismatch(id));
        }
        Ok(Self { id, size, chunk_size, cvs })
    }

    /// The chunk list as bytes (what is stored and sent): the chaining values concatenated.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.cvs.concat()
    }

    /// The file's id.
    pub fn id(&self) -> ContentId {
        self.id
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The file's chunk size.
    pub fn chunk_size(&self) -> ChunkSize {
        self.chunk_size
    }

    /// How many chunks the file has.
    pub fn chunk_count(&self) -> u64 {
        self.chunk_size.count(self.size)
    }

    /// Checks that `data` is exactly chunk `index` of this file.
    pub fn verify_chunk(&self, index: u64, data: &[u8]) -> Result<(), ChunkError> {
        let count = self.chunk_count();
        if index >= count {
            return Err(ChunkError::IndexOutOfRange { index, count });
        }
        let (offset, expected) = self.chunk_size.range(self.size, index);
        if data.len() as u64 != expected {
            return Err(ChunkError::ChunkLength { index, expected, got: data.len() as u64 });
        }
        let ok = if count == 1 {
            ContentId::of(data) == self.id
        } else {
            chunk_cv(offset, data) == self.cvs[index as usize]
        };
        if ok {
            Ok(())
        } else {
            Err(ChunkError::ChunkMismatch { file: self.id, index })
        }
    }
}

/// The BLAKE3 chaining value of `data` as the subtree starting at byte `offset`.
fn chunk_cv(offset: u64, data: &[u8]) -> ChainingValue {
    let mut h = blake3::Hasher::new();
    h.set_input_offset(offset);
    h.update(data);
    h.finalize_non_root()
}

/// Merges the chaining values of at least two consecutive chunks into the root hash.
fn root_of(cvs: &[ChainingValue]) -> ContentId {
    let (l, r) = split(cvs);
    ContentId::from(merge_subtrees_root(&subtree(l), &subtree(r), Mode::Hash))
}

fn subtree(cvs: &[ChainingValue]) -> ChainingValue {
    if cvs.len() == 1 {
        return cvs[0];
    }
    let (l, r) = split(cvs);
    merge_subtrees_non_root(&subtree(l), &subtree(r), Mode::Hash)
}

/// BLAKE3's split: the left subtree holds the largest power of two of chunks less than the total.
fn split(cvs: &[ChainingValue]) -> (&[ChainingValue], &[ChainingValue]) {
    let left = (cvs.len() - 1).next_power_of_two();
    let left = if left >= cvs.len() { left / 2 } else { left };
    cvs.split_at(left)
}

/// The result of hashing a file: its id, size and chunk list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// The file id (its plain BLAKE3 hash).
    pub id: ContentId,
    /// The size in bytes.
    pub size: u64,
    /// The verification data for transfers.
    pub chunks: ChunkList,
}

/// The chunk-list entry of chunk `index` holding `data`, for a file of more than one chunk
/// (callers that read chunks themselves, e.g. in parallel, hash them with this and assemble the
/// digest with [`FileDigest::from_chunk_entries`]).
pub fn chunk_entry(chunk_size: ChunkSize, index: u64, data: &[u8]) -> [u8; CV_LEN] {
    chunk_cv(index.saturating_mul(chunk_size.bytes()), data)
}

impl FileDigest {
    /// Assembles the digest of a file of `size` bytes from its chunk-list entries (one per chunk,
    /// in order, made by [`chunk_entry`]). For a file of at most one chunk pass `whole`, its plain
    /// BLAKE3 hash, and no entries.
    pub fn from_chunk_entries(
        size: u64,
        chunk_size: ChunkSize,
        entries: Vec<[u8; CV_LEN]>,
        whole: Option<ContentId>,
    ) -> Result<Self, ChunkError> {
        let count = chunk_size.count(size);
        let id = if count <= 1 {
            match (whole, entries.is_empty()) {
                (Some(id), true) => id,
                _ => return Err(ChunkError::ChunkListLength { expected: 0, got: (entries.len() * CV_LEN) as u64 }),
            }
        } else {
            if entries.len() as u64 != count {
                return Err(ChunkError::ChunkListLength {
                    expected: count * CV_LEN as u64,
                    got: (entries.len() * CV_LEN) as u64,
                });
            }
            root_of(&entries)
        };
        Ok(Self { id, size, chunks: ChunkList { id, size, chunk_size, cvs: entries } })
    }
}

/// Hashes everything `reader` yields in one pass, on `threads` threads, in constant memory.
///
/// `progress` is called with the number of bytes hashed so far after each batch.
pub fn hash_reader<R: Read>(
    mut reader: R,
    chunk_size: ChunkSize,
    threads: usize,
    mut progress: impl FnMut(u64),
) -> io::Result<FileDigest> {
    let threads = threads.max(1);
    let cs = chunk_size.bytes() as usize;
    // Enough chunks per batch to keep every thread busy, about 4 MiB each.
    let per_thread = (4 << 20) / cs;
    let batch_chunks = threads * per_thread.max(1);
    let mut buf = vec![0u8; batch_chunks * cs];
    let mut cvs: Vec<ChainingValue> = Vec::new();
    let mut total: u64 = 0;
    loop {
        let filled = read_full(&mut reader, &mut buf)?;
        if total == 0 && filled <= cs && filled < buf.len() {
            // The whole input fits in one chunk: its id is its plain hash, its list is empty.
            let id = ContentId::of(&buf[..filled]);
            progress(filled as u64);
            let chunks = ChunkList { id, size: filled as u64, chunk_size, cvs: Vec::new() };
            return Ok(FileDigest { id, size: filled as u64, chunks });
        }
        let data = &buf[..filled];
        let pieces: Vec<&[u8]> = data.chunks(cs).collect();
        let base = total;
        let mut batch = vec![[0u8; CV_LEN]; pieces.len()];
        let per = pieces.len().div_ceil(threads).max(1);
        std::thread::scope(|s| {
            for (slots, work) in batch.chunks_mut(per).zip(pieces.chunks(per).enumerate()) {
                let (group, chunks) = work;
                s.spawn(move || {
                    for (j, (slot, piece)) in slots.iter_mut().zip(chunks).enumerate() {
                        let offset = base + ((group * per + j) * cs) as u64;
                        *slot = chunk_cv(offset, piece);
                    }
                });
            }
        });
        cvs.extend_from_slice(&batch);
        total += filled as u64;
        progress(total);
        if filled < buf.len() {
            break;
        }
    }
    let id = root_of(&cvs);
    let chunks = ChunkList { id, size: total, chunk_size, cvs };
    Ok(FileDigest { id, size: total, chunks })
}

/// Fills `buf` as far as the reader allows; returns how many bytes were read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CS: ChunkSize = ChunkSize(1 << 16);

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 11) as u8).collect()
    }

    fn digest(bytes: &[u8], threads: usize) -> FileDigest {
        hash_reader(bytes, CS, threads, |_| {}).unwrap()
    }

    #[test]
    fn id_is_plain_blake3_for_all_shapes() {
        let cs = CS.bytes() as usize;
        for len in [0, 1, 1024, cs - 1, cs, cs + 1, 2 * cs, 3 * cs + 7, 5 * cs, 64 * cs + 3, 129 * cs] {
            let bytes = data(len, 3);
            for threads in [1, 2, 3] {
                let d = digest(&bytes, threads);
                assert_eq!(d.id, ContentId::of(&bytes), "len {len} threads {threads}");
                assert_eq!(d.size, len as u64);
            }
        }
    }

    #[test]
    fn every_chunk_verifies_and_list_round_trips() {
        let bytes = data(5 * CS.bytes() as usize + 100, 9);
        let d = digest(&bytes, 2);
        let list = ChunkList::from_bytes(d.id, d.size, CS, &d.chunks.to_bytes()).unwrap();
        assert_eq!(list.chunk_count(), 6);
        for i in 0..6 {
            let (off, len) = CS.range(d.size, i);
            list.verify_chunk(i, &bytes[off as usize..(off + len) as usize]).unwrap();
        }
    }

    #[test]
    fn chunk_from_other_offset_or_file_is_rejected() {
        let cs = CS.bytes() as usize;
        let bytes = data(4 * cs, 1);
        let mut same = bytes.clone();
        // make chunk 1 identical to chunk 0: still must not verify at offset 1
        same.copy_within(0..cs, cs);
        let d = digest(&same, 1);
        assert!(matches!(d.chunks.verify_chunk(1, &same[..cs]), Ok(())));
        let d = digest(&bytes, 1);
        assert_eq!(d.chunks.verify_chunk(1, &bytes[..cs]), Err(ChunkError::ChunkMismatch { file: d.id, index: 1 }));
        let other = data(4 * cs, 2);
        assert!(d.chunks.verify_chunk(0, &other[..cs]).is_err());
        assert!(matches!(d.chunks.verify_chunk(9, &bytes[..cs]), Err(ChunkError::IndexOutOfRange { .. })));
        assert!(matches!(d.chunks.verify_chunk(0, &bytes[..cs - 1]), Err(ChunkError::ChunkLength { .. })));
    }

    #[test]
    fn identical_chunks_at_different_offsets_have_different_entries() {
        let cs = CS.bytes() as usize;
        let bytes = vec![5u8; 3 * cs];
        let d = digest(&bytes, 1);
        let raw = d.chunks.to_bytes();
        assert_ne!(raw[..CV_LEN], raw[CV_LEN..2 * CV_LEN]);
        assert!(d.chunks.verify_chunk(2, &bytes[..cs]).is_ok(), "last chunk is full and identical");
        // but chunk 0's bytes never verify as chunk 1 when the content differs by offset-hash
        let mut list_bytes = raw.clone();
        list_bytes.swap(0, 40);
        assert!(ChunkList::from_bytes(d.id, d.size, CS, &list_bytes).is_err());
    }

    #[test]
    fn single_chunk_file_checks_against_id() {
        let bytes = data(1000, 4);
        let d = digest(&bytes, 1);
        assert!(d.chunks.to_bytes().is_empty());
        let list = ChunkList::from_bytes(d.id, 1000, CS, &[]).unwrap();
        list.verify_chunk(0, &bytes).unwrap();
        assert!(list.verify_chunk(0, &data(1000, 5)).is_err());
    }

    #[test]
    fn tampered_or_wrong_length_chunk_lists_rejected() {
        let bytes = data(3 * CS.bytes() as usize, 7);
        let d = digest(&bytes, 1);
        let mut raw = d.chunks.to_bytes();
        raw[5] ^= 1;
        assert_eq!(ChunkList::from_bytes(d.id, d.size, CS, &raw), Err(ChunkError::ChunkListMismatch(d.id)));
        assert!(matches!(
            ChunkList::from_bytes(d.id, d.size, CS, &raw[..64]),
            Err(ChunkError::ChunkListLength { expected: 96, got: 64 })
        ));
    }

    #[test]
    fn digest_from_entries_matches_the_streaming_hash() {
        let bytes = data(5 * CS.bytes() as usize + 77, 11);
        let d = digest(&bytes, 1);
        let entries: Vec<_> =
            bytes.chunks(CS.bytes() as usize).enumerate().map(|(i, c)| chunk_entry(CS, i as u64, c)).collect();
        assert_eq!(FileDigest::from_chunk_entries(d.size, CS, entries, None).unwrap(), d);
        let small = data(100, 1);
        let d = digest(&small, 1);
        assert_eq!(FileDigest::from_chunk_entries(100, CS, Vec::new(), Some(ContentId::of(&small))).unwrap(), d);
        assert!(FileDigest::from_chunk_entries(5 * CS.bytes(), CS, Vec::new(), None).is_err());
    }

    #[test]
    fn chunk_size_bounds() {
        assert!(ChunkSize::new(1 << 16).is_ok());
        assert!(ChunkSize::new(1 << 24).is_ok());
        assert!(ChunkSize::new(1 << 15).is_err());
        assert!(ChunkSize::new(1 << 25).is_err());
        assert!(ChunkSize::new(3 << 16).is_err());
    }
}
