//! Making what sled wrote durable. sled 0.34's `Db::flush()` ends its log
//! writes with `sync_file_range`, which neither persists the file's size nor
//! flushes the drive's write cache, and it never syncs blob files or
//! directories. After each flush the group-commit thread calls a [`Syncer`];
//! only when it returns are the writers of that flush answered.
//!
//! What sled 0.34.7 writes in its directory, and what [`FileSyncer`] does:
//! - `db`, the log (all trees' pages in segments): `pwrite` +
//!   `sync_file_range`; the file grows as segments are added. We
//!   `fdatasync` it after every flush (data, the size, and a cache flush).
//! - `blobs/<lsn>`, a page too large for a log slot (over ~128 KiB, e.g. a
//!   leaf of keys with long descriptions): written with `write_all` before
//!   the log entry that points at it, never synced. We `fsync` each new (or
//!   grown) blob file, then the `blobs` directory.
//! - `snap.<lsn>`: sled writes `snap.<lsn>.generating`, `fsync`s it and
//!   renames it, without syncing the directory. We `fsync` the data
//!   directory whenever a name appeared in it since its last sync.
//! - `conf`, written once at creation, never synced. Synced once at open,
//!   with `db`, `blobs/`, the data directory and its parent.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

/// Makes durable everything sled has written so far. Called on the flusher
/// thread, after `Db::flush()`, before the writers are answered.
pub trait Syncer: Send {
    fn sync(&mut self) -> io::Result<()>;
}

/// Builds the syncer of a store once sled has opened `dir`; tests replace
/// it to delay or fail syncs.
pub type MakeSyncer = Box<dyn FnOnce(&Path) -> io::Result<Box<dyn Syncer>> + Send>;

/// The real syncer: [`FileSyncer`].
pub fn file_syncer() -> MakeSyncer {
    Box::new(|dir| Ok(Box::new(FileSyncer::open(dir)?) as Box<dyn Syncer>))
}

/// Syncs sled's files (see the module comment). Its descriptors stay open:
/// `fsync` applies to the inode, so our descriptor syncs what sled's wrote.
pub struct FileSyncer {
    log: File,
    blobs_path: PathBuf,
    blobs_dir: File,
    data_path: PathBuf,
    data_dir: File,
    /// Blob files synced so far, with the length they had then.
    synced_blobs: HashMap<OsString, u64>,
    /// The data directory's names when it was last synced.
    data_names: HashSet<OsString>,
}

impl FileSyncer {
    /// Opens sled's files in `dir` (sled must have created them) and syncs
    /// everything once, so that the store's creation itself is durable.
    pub fn open(dir: &Path) -> io::Result<FileSyncer> {
        let open = |path: PathBuf| {
            File::open(&path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
        };
        let mut syncer = FileSyncer {
            log: open(dir.join("db"))?,
            blobs_path: dir.join("blobs"),
            blobs_dir: open(dir.join("blobs"))?,
            data_path: dir.to_owned(),
            data_dir: open(dir.to_owned())?,
            synced_blobs: HashMap::new(),
            data_names: HashSet::new(),
        };
        if let Ok(conf) = File::open(dir.join("conf")) {
            conf.sync_all()?;
        }
        syncer.log.sync_all()?;
        // Every name is new to it: this also syncs the data directory.
        syncer.sync()?;
        // The data directory's own entry, if it was just created. Best
        // effort: the parent may not be ours to open.
        if let Some(parent) = dir.canonicalize()?.parent() {
            if let Err(error) = File::open(parent).and_then(|p| p.sync_all()) {
                tracing::warn!(%error, parent = %parent.display(), "cannot sync the data directory's parent");
            }
        }
        Ok(syncer)
    }

    /// The blob files synced so far (for tests).
    pub fn synced_blobs(&self) -> impl Iterator<Item = &OsString> {
        self.synced_blobs.keys()
    }

    /// Syncs blob files that are new or grew since they were last synced (a
    /// blob may still have been being written then), then their directory.
    fn sync_blobs(&mut self) -> io::Result<()> {
        let mut present = HashSet::new();
        let mut new_names = false;
        for entry in std::fs::read_dir(&self.blobs_path)? {
            let entry = entry?;
            let name = entry.file_name();
            let len = match entry.metadata() {
                Ok(metadata) => metadata.len(),
                // Removed by sled meanwhile (no longer referenced).
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if self.synced_blobs.get(&name) != Some(&len) {
                match File::open(entry.path()) {
                    Ok(file) => file.sync_all()?,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                }
                new_names |= !self.synced_blobs.contains_key(&name);
                self.synced_blobs.insert(name.clone(), len);
            }
            present.insert(name);
        }
        self.synced_blobs.retain(|name, _| present.contains(name));
        if new_names {
            self.blobs_dir.sync_all()?;
        }
        Ok(())
    }

    /// Syncs the data directory if a name appeared in it (a snapshot
    /// renamed into place) since it was last synced.
    fn sync_data_dir(&mut self) -> io::Result<()> {
        let names = std::fs::read_dir(&self.data_path)?
            .map(|entry| entry.map(|e| e.file_name()))
            .collect::<io::Result<HashSet<_>>>()?;
        if !names.is_subset(&self.data_names) {
            self.data_dir.sync_all()?;
        }
        self.data_names = names;
        Ok(())
    }
}

impl Syncer for FileSyncer {
    fn sync(&mut self) -> io::Result<()> {
        // Blobs before the log that points at them.
        self.sync_blobs()?;
        self.log.sync_data()?;
        self.sync_data_dir()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blob_file_sled_writes_is_synced_after_the_flush() {
        let dir = tempfile::tempdir().unwrap();
        let db = ::sled::Config::new().path(dir.path()).open().unwrap();
        let mut syncer = FileSyncer::open(dir.path()).unwrap();
        assert_eq!(syncer.synced_blobs().count(), 0);
        // A page over a quarter of a 512 KiB segment goes to its own file.
        db.insert(b"big", vec![7u8; 200 * 1024]).unwrap();
        db.flush().unwrap();
        let blobs: Vec<OsString> = std::fs::read_dir(dir.path().join("blobs"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(!blobs.is_empty(), "sled wrote no blob file");
        syncer.sync().unwrap();
        let synced: HashSet<&OsString> = syncer.synced_blobs().collect();
        for blob in &blobs {
            assert!(synced.contains(blob), "blob {blob:?} was not synced");
        }
    }
}
