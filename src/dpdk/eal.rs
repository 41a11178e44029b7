//! The Environment Abstraction Layer: [`Eal`] (init, lcores, ports by name, cleanup), the
//! process-wide EAL state the other submodules check, and the time and lcore-id helpers.

use super::lcore::LcoreId;
use super::{errno, DpdkError, PortId};
use dpdk_sys as sys;
use std::ffi::{c_char, c_int, CString};
use std::marker::PhantomData;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

/// `rte_lcore_id()` of a thread that is not an EAL lcore.
pub const LCORE_ID_ANY: u32 = u32::MAX;

const EAL_NONE: u8 = 0;
const EAL_INITIALISING: u8 = 1;
pub(super) const EAL_RUNNING: u8 = 2;
const EAL_DONE: u8 = 3;

pub(super) static EAL_STATE: AtomicU8 = AtomicU8::new(EAL_NONE);
/// Mempools and ports alive; `Eal::drop` skips `rte_eal_cleanup` while this is non-zero.
pub(super) static LIVE_OBJECTS: AtomicUsize = AtomicUsize::new(0);

/// `Ok` if the EAL is initialised and not cleaned up, else an `ENODEV` error for `op`.
pub(super) fn eal_running(op: &'static str) -> Result<(), DpdkError> {
    if EAL_STATE.load(Ordering::Acquire) == EAL_RUNNING {
        Ok(())
    } else {
        Err(DpdkError::new(
            op,
            errno::ENODEV,
            "the EAL is not initialised",
        ))
    }
}

/// The initialised Environment Abstraction Layer. Exactly one per process; `Drop` waits for all
/// worker lcores and then calls `rte_eal_cleanup` (see the module notes).
#[derive(Debug)]
pub struct Eal {
    _not_send: PhantomData<*const ()>,
}

impl Eal {
    /// `rte_eal_init` with `args` (`args[0]` is the program name, the rest EAL arguments such as
    /// `-l 0-3 --vdev net_ring0`). Only once per process: a second call fails with `EALREADY`.
    pub fn init(args: &[String]) -> Result<Eal, DpdkError> {
        const OP: &str = "eal_init";
        if EAL_STATE
            .compare_exchange(
                EAL_NONE,
                EAL_INITIALISING,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_err()
        {
            return Err(DpdkError::new(
                OP,
                errno::EALREADY,
                "the EAL can be initialised only once per process",
            ));
        }
        let cargs: Result<Vec<CString>, _> =
            args.iter().map(|a| CString::new(a.as_str())).collect();
        let Ok(cargs) = cargs else {
            EAL_STATE.store(EAL_NONE, Ordering::Release);
            return Err(DpdkError::new(
                OP,
                errno::EINVAL,
                "an EAL argument contains a NUL byte",
            ));
        };
        let Ok(argc) = c_int::try_from(cargs.len()) else {
            EAL_STATE.store(EAL_NONE, Ordering::Release);
            return Err(DpdkError::new(OP, errno::EINVAL, "too many EAL arguments"));
        };
        // DPDK may keep pointers into argv and permutes it: both live for the whole process
        // (this happens once per process, so the leak is bounded).
        let cargs: &'static mut [CString] = Box::leak(cargs.into_boxed_slice());
        let mut argv: Vec<*mut c_char> = cargs.iter_mut().map(|c| c.as_ptr().cast_mut()).collect();
        argv.push(ptr::null_mut());
        let argv: &'static mut [*mut c_char] = Box::leak(argv.into_boxed_slice());
        // SAFETY: argc counts the non-NULL entries of argv, which is NULL-terminated; every entry
        // points to a NUL-terminated string; both outlive the process. The compare_exchange above
        // makes this the only call in the process.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            let e = init_error(args, rte_errno_now());
            EAL_STATE.store(EAL_NONE, Ordering::Release);
            return Err(e);
        }
        EAL_STATE.store(EAL_RUNNING, Ordering::Release);
        Ok(Eal {
            _not_send: PhantomData,
        })
    }

    /// The main lcore (the thread that called `init`).
    pub fn main_lcore(&self) -> LcoreId {
        // SAFETY: the EAL is initialised (we hold an Eal).
        LcoreId(unsafe { sys::rte_get_main_lcore() })
    }

