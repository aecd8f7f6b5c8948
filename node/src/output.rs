//! Writing a dataset's files into the folder a fetch fills, without following symbolic links
//! that someone else planted there.
//!
//! The folder the user names (or `HOME/data/<id>`) is taken as given: it may itself be a link
//! the user made. Below it, nothing is followed. Each folder of a dataset path is opened with
//! `openat(O_DIRECTORY | O_NOFOLLOW)` from the descriptor of its parent, created with `mkdirat`
//! when missing, so a link (or a file) where a folder should be is an error, not a way out of
//! the output folder; and the descriptor, not the path, is used from then on, so swapping a
//! folder for a link after the check changes nothing. Files are created with
//! `O_CREAT | O_EXCL | O_NOFOLLOW` under a temporary name (a link or other leftover there is
//! unlinked first, never followed), written, verified, and renamed into place with `renameat`
//! (which replaces a link at the final name instead of writing through it). After the rename the
//! entry at the final name must be the very file written (same device and inode), or the fetch
//! fails: nothing is kept that was swapped in under the temporary name.
//!
//! Partial files are `<name>.lien-part`. A name that no dataset path can take would need one of
//! the few characters a dataset path may not hold (`\` or a control character; `/` separates
//! components), and FAT/exFAT drives and SMB shares, where datasets are also written, refuse
//! those in names too. So instead the suffix is reserved: a dataset with a path component
//! ending in `.lien-part` (in any letter case, for case-insensitive filesystems) is refused by
//! the fetcher, before anything is written, and by `publish`, with [`ReservedPath`].

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lien_protocol::RelPath;
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;

/// The suffix of a partial file, reserved in dataset paths.
pub const PART_SUFFIX: &str = ".lien-part";

/// A dataset path that uses the suffix reserved for partial files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("dataset path {0:?} ends in \"{PART_SUFFIX}\", which this node keeps for partially downloaded files")]
pub struct ReservedPath(pub String);

/// Checks that no component of `path` ends in [`PART_SUFFIX`] (ASCII case ignored), so no
/// dataset file or folder can take the name of another file's partial file.
pub fn check_not_reserved(path: &RelPath) -> Result<(), ReservedPath> {
    let suffix = PART_SUFFIX.as_bytes();
    let reserved = path.components().any(|c| {
        let c = c.as_bytes();
        c.len() >= suffix.len() && c[c.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
    });
    if reserved {
        return Err(ReservedPath(path.as_str().to_owned()));
    }
    Ok(())
}

/// The partial file's name of file `name`.
pub fn part_name(name: &str) -> OsString {
    OsString::from(format!("{name}{PART_SUFFIX}"))
}

/// A folder opened for writing without following links: the output folder, or one of its
/// subfolders reached from it through real folders only.
#[derive(Debug, Clone)]
pub struct Folder {
    fd: Arc<OwnedFd>,
    path: PathBuf,
}

fn refused(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} is {what}; refusing to write a dataset through it", path.display()),
    )
}

impl Folder {
    /// Opens the output folder `root` (it must exist; a link the user named is followed).
    pub fn open_root(root: &Path) -> io::Result<Folder> {
        let flags = OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(rustix::fs::CWD, root, flags, Mode::empty())?;
        Ok(Folder { fd: Arc::new(fd), path: root.to_path_buf() })
    }

