//! `wardgate backup`: a consistent copy of every store of the data directory, taken while the
//! gateway runs, with the manifest printed and the backup marker touched.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;

pub fn run(path: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    let loaded = config_or_exit!(path);
    let config = &loaded.config;
    if config.shared_store.is_some() {
        anyhow::bail!(
            "the stores are in the shared PostgreSQL database (shared_store): back it up with the \
             database's own tools (pg_dump of the `wardgate` schema, or point-in-time recovery); \
             docs/operations.md, \"Backups with a shared store\""
        );
    }
    let manifest = wardgate::store::backup::backup(&config.data_dir, out)?;
    for file in &manifest.files {
        println!(
            "{:<14} {:>12} bytes  sha256 {}",
            file.file, file.bytes, file.sha256
        );
    }
    if let Some(marker) = &config.recovery.backup_marker {
        std::fs::write(marker, format!("{}\n", manifest.taken_at))
            .with_context(|| format!("cannot touch the backup marker {}", marker.display()))?;
    }
    println!(
        "backup of {} written to {}",
        config.data_dir.display(),
        out.display()
    );
    println!("Back up the key ring and the erasure ledger too, each apart from this copy (docs/operations.md).");
    Ok(ExitCode::SUCCESS)
}
