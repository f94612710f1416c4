//! The sync state file: the log position the target has acknowledged, with
//! what it was acknowledged by (the target, the key pattern), written
//! atomically (a temporary file fsynced, renamed over, the folder fsynced)
//! so a restart resumes from it.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::SyncError;
use crate::feed::LogPosition;

/// Longest state file read (it holds a few short lines).
const MAX_STATE: u64 = 1 << 20;

/// What the state file holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    /// The format of this file.
    pub version: u32,
    /// The directory synced.
    pub dir: String,
    /// The target, without its password.
    pub target: String,
    /// The key pattern (`*` when all keys).
    pub pattern: String,
    /// The last log position the target acknowledged, as `segment:offset`.
    pub position: String,
}

fn state_err(path: &Path, why: impl std::fmt::Display) -> SyncError {
    SyncError::State {
        path: path.display().to_string(),
        why: why.to_string(),
    }
}

impl State {
    /// The position saved, parsed.
    pub(crate) fn position(&self, path: &Path) -> Result<LogPosition, SyncError> {
        self.position.parse().map_err(|e| state_err(path, e))
    }

    /// Reads the state file at `path`: `None` when there is none.
    pub(crate) fn read(path: &Path) -> Result<Option<State>, SyncError> {
        let f = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(state_err(path, e)),
        };
        let len = f.metadata().map_err(|e| state_err(path, e))?.len();
        if len > MAX_STATE {
            return Err(state_err(
                path,
                format!("{len} bytes is not a sync state file"),
            ));
        }
        let bytes = fs::read(path).map_err(|e| state_err(path, e))?;
        let s: State = serde_json::from_slice(&bytes)
            .map_err(|e| state_err(path, format!("not a sync state file: {e}")))?;
        if s.version != 1 {
            return Err(state_err(
                path,
                format!("state file version {} is not known here", s.version),
            ));
        }
        s.position(path)?;
        Ok(Some(s))
    }

    /// Writes `self` to `path` atomically and durably.
    pub(crate) fn write(&self, path: &Path) -> Result<(), SyncError> {
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "sync.state".into());
        let tmp = folder.join(format!(".{name}.{}.tmp", std::process::id()));
        let mut text = serde_json::to_vec_pretty(self).map_err(|e| state_err(path, e))?;
        text.push(b'\n');
        let written = (|| {
            let mut f = File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(state_err(path, e));
        }
        File::open(&folder)
            .and_then(|d| d.sync_all())
            .map_err(|e| state_err(&folder, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_and_garbage_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("sync.state");
        assert_eq!(State::read(&p).unwrap(), None);
        let s = State {
            version: 1,
            dir: "data".into(),
            target: "redis://127.0.0.1:6379".into(),
            pattern: "*".into(),
            position: LogPosition::new(3, 4096).to_string(),
        };
        s.write(&p).unwrap();
        let back = State::read(&p).unwrap().unwrap();
        assert_eq!(back, s);
        assert_eq!(back.position(&p).unwrap(), LogPosition::new(3, 4096));
        fs::write(&p, b"{\"version\": 1").unwrap();
        let e = State::read(&p).unwrap_err().to_string();
        assert!(e.contains("not a sync state file"), "{e}");
        fs::write(
            &p,
            b"{\"version\":1,\"dir\":\"d\",\"target\":\"t\",\"pattern\":\"*\",\"position\":\"x\"}",
        )
        .unwrap();
        assert!(State::read(&p).is_err());
    }
}
