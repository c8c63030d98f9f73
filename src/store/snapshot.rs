//! Snapshots: the whole store at one instant, as a file, for backups
//! (`aliasd backup`) and restores into an empty data directory (`aliasd
//! restore`). The snapshot holds the backend-neutral records of every tree
//! (the same bytes every backend stores), so it also carries data from one
//! backend to another.
//!
//! Format, version 1 (all integers big-endian):
//!
//! ```text
//! "aliasd-snapshot\n"                  16 bytes, the magic
//! u32 version                          1
//! u32 n, n bytes                       a JSON object: created_ms, aliasd_version (informative)
//! then frames, each a tag byte:
//!   'T' u8 n, n bytes                  the tree the next entries belong to (its name)
//!   'E' u32 n, key, u32 m, value       one entry of that tree
//!   'Z' u64 entries, 32 bytes          the end: the number of entries, and the SHA-256
//!                                      of every byte before this 'Z'
//! ```
//!
//! A reader refuses a file with another magic or version, an unknown tree,
//! a frame cut short, bytes after the end, or a checksum that does not
//! match: a snapshot is applied whole or not at all.

use std::cell::RefCell;
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::backend::{scan_all, Tree};
use super::Store;
use crate::domain::Error;

pub const MAGIC: &[u8; 16] = b"aliasd-snapshot\n";
pub const VERSION: u32 = 1;
/// Entries per transaction when a snapshot is loaded.
const LOAD_BATCH: usize = 512;
/// The most any one key or value may take (a bound on what a corrupt
/// length can make a reader allocate).
const MAX_FIELD: u32 = 64 * 1024 * 1024;

/// What a snapshot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub entries: u64,
    pub bytes: u64,
    /// The SHA-256 in its trailer, as hex.
    pub sha256: String,
    /// Entries per tree, in the order written.
    pub trees: Vec<(String, u64)>,
}

fn io(error: std::io::Error) -> Error {
    Error::internal(format!("snapshot I/O: {error}"))
}

/// A writer that hashes what it writes and counts it.
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl Store {
    /// Writes a snapshot of the whole store to `file` (from its start,
    /// truncating it), all of it at one instant: read while no transaction
    /// runs, or, if a write overlaps that read, read again with writes held
    /// off until it ends (see [`Store::consistent`]).
    pub fn snapshot_to(&self, file: &mut std::fs::File, created_ms: i64) -> Result<Summary, Error> {
        let file = RefCell::new(file);
        // One try without holding writes off: a whole-store read that
        // overlapped writes once would most likely overlap them again.
        self.consistent_tries(1, |store| {
            let mut file = file.borrow_mut();
            file.set_len(0).map_err(io)?;
            file.seek(SeekFrom::Start(0)).map_err(io)?;
            store.write_snapshot(&mut file, created_ms)
        })
    }

    fn write_snapshot(&self, out: &mut std::fs::File, created_ms: i64) -> Result<Summary, Error> {
        let mut out = Hashing {
            inner: BufWriter::with_capacity(1 << 20, out),
            hash: Sha256::new(),
            bytes: 0,
        };
        let header = serde_json::json!({
            "created_ms": created_ms,
            "aliasd_version": env!("CARGO_PKG_VERSION"),
        })
        .to_string();
        out.write_all(MAGIC).map_err(io)?;
        out.write_all(&VERSION.to_be_bytes()).map_err(io)?;
        out.write_all(&(header.len() as u32).to_be_bytes())
            .map_err(io)?;
        out.write_all(header.as_bytes()).map_err(io)?;
        let mut summary = Summary {
            entries: 0,
            bytes: 0,
            sha256: String::new(),
            trees: Vec::new(),
        };
        for tree in Tree::ALL {
            let name = tree.name().as_bytes();
            out.write_all(b"T").map_err(io)?;
            out.write_all(&[name.len() as u8]).map_err(io)?;
            out.write_all(name).map_err(io)?;
            let mut count = 0u64;
            scan_all(&*self.backend, tree, &[], None, |key, value| {
                out.write_all(b"E").map_err(io)?;
                out.write_all(&(key.len() as u32).to_be_bytes())
                    .map_err(io)?;
                out.write_all(key).map_err(io)?;
                out.write_all(&(value.len() as u32).to_be_bytes())
                    .map_err(io)?;
                out.write_all(value).map_err(io)?;
                count += 1;
                Ok(())
            })?;
            summary.entries += count;
            summary.trees.push((tree.name().to_owned(), count));
        }
        let digest = out.hash.clone().finalize();
        out.write_all(b"Z").map_err(io)?;
        out.write_all(&summary.entries.to_be_bytes()).map_err(io)?;
        out.write_all(&digest).map_err(io)?;
        out.flush().map_err(io)?;
        summary.bytes = out.bytes;
        summary.sha256 = hex(&digest);
        Ok(summary)
    }

    /// Loads the snapshot at `path` into this store, which must be empty of
    /// records (a new store: only what opening writes). The file is read
    /// through once to check it before anything is written.
    pub fn load_snapshot(&self, path: &Path) -> Result<Summary, Error> {
        read_snapshot(path, |_, _, _| Ok(()))?;
        self.load_checked_snapshot(path)
    }

    /// [`Store::load_snapshot`] of a file already read through and found
    /// whole.
    fn load_checked_snapshot(&self, path: &Path) -> Result<Summary, Error> {
        for tree in [Tree::Keys, Tree::Aliases, Tree::Audit, Tree::Changes] {
            if !self.backend.scan(tree, &[], None, 1)?.is_empty() {
                return Err(Error::internal(
                    "the store already holds records: restore only into an empty data directory",
                ));
            }
        }
        let batch_size = LOAD_BATCH.min(self.backend.max_writes_per_transaction());
        let mut batch: Vec<(Tree, Vec<u8>, Vec<u8>)> = Vec::with_capacity(batch_size);
        let flush = |batch: &mut Vec<(Tree, Vec<u8>, Vec<u8>)>| -> Result<(), Error> {
            self.gated_transact(&|tx| {
                for (tree, key, value) in batch.iter() {
                    tx.put(*tree, key, value)?;
                }
                Ok(())
            })?;
            batch.clear();
            Ok(())
        };
        let summary = read_snapshot(path, |tree, key, value| {
            batch.push((tree, key.to_vec(), value.to_vec()));
            if batch.len() >= batch_size {
                flush(&mut batch)?;
            }
            Ok(())
        })?;
        flush(&mut batch)?;
        self.backend.flush_blocking().map_err(|cause| {
            Error::internal(format!("cannot make the restore durable: {cause}"))
        })?;
        Ok(summary)
    }
}

