//! The durable checkpoint: a small JSON file, replaced atomically (written beside, fsynced,
//! renamed, directory fsynced), so that a SIGKILL or power loss leaves the old or the new one,
//! never half of either. It is only ever written with what Kafka has acknowledged.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Error;
use crate::cursor::LogCursor;

const FORMAT: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub format: u32,
    /// The namespace of the event ids published so far: resuming under another one would
    /// publish every row again under new ids.
    pub namespace: Uuid,
    /// `logs` up to here (and its open gaps) are acknowledged by Kafka.
    pub logs: LogCursor,
    /// The highest identity version published: later ones are higher, whatever the clock did.
    pub identity_version: u64,
}

impl Checkpoint {
    pub fn new(namespace: Uuid) -> Self {
        Self {
            format: FORMAT,
            namespace,
            logs: LogCursor::default(),
            identity_version: 0,
        }
    }
}

/// Where the checkpoint lives.
#[derive(Debug, Clone)]
pub struct CheckpointFile {
    path: PathBuf,
}

impl CheckpointFile {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored checkpoint for `namespace`, or a fresh one when there is none yet.
    pub async fn load(&self, namespace: Uuid) -> Result<Checkpoint, Error> {
        let path = self.path.clone();
        let text = tokio::task::spawn_blocking(move || match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        })
        .await?
        .map_err(|e| self.error(e.to_string()))?;
        let Some(text) = text else {
            return Ok(Checkpoint::new(namespace));
        };
        let checkpoint: Checkpoint =
            serde_json::from_str(&text).map_err(|e| self.error(format!("unreadable: {e}")))?;
        if checkpoint.format != FORMAT {
            return Err(self.error(format!("format {} is not {FORMAT}", checkpoint.format)));
        }
        if checkpoint.namespace != namespace {
            return Err(self.error(format!(
                "it was written for namespace {}, not {namespace}: resuming would publish every \
                 row again under new event ids (keep the namespace, or start a new checkpoint \
                 file on purpose)",
                checkpoint.namespace
            )));
        }
        Ok(checkpoint)
    }

    /// Replaces the stored checkpoint with `checkpoint`.
    pub async fn store(&self, checkpoint: &Checkpoint) -> Result<(), Error> {
        let path = self.path.clone();
        let bytes = serde_json::to_vec(checkpoint).expect("checkpoints serialize");
        tokio::task::spawn_blocking(move || write_atomically(&path, &bytes))
            .await?
            .map_err(|e| self.error(e.to_string()))
    }

    fn error(&self, message: String) -> Error {
        Error::Checkpoint {
            path: self.path.clone(),
            message,
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    let temporary = dir.join(name);
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)?;
    std::fs::File::open(&dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "logbus-bridge-checkpoint-{name}-{}",
            Uuid::new_v4().simple()
        ));
        dir.join("sub").join("checkpoint.json")
    }

    #[tokio::test]
    async fn a_stored_checkpoint_loads_back_and_a_missing_one_is_fresh() {
        let path = scratch("roundtrip");
        let file = CheckpointFile::new(&path);
        let namespace = Uuid::new_v4();
        assert_eq!(
            file.load(namespace).await.expect("fresh"),
            Checkpoint::new(namespace)
        );
        let mut checkpoint = Checkpoint::new(namespace);
        checkpoint.logs.advance(&[1, 2, 4], 10);
        checkpoint.identity_version = 99;
        file.store(&checkpoint).await.expect("stored");
        checkpoint.logs.advance(&[5], 11);
        file.store(&checkpoint).await.expect("replaced");
        assert_eq!(file.load(namespace).await.expect("loads"), checkpoint);
        let other = file
            .load(Uuid::new_v4())
            .await
            .expect_err("namespace differs");
        assert!(other.to_string().contains("namespace"), "{other}");
        std::fs::write(&path, "{").expect("write");
        assert!(file.load(namespace).await.is_err());
        let _ = std::fs::remove_dir_all(path.parent().and_then(Path::parent).expect("dir"));
    }
}
