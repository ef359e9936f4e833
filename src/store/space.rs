//! How much room is left for the embedded stores: the bytes an unprivileged writer may still
//! use on the filesystem holding the data directory. The audit trail grows with every request
//! (a record each, refused requests included), and a store that cannot write makes durable
//! routes answer 503, so operations watch this before it reaches zero.

use std::path::Path;

/// Bytes available to this process on the filesystem holding `dir` (`statvfs`'s `f_bavail`
/// blocks: what is left after the blocks reserved for root).
pub fn available_bytes(dir: &Path) -> std::io::Result<u64> {
    let stats = rustix::fs::statvfs(dir)?;
    Ok(stats.f_bavail.saturating_mul(stats.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_directory_has_room_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let available = available_bytes(dir.path()).unwrap();
        let total = {
            let stats = rustix::fs::statvfs(dir.path()).unwrap();
            stats.f_blocks * stats.f_frsize
        };
        assert!(
            available > 0 && available <= total,
            "{available} of {total}"
        );
        let missing = available_bytes(&dir.path().join("not-there")).unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }
}
