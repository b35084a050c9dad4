//! What makes a file the same file: device and inode, its birth time where the
//! filesystem keeps one, and a checksum of its first bytes.
//!
//! A path is not an identity (rotation renames, a new file takes the old name),
//! and an inode alone is not one either (a deleted file's inode is reused).

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};

use serde::{Deserialize, Serialize};

/// How many leading bytes identify a file's content. A shorter file is
/// identified by what it has, and the window grows as the file does.
pub const HEAD_BYTES: usize = 1024;

/// Device and inode: the key under which a file's position is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
}

impl FileKey {
    pub fn of(meta: &Metadata) -> FileKey {
        FileKey {
            dev: meta.dev(),
            ino: meta.ino(),
        }
    }
}

/// The checksum of a file's first `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub len: u32,
    pub hash: u64,
}

impl Head {
    /// Reads and hashes up to [`HEAD_BYTES`] from the start of the file.
    pub fn read(file: &File) -> io::Result<Head> {
        Self::read_len(file, HEAD_BYTES)
    }

    fn read_len(file: &File, len: usize) -> io::Result<Head> {
        let mut buf = [0u8; HEAD_BYTES];
        let want = len.min(HEAD_BYTES);
        let mut got = 0;
        while got < want {
            match file.read_at(&mut buf[got..want], got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Head {
            len: got as u32,
            hash: xxhash_rust::xxh3::xxh3_64(&buf[..got]),
        })
    }

    /// Whether the file still starts with the bytes this head was taken from.
    pub fn matches(&self, file: &File) -> io::Result<bool> {
        let now = Self::read_len(file, self.len as usize)?;
        Ok(now == *self)
    }

    /// Whether the window can still grow (the file was shorter than it when hashed).
    pub fn is_partial(&self) -> bool {
        (self.len as usize) < HEAD_BYTES
    }
}

/// Birth time in nanoseconds, where the filesystem records one (ext4, xfs, btrfs, tmpfs).
pub fn birth_time(meta: &Metadata) -> Option<i128> {
    let t = meta.created().ok()?;
    let d = t.duration_since(std::time::UNIX_EPOCH).ok()?;
    Some(d.as_nanos() as i128)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn head_follows_content_not_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let mut f = File::create(&path).unwrap();
        f.write_all(b"first line\n").unwrap();
        let head = Head::read(&File::open(&path).unwrap()).unwrap();
        assert_eq!(head.len, 11);
        f.write_all(b"second line\n").unwrap();
        assert!(
            head.matches(&File::open(&path).unwrap()).unwrap(),
            "growth keeps the identity"
        );
        std::fs::write(&path, b"other line\n").unwrap();
        assert!(
            !head.matches(&File::open(&path).unwrap()).unwrap(),
            "new content is a new file"
        );
    }
}
