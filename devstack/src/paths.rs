//! Where the repository and the installed dev stack are, resolved as `devstack/common.sh`
//! resolves them.

use std::path::{Path, PathBuf};

/// The repository root (this crate lives in `devstack/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("devstack/ lives in the repository")
        .to_path_buf()
}

/// `LOGBUS_DEVSTACK_DIR` (relative to the repository unless absolute) or `.devstack`.
pub fn devstack_dir() -> PathBuf {
    match std::env::var_os("LOGBUS_DEVSTACK_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => repo_root().join(dir),
        None => repo_root().join(".devstack"),
    }
}

/// The dev stack's Python (the venv that `make install` creates), checked to exist.
pub fn python() -> crate::Result<PathBuf> {
    installed(devstack_dir().join("venv/bin/python"))
}

/// `path` if it exists, else the error that says to run `make install`.
pub fn installed(path: PathBuf) -> crate::Result<PathBuf> {
    if path.exists() {
        Ok(path)
    } else {
        Err(crate::Error::NotInstalled(path))
    }
}
