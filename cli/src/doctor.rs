//! `shmio doctor`: what this machine allows, and what each limit means for shmio.

use std::path::Path;

use serde_json::{Value, json};

use crate::error::CliError;
use crate::objects::{default_dir, human};

/// One finding: what was checked, what was found, what it means.
struct Check {
    key: &'static str,
    value: Value,
    text: String,
    meaning: String,
}

fn statvfs(dir: &Path) -> Check {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap_or_default();
    // SAFETY: all-zero is a valid `statvfs` (integers only).
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a live, writable `statvfs`.
    let r = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    let key = "shm_dir";
    if r != 0 {
        let e = std::io::Error::last_os_error();
        return Check {
            key,
            value: json!({ "path": dir, "error": e.to_string() }),
            text: format!("{}: {e}", dir.display()),
            meaning: "queues and regions named without a path cannot be created here".into(),
        };
    }
    let frsize = st.f_frsize as u64;
    let (size, free) = (st.f_blocks as u64 * frsize, st.f_bavail as u64 * frsize);
    Check {
        key,
        value: json!({ "path": dir, "size_bytes": size, "free_bytes": free }),
        text: format!(
            "{}: {} total, {} free",
            dir.display(),
            human(size),
            human(free)
        ),
        meaning: "bare names live here; every queue and region reserves its whole file at \
                  creation, so a create larger than the free space fails with NoSpace (never a \
                  SIGBUS later)"
            .into(),
    }
}

fn kernel() -> Check {
    // SAFETY: all-zero is a valid `utsname` (byte arrays).
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is a live, writable `utsname`.
    let r = unsafe { libc::uname(&mut u) };
    let release = if r == 0 {
        // SAFETY: uname NUL-terminates `release`, which lives as long as `u`.
        unsafe { std::ffi::CStr::from_ptr(u.release.as_ptr()) }
            .to_string_lossy()
            .into_owned()
    } else {
        "unknown".into()
    };
    Check {
        key: "kernel",
        value: json!(release),
        text: format!("Linux {release}"),
        meaning: "membarrier's expedited global commands come with 4.16, futex_waitv with \
                  5.16, cachestat (Region::cache_stat) with 6.5, linking an unnamed file \
                  without CAP_DAC_READ_SEARCH with 6.10"
            .into(),
    }
}

/// `Ok(())` if the system call exists and is allowed, else its errno.
fn probe(nr: libc::c_long, args: [libc::c_long; 5]) -> Result<libc::c_long, i32> {
    // SAFETY: only called with calls whose arguments here are no pointers or null pointers
    // (futex_waitv with no waiters, membarrier's query), which read and write no memory.
    let r = unsafe { libc::syscall(nr, args[0], args[1], args[2], args[3], args[4]) };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        Ok(r)
    }
}

fn futex_waitv() -> Check {
    // No waiters: a kernel that has the call refuses the empty list with EINVAL.
    let r = probe(libc::SYS_futex_waitv, [0, 0, 0, 0, 0]);
    let (ok, why) = match r {
        Err(libc::EINVAL) | Ok(_) => (true, "available".to_string()),
        Err(libc::ENOSYS) => (
            false,
            "missing (kernel before 5.16, or a seccomp filter)".into(),
        ),
        Err(libc::EPERM) => (false, "refused by a seccomp filter".into()),
        Err(e) => (
            false,
            format!("refused: {}", std::io::Error::from_raw_os_error(e)),
        ),
    };
    Check {
        key: "futex_waitv",
        value: json!(ok),
        text: why,
        meaning: if ok {
            "a waiting back-pressure producer sleeps on every consumer's word at once".into()
        } else {
            "shmio falls back to one futex word in 10 ms slices: waits still work, a \
             back-pressure producer notices some consumer events up to 10 ms late"
                .into()
        },
    }
}

fn membarrier() -> Check {
    const QUERY: libc::c_long = 0;
    const GLOBAL_EXPEDITED: libc::c_long = 1 << 1;
    let r = probe(libc::SYS_membarrier, [QUERY, 0, 0, 0, 0]);
    let ok = r.is_ok_and(|m| m & GLOBAL_EXPEDITED != 0);
    Check {
        key: "membarrier",
        value: json!(ok),
        text: if ok {
            "MEMBARRIER_CMD_GLOBAL_EXPEDITED available".into()
        } else {
            format!("unavailable ({r:?})")
        },
        meaning: if ok {
            "producers publish with a compiler fence only; a consumer about to sleep pays the \
             barrier"
                .into()
        } else {
            "producers fall back to a full fence per record (slower sends, same guarantees)".into()
        },
    }
}

