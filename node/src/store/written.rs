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
        self.signal_gained(file);
    }

    /// A receiver that changes whenever `file` gains chunks here (see [`Store::note_written`]):
    /// what a `Watch` request waits on.
    pub fn watch_gains(&self, file: &ContentId) -> Option<tokio::sync::watch::Receiver<()>> {
        let mut g = self.gained.lock().ok()?;
        Some(g.entry(*file).or_insert_with(|| tokio::sync::watch::channel(()).0).subscribe())
    }

    /// Wakes whoever waits on `file`'s gains, and forgets the files nobody waits on.
    fn signal_gained(&self, file: &ContentId) {
        if let Ok(mut g) = self.gained.lock() {
            if let Some(tx) = g.get(file) {
                tx.send_replace(());
            }
            g.retain(|_, tx| tx.receiver_count() > 0);
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
