//! What a failed start-up leaves behind: nothing. A data directory that
//! start-up is about to create is noted, and removed again (or emptied,
//! if it was there and empty) when start-up fails.

/// A data directory start-up is about to create (it did not exist, or
/// was empty): what to remove if start-up fails.
pub(super) struct NewDataDir {
    pub(super) path: std::path::PathBuf,
    pub(super) existed: bool,
}

impl NewDataDir {
    pub(super) fn before(path: &std::path::Path) -> Option<NewDataDir> {
        match std::fs::read_dir(path) {
            Ok(mut entries) => entries.next().is_none().then(|| NewDataDir {
                path: path.to_owned(),
                existed: true,
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Some(NewDataDir {
                path: path.to_owned(),
                existed: false,
            }),
            Err(_) => None,
        }
    }

    pub(super) fn remove(self) {
        let removed = match self.existed {
            false => std::fs::remove_dir_all(&self.path),
            true => std::fs::read_dir(&self.path).and_then(|entries| {
                entries
                    .flatten()
                    .try_for_each(|entry| match entry.file_type() {
                        Ok(kind) if kind.is_dir() => std::fs::remove_dir_all(entry.path()),
                        _ => std::fs::remove_file(entry.path()),
                    })
            }),
        };
        match removed {
            Ok(()) => tracing::info!(
                dir = %self.path.display(),
                "start-up failed: removed what it had created in the data directory"
            ),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => tracing::warn!(
                dir = %self.path.display(),
                %error,
                "start-up failed and what it created could not be removed"
            ),
        }
    }
}
