//! Chunks of partial files written and verified but not yet fsynced and marked: offered to
//! peers at once (the server verifies every chunk again before sending it), never trusted for a
//! resume after a crash (only marks are).

use lien_protocol::ContentId;

use super::Store;

impl Store {
    /// Notes chunks of a partial file as written and verified (not yet durable): `have` offers
    /// them until [`Store::mark_chunks`] makes them durable.
    pub fn note_written(&self, file: &ContentId, indices: impl IntoIterator<Item = u64>) {
        if let Ok(mut w) = self.written.lock() {
            w.entry(*file).or_default().extend(indices);
        }
    }

    /// Forgets the written-but-unmarked chunks of `file` (`None`: all of them).
    pub(super) fn forget_written(&self, file: &ContentId, indices: Option<&[u64]>) {
        if let Ok(mut w) = self.written.lock() {
            match indices {
                None => {
                    w.remove(file);
                }
                Some(done) => {
                    if let Some(set) = w.get_mut(file) {
                        for i in done {
                            set.remove(i);
                        }
                        if set.is_empty() {
                            w.remove(file);
                        }
                    }
                }
            }
        }
    }

    /// Sets in `bitmap` (of a file of `count` chunks) the chunks written since the last mark.
    pub(super) fn add_written(&self, file: &ContentId, count: u64, bitmap: &mut [u8]) {
        if let Ok(w) = self.written.lock() {
            for i in w.get(file).into_iter().flatten().filter(|i| **i < count) {
                if let Some(b) = bitmap.get_mut((*i / 8) as usize) {
                    *b |= 1 << (i % 8);
                }
            }
        }
    }
}