    /// Every enabled lcore, the main one included, in increasing order.
    pub fn lcores(&self) -> Vec<LcoreId> {
        (0..sys::RTE_MAX_LCORE)
            // SAFETY: the EAL is initialised and the id is below RTE_MAX_LCORE.
            .filter(|&l| unsafe { sys::rte_lcore_is_enabled(l) } != 0)
            .map(LcoreId)
            .collect()
    }

    /// The enabled lcores other than the main one (where
    /// [`remote_launch`](super::remote_launch) can run closures).
    pub fn workers(&self) -> Vec<LcoreId> {
        let main = self.main_lcore();
        self.lcores().into_iter().filter(|&l| l != main).collect()
    }

    /// Number of available ethdev ports.
    pub fn port_count(&self) -> u16 {
        // SAFETY: the EAL is initialised.
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    /// The port of a device by name (`net_ring0`, `0000:01:00.0`, ...).
    pub fn port_by_name(&self, name: &str) -> Option<PortId> {
        let cname = CString::new(name).ok()?;
        let mut id = 0u16;
        // SAFETY: cname is NUL-terminated and id a valid out pointer, both live for the call.
        let ret = unsafe { sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        (ret == 0).then_some(PortId(id))
    }

    /// Hot-plug a device after init (`rte_dev_probe`) from its devargs, e.g.
    /// `net_tap_rvs,iface=rvs0`, and return its ethdev port (found by the devargs' name, the
    /// part before the first comma). The ports that existed before keep their ids.
    pub fn probe(&self, devargs: &str) -> Result<PortId, DpdkError> {
        const OP: &str = "dev_probe";
        eal_running(OP)?;
        let name = devargs.split(',').next().unwrap_or_default();
        let Ok(c) = CString::new(devargs) else {
            return Err(DpdkError::new(
                OP,
                errno::EINVAL,
                "the device arguments contain a NUL byte",
            ));
        };
        if name.is_empty() {
            return Err(DpdkError::new(OP, errno::EINVAL, "no device name"));
        }
        // SAFETY: c is a NUL-terminated string alive for the call; DPDK copies what it keeps.
        let ret = unsafe { sys::rte_dev_probe(c.as_ptr()) };
        if ret < 0 {
            let e = DpdkError::from_errno(OP, ret);
            return Err(DpdkError::new(OP, e.errno, format!("{devargs}: {}", e.msg)));
        }
        self.port_by_name(name).ok_or_else(|| {
            DpdkError::new(
                OP,
                errno::ENODEV,
                format!("{devargs}: probed, but no ethdev port is named {name}"),
            )
        })
    }

    /// NUMA socket of the calling lcore.
    pub fn socket_id(&self) -> i32 {
        // SAFETY: no preconditions beyond an initialised EAL.
        unsafe { sys::rte_socket_id() as i32 }
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        // SAFETY: the EAL is initialised; waiting for lcores has no other precondition.
        unsafe { sys::rte_eal_mp_wait_lcore() };
        let live = LIVE_OBJECTS.load(Ordering::Acquire);
        if live == 0 {
            // SAFETY: no mempool or port wrapper is left, every lcore is idle, and the state
            // change below makes every later wrapper call fail before reaching DPDK.
            let ret = unsafe { sys::rte_eal_cleanup() };
            if ret < 0 {
                tracing::warn!(error = %DpdkError::from_errno("eal_cleanup", ret), "EAL cleanup failed");
            }
        } else {
            tracing::warn!(live, "mempools/ports still alive: skipping rte_eal_cleanup");
        }
        EAL_STATE.store(EAL_DONE, Ordering::Release);
    }
}

// ---------------------------------------------------------------------------------------------
// Why rte_eal_init failed

fn rte_errno_now() -> i32 {
    super::rte_errno()
}

/// The error for a failed `rte_eal_init` with `args` and rte_errno `errno`. DPDK fails without
/// setting rte_errno when another primary process holds the file-prefix's runtime config (it
/// only logs "Cannot create lock"), so that case is recognised here and named, with the
/// holder's pid; an rte_errno of 0 is never reported as "Success".
fn init_error(args: &[String], errno: i32) -> DpdkError {
    const OP: &str = "eal_init";
    if let Some(shared) = SharedConfig::of(args, &runtime_base()) {
        if let Some(pid) = lock_holder(&shared.config) {
            return DpdkError::new(OP, errno::EBUSY, shared.held_message(pid));
        }
    }
    if errno == 0 {
        return DpdkError::new(
            OP,
            0,
            "rte_eal_init failed without giving a reason (rte_errno is 0); the EAL's own \
             messages above say what went wrong",
        );
    }
    DpdkError::from_errno(OP, errno)
}

/// Where DPDK keeps its runtime directories: `/var/run/dpdk` for root, else
/// `$XDG_RUNTIME_DIR/dpdk` or `/tmp/dpdk` (as `eal_create_runtime_dir` chooses).
fn runtime_base() -> PathBuf {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let dir = if uid == 0 {
        PathBuf::from("/var/run")
    } else {
        std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp"))
    };
    dir.join("dpdk")
}

/// The runtime config file a primary process with these EAL arguments locks.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SharedConfig {
    prefix: String,
    config: PathBuf,
}

impl SharedConfig {
    /// DPDK's default `--file-prefix`.
    const DEFAULT_PREFIX: &'static str = "rte";