fn status_field(field: &str) -> Option<String> {
    std::fs::read_to_string("/proc/self/status")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(|v| v.trim().to_owned())
}

fn seccomp() -> Check {
    let v = status_field("Seccomp");
    let (text, meaning) = match v.as_deref() {
        Some("0") => ("off", "no system call filter"),
        Some("1") => ("strict", "strict mode: shmio cannot work"),
        Some("2") => (
            "filter",
            "a filter is on (a container's profile?): see futex_waitv and membarrier above",
        ),
        _ => ("unknown", "/proc/self/status has no Seccomp field"),
    };
    Check {
        key: "seccomp",
        value: json!(text),
        text: text.into(),
        meaning: meaning.into(),
    }
}

fn rlimit(key: &'static str, which: libc::__rlimit_resource_t, meaning: &str) -> Check {
    // SAFETY: all-zero is a valid `rlimit`.
    let mut r: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `r` is a live, writable `rlimit`.
    let ok = unsafe { libc::getrlimit(which, &mut r) } == 0;
    let show = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    let num = |v: libc::rlim_t| (v != libc::RLIM_INFINITY).then_some(v);
    Check {
        key,
        value: if ok {
            json!({ "soft": num(r.rlim_cur), "hard": num(r.rlim_max) })
        } else {
            Value::Null
        },
        text: if ok {
            format!("soft {}, hard {}", show(r.rlim_cur), show(r.rlim_max))
        } else {
            "unknown".into()
        },
        meaning: meaning.into(),
    }
}

fn pid_namespace() -> Check {
    let ns = |p: &str| std::fs::read_link(p).ok();
    let own = ns("/proc/self/ns/pid");
    let init = ns("/proc/1/ns/pid");
    let nspid = status_field("NSpid");
    let nested = nspid
        .as_deref()
        .is_some_and(|v| v.split_whitespace().count() > 1);
    let text = match (&own, nested) {
        (Some(o), true) => format!(
            "{} (nested: NSpid {})",
            o.display(),
            nspid.unwrap_or_default()
        ),
        (Some(o), false) if own == init => format!("{} (the same as pid 1's)", o.display()),
        (Some(o), false) => match &init {
            Some(i) => format!("{} (pid 1's is {})", o.display(), i.display()),
            None => format!("{} (pid 1's is unreadable)", o.display()),
        },
        (None, _) => "unknown (/proc not mounted?)".into(),
    };
    Check {
        key: "pid_namespace",
        value: json!({ "ns": own.map(|p| p.display().to_string()), "nested": nested }),
        text,
        meaning: "a pid that ls and stat show was recorded by that process, in its own PID \
                  namespace; liveness never depends on pids (robust futexes and file locks), so \
                  processes in other PID namespaces share queues safely, but their pids are \
                  not this namespace's"
            .into(),
    }
}

fn checks() -> Vec<Check> {
    vec![
        statvfs(&default_dir()),
        kernel(),
        futex_waitv(),
        membarrier(),
        seccomp(),
        rlimit(
            "rlimit_sigpending",
            libc::RLIMIT_SIGPENDING,
            "queued RT signals per user: an RT-signal poller (shmio::poll) whose queue fills \
             falls back to SIGIO and a rescan",
        ),
        rlimit(
            "rlimit_memlock",
            libc::RLIMIT_MEMLOCK,
            "bytes this process may lock in RAM: a region opened with lock_in_ram (mlock) \
             larger than this fails",
        ),
        pid_namespace(),
    ]
}

pub fn run(json: bool) -> Result<(), CliError> {
    let all = checks();
    if json {
        let m: serde_json::Map<String, Value> = all
            .into_iter()
            .map(|c| {
                (
                    c.key.to_owned(),
                    json!({ "value": c.value, "text": c.text, "meaning": c.meaning }),
                )
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&m).expect("JSON"));
        return Ok(());
    }
    let w = all.iter().map(|c| c.key.len()).max().unwrap_or(0);
    for c in all {
        println!("{:<w$}  {}\n{:<w$}  -> {}", c.key, c.text, "", c.meaning);
    }
    Ok(())
}
