//! Durable file writes: settlement files and netting reports are records operators hand to
//! auditors, so a crash leaves either the old file or the whole new one, never a torn one.

use std::io::Write;
use std::path::Path;

/// Writes `text` to `path` through `NAME.tmp`: write, `sync_all`, rename, then fsync the
/// directory so the rename itself survives a crash. Creates the directory.
pub fn write_durably(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut temp_name = path.file_name().unwrap_or_default().to_os_string();
    temp_name.push(".tmp");
    let temp = dir.join(temp_name);
    let mut file = std::fs::File::create(&temp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, path)?;
    std::fs::File::open(dir)?.sync_all()
}
