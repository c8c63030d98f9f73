//! Administration across accounts: backups.

use std::io::{Seek, SeekFrom};

use super::{App, Call};
use crate::domain::ops;
use crate::domain::policy::{actions, ANY_RESOURCE};
use crate::domain::Error;
use crate::store::snapshot::Summary;

impl App {
    /// Backup: a snapshot of the whole store, spooled to an unnamed
    /// temporary file (returned at its start) so that the store is read at
    /// one instant however slowly the client takes it. Needs `kms:Backup`
    /// on `*`; audited, with the snapshot's size and checksum.
    pub async fn backup(&self, call: &Call) -> Result<(std::fs::File, Summary), Error> {
        let ctx = self.ctx(call);
        let mut audit = self.audit_entry(call, &ctx, actions::BACKUP);
        audit.resources = vec![ANY_RESOURCE.to_owned()];
        self.audited(
            ops::authorize_account_wide(&ctx, actions::BACKUP),
            audit.clone(),
        )
        .await?;
        self.store.check_not_failed()?;
        let store = self.store.clone();
        let now = ctx.now;
        let (file, summary) = tokio::task::spawn_blocking(move || {
            let mut file = spool()?;
            let summary = store.snapshot_to(&mut file, now)?;
            file.seek(SeekFrom::Start(0))
                .map_err(|e| Error::internal(format!("backup spool: {e}")))?;
            Ok::<_, Error>((file, summary))
        })
        .await
        .map_err(|e| Error::internal(format!("backup task failed: {e}")))??;
        audit.message = format!(
            "{} records, {} bytes, sha256 {}",
            summary.entries, summary.bytes, summary.sha256
        );
        if let Err(error) = self.store.record_audit(audit).await {
            tracing::error!(error = %error, "cannot record a backup in the audit log");
        }
        Ok((file, summary))
    }
}

/// A temporary file with no name (removed at once; gone when closed).
fn spool() -> Result<std::fs::File, Error> {
    let path = std::env::temp_dir().join(format!("aliasd-backup-{}", uuid::Uuid::new_v4()));
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| Error::internal(format!("cannot create {}: {e}", path.display())))?;
    let _ = std::fs::remove_file(&path);
    Ok(file)
}
