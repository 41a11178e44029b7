//! Running closures on worker lcores: [`remote_launch`], [`remote_launch_result`] and
//! [`wait_lcore`]. Panics are caught on the lcore and reported by `wait_lcore`; they never unwind
//! into C.

use super::eal::{eal_running, lcore_id, EAL_RUNNING, EAL_STATE};
use super::{errno, lock, DpdkError};
use dpdk_sys as sys;
use std::collections::BTreeMap;
use std::ffi::{c_int, c_uint, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Mutex;

/// An EAL lcore id.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreId(pub u32);

/// Results of closures launched with [`remote_launch`] that failed: lcore -> message.
static LCORE_FAILURES: Mutex<BTreeMap<u32, String>> = Mutex::new(BTreeMap::new());

type Job = Box<dyn FnOnce() -> Result<(), String> + Send + 'static>;

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = p.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_string()
    }
}

/// Entry point of every launched closure on its lcore.
///
/// # Safety
/// `arg` must come from `Box::into_raw(Box<Job>)` and be passed here exactly once.
unsafe extern "C" fn lcore_trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: guaranteed by the caller contract above (remote_launch_result).
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    let outcome = catch_unwind(AssertUnwindSafe(job));
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(msg)) => Some(msg),
        Err(payload) => {
            let msg = panic_message(&*payload);
            // Dropping a panic payload can itself panic; never let that reach C.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            Some(msg)
        }
    };
    match failure {
        None => 0,
        Some(msg) => {
            let l = lcore_id();
            let _ = catch_unwind(AssertUnwindSafe(|| {
                lock(&LCORE_FAILURES).insert(l, msg);
            }));
            -1
        }
    }
}

/// Launches `f` on worker lcore `l` (not the main lcore). A panic inside `f` is caught and
/// reported by [`wait_lcore`]; it never unwinds into C.
pub fn remote_launch<F: FnOnce() + Send + 'static>(l: LcoreId, f: F) -> Result<(), DpdkError> {
    remote_launch_result(l, move || {
        f();
        Ok(())
    })
}

/// Like [`remote_launch`], for a closure that can fail: its `Err` is reported by [`wait_lcore`].
pub fn remote_launch_result<F>(l: LcoreId, f: F) -> Result<(), DpdkError>
where
    F: FnOnce() -> Result<(), String> + Send + 'static,
{
    const OP: &str = "eal_remote_launch";
    eal_running(OP)?;
    // SAFETY: the EAL is initialised.
    let main = unsafe { sys::rte_get_main_lcore() };
    // SAFETY: as above; rte_lcore_is_enabled checks the range itself.
    if l.0 == main || l.0 >= sys::RTE_MAX_LCORE || unsafe { sys::rte_lcore_is_enabled(l.0) } == 0 {
        return Err(DpdkError::new(
            OP,
            errno::EINVAL,
            format!("lcore {} is not an enabled worker lcore", l.0),
        ));
    }
    lock(&LCORE_FAILURES).remove(&l.0);
    let job: Box<Job> = Box::new(Box::new(f));
    let arg = Box::into_raw(job).cast::<c_void>();
    // SAFETY: the trampoline matches lcore_function_t and never unwinds; `arg` is a Box<Job>
    // pointer handed over to exactly one trampoline call if the launch succeeds.
    let ret = unsafe { sys::rte_eal_remote_launch(Some(lcore_trampoline), arg, l.0 as c_uint) };
    if ret < 0 {
        // SAFETY: the launch failed, so the trampoline will never run: reclaim the job.
        drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
        return Err(DpdkError::from_errno(OP, ret));
    }
    Ok(())
}

/// Waits for the closure launched on `l`. `Err` if it panicked or returned an error.
pub fn wait_lcore(l: LcoreId) -> Result<(), String> {
    if EAL_STATE.load(Ordering::Acquire) != EAL_RUNNING || l.0 >= sys::RTE_MAX_LCORE {
        return Err(format!(
            "lcore {}: EAL not running or lcore out of range",
            l.0
        ));
    }
    // SAFETY: the EAL is initialised and l is in range.
    let ret = unsafe { sys::rte_eal_wait_lcore(l.0) };
    if let Some(msg) = lock(&LCORE_FAILURES).remove(&l.0) {
        return Err(format!("lcore {}: {msg}", l.0));
    }
    if ret != 0 {
        return Err(format!("lcore {}: returned {ret}", l.0));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages() {
        let p = catch_unwind(|| panic!("boom {}", 7)).unwrap_err();
        assert_eq!(panic_message(&*p), "panicked: boom 7");
        let p = catch_unwind(|| panic!("static")).unwrap_err();
        assert_eq!(panic_message(&*p), "panicked: static");
    }
}
