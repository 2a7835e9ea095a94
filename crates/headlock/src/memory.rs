//! The server's allocator setting: glibc's malloc arenas, bounded.
//!
//! glibc gives a thread that finds the arenas in use a new one, up to 8 per core, and
//! memory freed into one arena is not reused by another. A server whose blocking
//! threads come and go grows its resident set from one large operation to the next: on
//! a 2-core machine, a backup, a re-backup and a restore of a million files peaked at
//! 303.8 MiB with glibc's default and at 240.3 MiB with 2 arenas, at the same speed
//! (docs/benchmarks.md).
//!
//! glibc reads `MALLOC_ARENA_MAX` once, when the process starts, and the other way to
//! set it, `mallopt`, needs `unsafe`, which this workspace forbids. So `serve`
//! re-executes itself once, before it does anything, with the variable set; a value
//! the operator set is left alone. The kernel names a process after the file it
//! executes, here `/proc/self/exe`, so the re-executed server would be `exe` to
//! `pgrep headlock`, `pidof`, `top` and `ss -p`; it takes its own file's name back.

/// The variable glibc reads.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const VAR: &str = "MALLOC_ARENA_MAX";

/// Re-executes this process with `MALLOC_ARENA_MAX` set to half the cores (at least 2),
/// unless it is set already. Returns only if there was nothing to do or the exec failed
/// (then glibc's default stays: only less frugal). Elsewhere than glibc on Linux, does
/// nothing.
pub fn bound_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        if std::env::var_os(VAR).is_some() {
            restore_name();
            return;
        }
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| "headlock".into());
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let arenas = (cores / 2).max(2);
        // Same process id, arguments, descriptors and environment, plus the variable.
        // /proc/self/exe is the file this process runs, even if its path was since
        // replaced (an upgrade in place) or removed.
        let _failed = std::process::Command::new("/proc/self/exe")
            .arg0(arg0)
            .args(args)
            .env(VAR, arenas.to_string())
            .exec();
    }
}

/// After the re-execution, names the process after its executable again (the kernel
/// named it `exe`): the first 15 bytes of the file's name, as the kernel would have.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn restore_name() {
    let named_exe = std::fs::read_to_string("/proc/self/comm").is_ok_and(|c| c.trim_end() == "exe");
    if !named_exe {
        return;
    }
    let Some(name) = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.as_encoded_bytes().to_vec()))
    else {
        return;
    };
    let name: Vec<u8> = name.into_iter().take(15).collect();
    if let Ok(name) = std::ffi::CString::new(name) {
        // A name is cosmetic: a failure changes nothing else.
        let _ = nix::sys::prctl::set_name(&name);
    }
}
