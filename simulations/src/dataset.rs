//! The simulated dataset: `len` bytes drawn from ChaCha8 seeded with the run's seed, so that the
//! real-code mode and a Shadow export publish the same bytes for the same scenario and seed.

use std::io::Write as _;
use std::path::Path;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::OutputError;

/// The dataset's name (slug) in every simulated publish.
pub const SLUG: &str = "sim-dataset";
/// The dataset's title.
pub const TITLE: &str = "lien-sim dataset";
/// Its one file's name.
pub const FILE: &str = "data.bin";

/// Bytes written per step by [`write`]: a multiple of ChaCha's 64-byte block, so that the
/// stream is the same as one [`generate`] call.
const STEP: usize = 1 << 20;

/// The dataset's bytes, in memory.
pub fn generate(len: u64, seed: u64) -> Result<Vec<u8>, OutputError> {
    let n = usize::try_from(len).map_err(|_| OutputError::Invalid(format!("a {len}-byte dataset does not fit")))?;
    let mut data = vec![0u8; n];
    ChaCha8Rng::seed_from_u64(seed).fill_bytes(&mut data);
    Ok(data)
}

/// Writes the dataset's bytes to `path` a mebibyte at a time (the same bytes as [`generate`]).
pub fn write(path: &Path, len: u64, seed: u64) -> Result<(), OutputError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let file = std::fs::File::create(path).map_err(OutputError::io(path))?;
    let mut w = std::io::BufWriter::new(file);
    let mut buf = vec![0u8; STEP];
    let mut left = len;
    while left > 0 {
        let n = usize::try_from(left.min(STEP as u64)).unwrap_or(STEP);
        rng.fill_bytes(&mut buf[..n]);
        w.write_all(&buf[..n]).map_err(OutputError::io(path))?;
        left -= n as u64;
    }
    w.flush().map_err(OutputError::io(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_bytes_equal_generated_bytes() -> Result<(), OutputError> {
        let dir = tempfile::tempdir().map_err(OutputError::io(Path::new("tmp")))?;
        let path = dir.path().join(FILE);
        let len = 3 * STEP as u64 + 12_345;
        write(&path, len, 7)?;
        let written = std::fs::read(&path).map_err(OutputError::io(&path))?;
        assert!(written == generate(len, 7)?, "the streamed dataset differs from the generated one");
        assert!(generate(1000, 8)? != generate(1000, 7)?, "the seed changes nothing");
        Ok(())
    }
}