/// Restores the snapshot at `file` into `dir`, which must not exist or be
/// empty: the file is checked whole first, then loaded and made durable,
/// then the new store is checked as `aliasd check` does. On a failure
/// after `dir` was written, what was written is removed.
pub fn restore_dir(
    dir: &Path,
    file: &Path,
    limits: &crate::domain::ops::Limits,
) -> Result<(Summary, super::check::Report), Error> {
    match std::fs::read_dir(dir).map(|mut entries| entries.next().is_some()) {
        Ok(true) => {
            return Err(Error::internal(format!(
                "{} is not empty: restore only into a new or empty directory",
                dir.display()
            )))
        }
        Ok(false) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(Error::internal(format!(
                "cannot read {}: {e}",
                dir.display()
            )))
        }
    }
    read_snapshot(file, |_, _, _| Ok(()))?;
    let loaded = (|| {
        let store = Store::open(&crate::store::Engine::sled(dir))
            .map_err(|e| Error::internal(e.to_string()))?;
        let summary = store.load_checked_snapshot(file)?;
        // Checked through the store that loaded it: reopening the directory
        // could race sled's own threads for its lock.
        let report = store.check(limits);
        store.flush_blocking()?;
        Ok((summary, report))
    })();
    if loaded.is_err() {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let _ = match path.is_dir() {
                    true => std::fs::remove_dir_all(&path),
                    false => std::fs::remove_file(&path),
                };
            }
        }
    }
    loaded
}