    /// The config file for `args` (program name first) under `base`, or `None` when these
    /// arguments take no lock: `--in-memory`, `--no-shconf`, or a secondary process.
    fn of(args: &[String], base: &Path) -> Option<SharedConfig> {
        let mut prefix = Self::DEFAULT_PREFIX.to_string();
        let mut it = args.iter().skip(1);
        while let Some(a) = it.next() {
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) if n.starts_with("--") => (n, Some(v.to_string())),
                _ => (a.as_str(), None),
            };
            match name {
                "--" => break,
                "--in-memory" | "--no-shconf" => return None,
                "--file-prefix" | "--proc-type" => {
                    let value = match inline {
                        Some(v) => v,
                        None => it.next()?.clone(),
                    };
                    if name == "--file-prefix" {
                        prefix = value;
                    } else if value != "primary" {
                        return None;
                    }
                }
                _ => {}
            }
        }
        let config = base.join(&prefix).join("config");
        Some(SharedConfig { prefix, config })
    }

    fn held_message(&self, pid: i32) -> String {
        let who = if pid > 0 {
            format!("another DPDK primary process (pid {pid})")
        } else {
            "another DPDK primary process (in another PID namespace)".to_string()
        };
        format!(
            "{who} already holds file-prefix '{}' ({}): is rvs already running? Use a \
             different --file-prefix to run two",
            self.prefix,
            self.config.display()
        )
    }
}

/// The pid of the process holding a write lock (fcntl, as DPDK's primary takes it) on `path`,
/// `Some(0)` if the holder is in another PID namespace, `None` if nobody holds it (or the file
/// cannot be opened).
fn lock_holder(path: &Path) -> Option<i32> {
    let f = std::fs::File::open(path).ok()?;
    let mut fl = libc::flock {
        l_type: libc::F_WRLCK as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: 0,
        l_len: 0,
        l_pid: 0,
    };
    // SAFETY: the fd is open for the whole call and fl is a valid, writable flock; F_GETLK
    // only fills fl in.
    let ret = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETLK, &mut fl) };
    (ret == 0 && fl.l_type != libc::F_UNLCK as libc::c_short).then_some(fl.l_pid)
}

// ---------------------------------------------------------------------------------------------
// Time and lcore id

/// TSC cycles (`rte_get_tsc_cycles`).
#[inline]
pub fn tsc() -> u64 {
    // SAFETY: reads the time stamp counter; no preconditions.
    unsafe { sys::rvs_get_tsc_cycles() }
}

/// TSC frequency in Hz (0 before the EAL is initialised).
pub fn tsc_hz() -> u64 {
    // SAFETY: reads a value the EAL computed at init; no preconditions.
    unsafe { sys::rte_get_tsc_hz() }
}

/// The calling thread's lcore id, or [`LCORE_ID_ANY`] on a non-EAL thread.
#[inline]
pub fn lcore_id() -> u32 {
    // SAFETY: reads a thread-local; no preconditions.
    unsafe { sys::rvs_lcore_id() }
}