    /// The folder's path (for records and messages; never used to reach it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Subfolder `name` (one path component), created if missing. A link or a non-folder of
    /// that name is an error.
    pub fn child(&self, name: &str) -> io::Result<Folder> {
        let path = self.path.join(name);
        let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC;
        // Two tries: a folder created by someone else between our open and mkdir is fine.
        for _ in 0..2 {
            match rustix::fs::openat(&*self.fd, name, flags, Mode::empty()) {
                Ok(fd) => return Ok(Folder { fd: Arc::new(fd), path }),
                Err(Errno::NOENT) => match rustix::fs::mkdirat(&*self.fd, name, Mode::from_raw_mode(0o777)) {
                    Ok(()) | Err(Errno::EXIST) => continue,
                    Err(e) => return Err(with_path(e.into(), &path)),
                },
                // Linux says ENOTDIR for a link opened with O_DIRECTORY | O_NOFOLLOW.
                Err(Errno::LOOP | Errno::NOTDIR) => {
                    let link = rustix::fs::statat(&*self.fd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
                        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Symlink
                    });
                    return Err(refused(&path, if link { "a symbolic link" } else { "not a folder" }));
                }
                Err(e) => return Err(with_path(e.into(), &path)),
            }
        }
        Err(refused(&path, "changing under us"))
    }

    /// Creates file `name` anew, empty, open for reading and writing. Whatever was at that name
    /// (a stale partial file, a link) is unlinked first, never followed or written through.
    pub fn create(&self, name: &OsStr) -> io::Result<File> {
        let path = self.path.join(name);
        let flags = OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::RDWR | OFlags::CLOEXEC;
        for _ in 0..2 {
            match rustix::fs::openat(&*self.fd, name, flags, Mode::from_raw_mode(0o666)) {
                Ok(fd) => return Ok(File::from(fd)),
                Err(Errno::EXIST) => match rustix::fs::unlinkat(&*self.fd, name, AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => continue,
                    Err(Errno::ISDIR) => return Err(refused(&path, "a folder")),
                    Err(e) => return Err(with_path(e.into(), &path)),
                },
                Err(e) => return Err(with_path(e.into(), &path)),
            }
        }
        Err(refused(&path, "changing under us"))
    }

    /// Opens the existing regular file `name` for reading and writing (a partial file being
    /// resumed); a link or anything but a regular file is an error.
    pub fn open_existing(&self, name: &OsStr) -> io::Result<File> {
        let path = self.path.join(name);
        // NONBLOCK: a FIFO planted under the name must not hang the open.
        let flags = OFlags::NOFOLLOW | OFlags::RDWR | OFlags::CLOEXEC | OFlags::NONBLOCK;
        let file = match rustix::fs::openat(&*self.fd, name, flags, Mode::empty()) {
            Ok(fd) => File::from(fd),
            Err(Errno::LOOP) => return Err(refused(&path, "a symbolic link")),
            Err(e) => return Err(with_path(e.into(), &path)),
        };
        if !file.metadata()?.is_file() {
            return Err(refused(&path, "not a regular file"));
        }
        Ok(file)
    }

    /// Renames `from` to `to` in this folder (replacing a file or link at `to`, never writing
    /// through it), then checks that `to` is now `file`, the file written under `from`.
    pub fn rename_into_place(&self, from: &OsStr, to: &OsStr, file: &File) -> io::Result<()> {
        let path = self.path.join(to);
        rustix::fs::renameat(&*self.fd, from, &*self.fd, to).map_err(|e| with_path(e.into(), &path))?;
        let written = file.metadata()?;
        let now =
            rustix::fs::statat(&*self.fd, to, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| with_path(e.into(), &path))?;
        #[allow(clippy::unnecessary_cast)] // the field types differ between targets
        let same = now.st_dev as u64 == written.dev() && now.st_ino as u64 == written.ino();
        if !same {
            return Err(refused(&self.path.join(from), "a file someone else swapped in while it was written"));
        }
        Ok(())
    }

    /// Removes entry `name` if it is there (a link is removed, not what it points to).
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        match rustix::fs::unlinkat(&*self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(with_path(e.into(), &self.path.join(name))),
        }
    }

    /// Makes the folder's entries (a rename into it) durable.
    pub fn sync(&self) -> io::Result<()> {
        rustix::fs::fsync(self.fd.as_fd())?;
        Ok(())
    }
}