/// Restores the snapshot at `file` into etcd under `config`'s prefix,
/// which must hold nothing: checked whole first, loaded, then checked as
/// `aliasd check` does. On a failure after writing, everything under the
/// prefix is deleted again.
pub fn restore_etcd(
    config: &super::etcd::EtcdConfig,
    file: &Path,
    limits: &crate::domain::ops::Limits,
) -> Result<(Summary, super::check::Report), Error> {
    let probe = super::etcd::EtcdBackend::connect(config)?;
    if !probe.is_empty()? {
        return Err(Error::internal(format!(
            "etcd prefix {} is not empty: restore only into an empty prefix",
            config.prefix
        )));
    }
    read_snapshot(file, |_, _, _| Ok(()))?;
    let loaded = (|| {
        let store = Store::open(&crate::store::Engine::Etcd(config.clone()))
            .map_err(|e| Error::internal(e.to_string()))?;
        let summary = store.load_checked_snapshot(file)?;
        drop(store);
        let report = super::check::check_etcd(config, limits, None).map_err(Error::internal)?;
        Ok((summary, report))
    })();
    if loaded.is_err() {
        let _ = probe.delete_everything();
    }
    loaded
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads the snapshot at `path`, calling `each` for every entry, and checks
/// its end and checksum. `each` runs before the checksum is known: callers
/// that write must read the file through once first (as
/// [`Store::load_snapshot`] does).
pub fn read_snapshot(
    path: &Path,
    mut each: impl FnMut(Tree, &[u8], &[u8]) -> Result<(), Error>,
) -> Result<Summary, Error> {
    let file = std::fs::File::open(path)
        .map_err(|e| Error::internal(format!("cannot open {}: {e}", path.display())))?;
    let mut reader = HashingReader {
        inner: BufReader::with_capacity(1 << 20, file),
        hash: Sha256::new(),
        bytes: 0,
    };
    let bad = |what: &str| {
        Error::internal(format!(
            "{} is not a valid snapshot: {what}",
            path.display()
        ))
    };
    let mut magic = [0u8; 16];
    reader
        .read_exact(&mut magic)
        .map_err(|_| bad("too short"))?;
    if &magic != MAGIC {
        return Err(bad("it does not begin with the aliasd snapshot magic"));
    }
    let version = reader.u32().map_err(|_| bad("cut short"))?;
    if version != VERSION {
        return Err(bad(&format!(
            "format version {version}; this aliasd reads version {VERSION}"
        )));
    }
    let header_len = reader.u32().map_err(|_| bad("cut short"))?;
    if header_len > MAX_FIELD {
        return Err(bad("its header is too long"));
    }
    reader.bytes_of(header_len).map_err(|_| bad("cut short"))?;
    let mut summary = Summary {
        entries: 0,
        bytes: 0,
        sha256: String::new(),
        trees: Vec::new(),
    };
    let mut tree: Option<Tree> = None;
    loop {
        // The tag is hashed only if it is not the end's: the checksum covers
        // every byte before the 'Z'.
        let mut tag = [0u8; 1];
        reader
            .inner
            .read_exact(&mut tag)
            .map_err(|_| bad("cut short: no end"))?;
        if tag[0] != b'Z' {
            reader.hash.update(tag);
            reader.bytes += 1;
        }
        match tag[0] {
            b'T' => {
                let mut len = [0u8; 1];
                reader.read_exact(&mut len).map_err(|_| bad("cut short"))?;
                let name = reader
                    .bytes_of(u32::from(len[0]))
                    .map_err(|_| bad("cut short"))?;
                let found = Tree::ALL
                    .into_iter()
                    .find(|t| t.name().as_bytes() == name.as_slice())
                    .ok_or_else(|| {
                        bad(&format!(
                            "unknown tree {:?}",
                            String::from_utf8_lossy(&name)
                        ))
                    })?;
                summary.trees.push((found.name().to_owned(), 0));
                tree = Some(found);
            }
            b'E' => {
                let current = tree.ok_or_else(|| bad("an entry before any tree"))?;
                let key_len = reader.u32().map_err(|_| bad("cut short"))?;
                if key_len > MAX_FIELD {
                    return Err(bad("a key is too long"));
                }
                let key = reader.bytes_of(key_len).map_err(|_| bad("cut short"))?;
                let value_len = reader.u32().map_err(|_| bad("cut short"))?;
                if value_len > MAX_FIELD {
                    return Err(bad("a value is too long"));
                }
                let value = reader.bytes_of(value_len).map_err(|_| bad("cut short"))?;
                each(current, &key, &value)?;
                summary.entries += 1;
                if let Some((_, count)) = summary.trees.last_mut() {
                    *count += 1;
                }
            }
            b'Z' => {
                let mut count = [0u8; 8];
                reader
                    .inner
                    .read_exact(&mut count)
                    .map_err(|_| bad("cut short"))?;
                let mut digest = [0u8; 32];
                reader
                    .inner
                    .read_exact(&mut digest)
                    .map_err(|_| bad("cut short"))?;
                if u64::from_be_bytes(count) != summary.entries {
                    return Err(bad("its entry count does not match its entries"));
                }
                if digest.as_slice() != reader.hash.clone().finalize().as_slice() {
                    return Err(bad("its checksum does not match (the file is damaged)"));
                }
                let mut rest = [0u8; 1];
                if reader
                    .inner
                    .read(&mut rest)
                    .map_err(|_| bad("unreadable"))?
                    != 0
                {
                    return Err(bad("bytes follow its end"));
                }
                summary.bytes = reader.bytes + 1 + 8 + 32;
                summary.sha256 = hex(&digest);
                return Ok(summary);
            }
            other => return Err(bad(&format!("unknown frame {other:#04x}"))),
        }
    }
}

struct HashingReader<R: Read> {
    inner: R,
    hash: Sha256,
    bytes: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

impl<R: Read> HashingReader<R> {
    fn u32(&mut self) -> std::io::Result<u32> {
        let mut bytes = [0u8; 4];
        self.read_exact(&mut bytes)?;
        Ok(u32::from_be_bytes(bytes))
    }

    fn bytes_of(&mut self, len: u32) -> std::io::Result<Vec<u8>> {
        let mut bytes = vec![0u8; len as usize];
        self.read_exact(&mut bytes)?;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled_store() -> std::sync::Arc<Store> {
        let store = Store::open(&crate::store::Engine::Memory).unwrap();
        store
            .gated_transact(&|tx| {
                tx.put(Tree::Keys, b"acct\0k1", b"key record")?;
                tx.put(Tree::Aliases, b"acct\0alias/a", b"alias record")?;
                tx.put(Tree::Audit, b"acct\0\0\0\0\0\0\0\0\x01", b"")
            })
            .unwrap();
        store
    }

    #[test]
    fn a_snapshot_round_trips_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("snap");
        let store = filled_store();
        let mut file = std::fs::File::create(&path).unwrap();
        let written = store.snapshot_to(&mut file, 42).unwrap();
        drop(file);
        let mut seen = Vec::new();
        let read = read_snapshot(&path, |tree, key, value| {
            seen.push((tree, key.to_vec(), value.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(read, written);
        assert_eq!(read.bytes, std::fs::metadata(&path).unwrap().len());
        assert!(seen.contains(&(
            Tree::Aliases,
            b"acct\0alias/a".to_vec(),
            b"alias record".to_vec()
        )));
        // The token secret travels too.
        assert!(seen.iter().any(|(tree, key, _)| *tree == Tree::Meta
            && key.as_slice() == crate::store::layout::TOKEN_SECRET));

        let restored = Store::open(&crate::store::Engine::Memory).unwrap();
        restored.load_snapshot(&path).unwrap();
        // The page-token secret travels too (a store opened on it later
        // reads it; this one keeps the secret it opened with).
        assert_eq!(
            restored
                .backend
                .get(Tree::Meta, crate::store::layout::TOKEN_SECRET)
                .unwrap(),
            Some(store.token_secret_bytes().to_vec())
        );
        assert_eq!(
            restored
                .backend
                .get(Tree::Aliases, b"acct\0alias/a")
                .unwrap(),
            Some(b"alias record".to_vec())
        );
        // Into a store that has records: refused, nothing written.
        let error = restored.load_snapshot(&path).unwrap_err();
        assert!(error.message.contains("empty"), "{}", error.message);

        let bytes = std::fs::read(&path).unwrap();
        for (damage, why) in [
            (bytes[..bytes.len() - 5].to_vec(), "cut short"),
            ([&bytes[..], b"x"].concat(), "bytes follow"),
            (
                {
                    let mut b = bytes.clone();
                    let at = b.len() / 2;
                    b[at] ^= 1;
                    b
                },
                "",
            ),
            (
                {
                    let mut b = bytes.clone();
                    b[16 + 3] = 9;
                    b
                },
                "format version 9",
            ),
            (b"not a snapshot at all".to_vec(), "magic"),
        ] {
            std::fs::write(&path, &damage).unwrap();
            let empty = Store::open(&crate::store::Engine::Memory).unwrap();
            let error = empty.load_snapshot(&path).unwrap_err();
            assert!(error.message.contains(why), "{why}: {}", error.message);
            assert!(empty
                .backend
                .get(Tree::Aliases, b"acct\0alias/a")
                .unwrap()
                .is_none());
        }
    }
}
