//! LVS schedulers. (placeholder until the dataplane lands)
use crate::model::{ModelError, SchedulerKind};

/// Whether the dataplane implements `k`.
pub fn supported(k: SchedulerKind) -> bool {
    matches!(k, SchedulerKind::Rr | SchedulerKind::Wrr)
}

/// Validate scheduler flags (`-b`) for `k`.
pub fn check_flags(_k: SchedulerKind, flags: &[String]) -> Result<(), ModelError> {
    if let Some(f) = flags.first() {
        return Err(ModelError::Unsupported(format!(
            "scheduler flag '{f}' is not supported yet"
        )));
    }
    Ok(())
}