fn with_path(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The folders of one output root, each opened once (a dataset of many files in few folders
/// walks each folder path once).
#[derive(Debug)]
pub struct Folders {
    root: Folder,
    opened: HashMap<String, Folder>,
}

impl Folders {
    /// The folders under the output folder `root` (which must exist).
    pub fn new(root: &Path) -> io::Result<Folders> {
        Ok(Folders { root: Folder::open_root(root)?, opened: HashMap::new() })
    }

    /// The folder that holds file `path` and the file's name in it; missing folders are
    /// created, links are refused (see the module docs).
    pub fn parent_of(&mut self, path: &RelPath) -> io::Result<(Folder, String)> {
        let parts: Vec<&str> = path.components().collect();
        let Some((name, dirs)) = parts.split_last() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty dataset path"));
        };
        let mut folder = self.root.clone();
        for i in 0..dirs.len() {
            let key = dirs[..=i].join("/");
            folder = match self.opened.get(&key) {
                Some(f) => f.clone(),
                None => {
                    let f = folder.child(dirs[i])?;
                    self.opened.insert(key, f.clone());
                    f
                }
            };
        }
        Ok((folder, (*name).to_owned()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_partial_suffix_is_reserved_in_dataset_paths() {
        for ok in ["a", "a.csv", "lien-part", "a.lien-partx", "x/a.lien-par", ".lien-partial/b"] {
            assert_eq!(check_not_reserved(&RelPath::new(ok).unwrap()), Ok(()), "{ok}");
        }
        for bad in ["a.lien-part", "x/a.lien-part", "a.lien-part/b", ".lien-part", "A.LIEN-PART"] {
            let err = check_not_reserved(&RelPath::new(bad).unwrap()).unwrap_err();
            assert!(err.to_string().contains("partially downloaded"), "{err}");
        }
        assert_eq!(part_name("a.csv"), OsString::from("a.csv.lien-part"));
    }

    #[test]
    fn links_below_the_output_folder_are_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("out");
        let elsewhere = dir.path().join("elsewhere");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::fs::write(elsewhere.join("victim"), b"precious").unwrap();
        std::os::unix::fs::symlink(&elsewhere, root.join("sub")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("victim"), root.join("f.lien-part")).unwrap();
        std::os::unix::fs::symlink(elsewhere.join("victim"), root.join("f")).unwrap();
        std::fs::write(root.join("plain"), b"").unwrap();
        let mut folders = Folders::new(&root).unwrap();

        // A linked folder is refused, and so is a file where a folder should be.
        let err = folders.parent_of(&RelPath::new("sub/x.csv").unwrap()).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let err = folders.parent_of(&RelPath::new("plain/x.csv").unwrap()).unwrap_err();
        assert!(err.to_string().contains("not a folder"), "{err}");
        assert!(!elsewhere.join("x.csv").exists());

        // A link at the partial name is replaced, not written through; one at the final name
        // is replaced by the rename.
        let (folder, name) = folders.parent_of(&RelPath::new("f").unwrap()).unwrap();
        let part = part_name(&name);
        assert!(folder.open_existing(&part).unwrap_err().to_string().contains("symbolic link"));
        let mut file = folder.create(&part).unwrap();
        std::io::Write::write_all(&mut file, b"new").unwrap();
        folder.rename_into_place(&part, OsStr::new(&name), &file).unwrap();
        assert_eq!(std::fs::read(elsewhere.join("victim")).unwrap(), b"precious");
        assert_eq!(std::fs::read(root.join("f")).unwrap(), b"new");
        assert!(!std::fs::symlink_metadata(root.join("f")).unwrap().file_type().is_symlink());

        // New folders are created as real folders; a file swapped in under the partial name
        // is not kept.
        let (folder, name) = folders.parent_of(&RelPath::new("new/deeper/g").unwrap()).unwrap();
        assert!(root.join("new/deeper").is_dir());
        let part = part_name(&name);
        let file = folder.create(&part).unwrap();
        folder.remove(&part).unwrap();
        std::fs::write(root.join("new/deeper").join(&part), b"swapped").unwrap();
        let err = folder.rename_into_place(&part, OsStr::new(&name), &file).unwrap_err();
        assert!(err.to_string().contains("swapped in"), "{err}");
    }
}