/// A CPU pause hint for spin loops (`rte_pause`).
#[inline]
pub fn pause() {
    // SAFETY: a pause instruction; no preconditions.
    unsafe { sys::rvs_pause() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        std::iter::once("rvs")
            .chain(a.iter().copied())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn shared_config_follows_the_file_prefix() {
        let base = Path::new("/var/run/dpdk");
        let of = |a: &[&str]| SharedConfig::of(&args(a), base).map(|c| c.config);
        let at = |p: &str| Some(PathBuf::from(p));
        assert_eq!(of(&["-l", "0"]), at("/var/run/dpdk/rte/config"));
        assert_eq!(
            of(&["-l", "0", "--file-prefix", "rvs"]),
            at("/var/run/dpdk/rvs/config")
        );
        assert_eq!(of(&["--file-prefix=lab2"]), at("/var/run/dpdk/lab2/config"));
        assert_eq!(
            of(&["--file-prefix", "a", "--file-prefix", "b"]),
            at("/var/run/dpdk/b/config"),
            "the last one wins, as with getopt"
        );
        assert_eq!(
            of(&["--proc-type", "primary", "--file-prefix", "x"]),
            at("/var/run/dpdk/x/config")
        );
        // No lock taken: nothing to report.
        assert_eq!(of(&["--in-memory", "--file-prefix", "x"]), None);
        assert_eq!(of(&["--no-shconf"]), None);
        assert_eq!(of(&["--proc-type=secondary"]), None);
        assert_eq!(of(&["--proc-type", "auto"]), None);
        // A dangling option has no value to read.
        assert_eq!(of(&["--file-prefix"]), None);
        // Application arguments after "--" are not the EAL's.
        assert_eq!(
            of(&["-l", "0", "--", "--file-prefix", "app"]),
            at("/var/run/dpdk/rte/config")
        );
    }

    #[test]
    fn a_held_lock_names_its_holder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config");
        std::fs::write(&path, [0u8; 64]).expect("write");
        assert_eq!(lock_holder(&path), None, "nobody holds it");
        assert_eq!(lock_holder(&dir.path().join("missing")), None);
        // A child process takes the lock the way DPDK's primary does (fcntl F_SETLK, write);
        // our own locks would be invisible to F_GETLK.
        let script = format!(
            "import fcntl, os, sys, time\n\
             f = os.open({path:?}, os.O_RDWR)\n\
             fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 64, 0)\n\
             print('locked', flush=True)\n\
             sys.stdin.read()\n",
            path = path.display().to_string()
        );
        let mut child = match std::process::Command::new("python3")
            .args(["-c", &script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => {
                eprintln!("a_held_lock_names_its_holder: skipped, no python3: {e}");
                return;
            }
        };
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        std::io::BufRead::read_line(&mut out, &mut line).expect("read");
        assert_eq!(line.trim(), "locked");
        let holder = lock_holder(&path);
        drop(child.stdin.take()); // EOF: the child exits and its lock goes with it
        let _ = child.wait();
        assert_eq!(holder, Some(child.id() as i32));
        assert_eq!(lock_holder(&path), None, "released when the holder exits");

        let cfg = SharedConfig {
            prefix: "rvs".into(),
            config: path.clone(),
        };
        let msg = cfg.held_message(4242);
        assert!(
            msg.starts_with(
                "another DPDK primary process (pid 4242) already holds file-prefix 'rvs' ("
            ),
            "{msg}"
        );
        assert!(msg.ends_with("is rvs already running? Use a different --file-prefix to run two"));
    }

    #[test]
    fn an_unexplained_failure_is_not_called_success() {
        let e = init_error(&args(&["--in-memory"]), 0);
        assert_eq!(e.errno, 0);
        assert!(!e.to_string().contains("Success"), "{e}");
        assert!(!e.to_string().contains("errno 0"), "{e}");
        assert!(e.to_string().contains("the EAL's own messages"), "{e}");
        let e = init_error(&args(&["--in-memory"]), errno::EINVAL);
        assert_eq!(e.to_string(), "eal_init: Invalid argument (errno 22)");
    }
}
