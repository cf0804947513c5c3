//! Channels between the processes: each system's producer and consumer ends, made from a
//! name (named objects) or an inherited descriptor (streams), their removal, the POSIX
//! message-queue limits, and the child processes that run the other ends.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::process::{Child, Command, Stdio};

use shmio::queue::{Consumer, Policy, Producer, QueueOptions, Start};

use crate::iox;
use crate::peers::{Fcntl, MqRx, MqTx, Rx, ShmioRx, ShmioTx, StreamRx, StreamTx, Tx};
use crate::ring::Ring;
use crate::systems::{Mode, Sys, capacity, depth};

pub fn chan_path(base: &str, k: usize) -> String {
    format!("/dev/shm/{base}-{k}")
}

/// Producer side of channel `k` of `sys`; for streams, also the descriptor the child inherits.
/// `alive` is how many channels of this system exist at once (message queues share a per-user
/// memory limit).
pub fn make_tx(
    sys: Sys,
    base: &str,
    k: usize,
    size: usize,
    mode: Mode,
    alive: usize,
) -> (Box<dyn Tx>, Option<OwnedFd>) {
    match sys {
        Sys::ShmioBp | Sys::ShmioBpZc | Sys::ShmioOw => {
            let policy = if sys == Sys::ShmioOw {
                Policy::Overwrite
            } else {
                Policy::BackPressure
            };
            let opts = QueueOptions::new()
                .slots(capacity(size) as u32)
                .slot_size(size as u32)
                .policy(policy);
            let p = Producer::create(&format!("{base}-{k}"), &opts).unwrap();
            (Box::new(ShmioTx::new(p, sys == Sys::ShmioBpZc, mode)), None)
        }
        Sys::Iceoryx2 => (
            Box::new(iox::tx(&iox::name(base, k), size, capacity(size), mode)),
            None,
        ),
        Sys::Pipe | Sys::Uds => {
            let mut fds = [0; 2];
            // SAFETY: `fds` has room for two descriptors.
            let r = unsafe {
                if sys == Sys::Pipe {
                    libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC)
                } else {
                    libc::socketpair(
                        libc::AF_UNIX,
                        libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
                        0,
                        fds.as_mut_ptr(),
                    )
                }
            };
            assert_eq!(r, 0);
            // SAFETY: fresh descriptors owned by nobody else.
            let (rd, wr) = unsafe {
                (
                    OwnedFd::from_raw_fd(fds[0]),
                    std::fs::File::from_raw_fd(fds[1]),
                )
            };
            if sys == Sys::Pipe
                && let Some(d) = depth()
            {
                set_pipe_size(wr.as_raw_fd(), d * size);
            }
            (Box::new(StreamTx(wr)), Some(rd))
        }
        Sys::Mq => {
            let name = std::ffi::CString::new(format!("/{base}-{k}")).unwrap();
            // SAFETY: mq_attr is plain data; all-zero is a valid value to fill in.
            let mut attr: libc::mq_attr = unsafe { std::mem::zeroed() };
            attr.mq_maxmsg = mq_depth(size, alive);
            attr.mq_msgsize = size as _;
            created_mq(&name, true);
            let open = |attr: &libc::mq_attr| {
                // SAFETY: a valid name and attribute struct.
                unsafe { libc::mq_open(name.as_ptr(), libc::O_CREAT | libc::O_WRONLY, 0o600, attr) }
            };
            let mut q = open(&attr);
            // A `--depth` above fs.mqueue.msg_max is refused without CAP_SYS_RESOURCE.
            if q < 0 && attr.mq_maxmsg > msg_max() {
                attr.mq_maxmsg = msg_max();
                q = open(&attr);
            }
            assert!(q >= 0, "mq_open: {}", std::io::Error::last_os_error());
            (Box::new(MqTx(q)), None)
        }
        Sys::Fcntl => {
            let f = Fcntl::open(&chan_path(base, k), size, true);
            f.lock(0, libc::F_WRLCK);
            (Box::new(f), None)
        }
        Sys::Ring => (
            Box::new(Ring::open(&chan_path(base, k), size, capacity(size), true)),
            None,
        ),
    }
}

/// Consumer side of channel `k`.
pub fn make_rx(sys: Sys, base: &str, k: usize, size: usize, fd: RawFd, mode: Mode) -> Box<dyn Rx> {
    match sys {
        Sys::ShmioBp | Sys::ShmioBpZc | Sys::ShmioOw => Box::new(ShmioRx::new(
            Consumer::open(&format!("{base}-{k}"), Start::Oldest).unwrap(),
            sys == Sys::ShmioBpZc,
            mode,
        )),
        Sys::Iceoryx2 => Box::new(iox::rx(&iox::name(base, k), capacity(size), mode)),
        // SAFETY: the parent passed us this inherited descriptor, owned by nobody else here.
        Sys::Pipe | Sys::Uds => Box::new(StreamRx::new(
            unsafe { std::fs::File::from_raw_fd(fd) },
            mode,
        )),
        Sys::Mq => {
            let name = std::ffi::CString::new(format!("/{base}-{k}")).unwrap();
            let flags = if mode == Mode::Spin {
                libc::O_RDONLY | libc::O_NONBLOCK
            } else {
                libc::O_RDONLY
            };
            // SAFETY: a valid name.
            let q = unsafe { libc::mq_open(name.as_ptr(), flags) };
            assert!(q >= 0, "mq_open: {}", std::io::Error::last_os_error());
            Box::new(MqRx(q))
        }
        Sys::Fcntl => Box::new(Fcntl::open(&chan_path(base, k), size, false)),
        Sys::Ring => Box::new(Ring::open(&chan_path(base, k), size, capacity(size), false)),
    }
}

pub fn cleanup(sys: Sys, base: &str, k: usize) {
    match sys {
        Sys::ShmioBp | Sys::ShmioBpZc | Sys::ShmioOw => {
            let _ = shmio::queue::unlink(&format!("{base}-{k}"));
        }
        Sys::Mq => {
            let name = std::ffi::CString::new(format!("/{base}-{k}")).unwrap();
            // SAFETY: a valid name.
            unsafe { libc::mq_unlink(name.as_ptr()) };
            created_mq(&name, false);
        }
        Sys::Fcntl => {
            let _ = std::fs::remove_file(chan_path(base, k));
            let _ = std::fs::remove_file(format!("{}.lock", chan_path(base, k)));
        }
        Sys::Ring => {
            let _ = std::fs::remove_file(chan_path(base, k));
        }
        // iceoryx2 removes a service when its last port goes.
        Sys::Iceoryx2 | Sys::Pipe | Sys::Uds => {}
    }
}

/// Messages per POSIX queue: `--depth` or 10 (fs.mqueue.msg_max's default), fewer when `alive`
/// queues of `size`-byte messages would exceed RLIMIT_MSGQUEUE (800 KiB per user by default,
/// which we may not be allowed to raise): four queues of 64 KiB records get 2 messages each.
pub fn mq_depth(size: usize, alive: usize) -> libc::c_long {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: a valid, writable rlimit struct.
    let limit = if unsafe { libc::getrlimit(libc::RLIMIT_MSGQUEUE, &mut lim) } == 0 {
        lim.rlim_cur as usize
    } else {
        800 << 10
    };
    // Each message costs its size plus the kernel's bookkeeping (well under 1 KiB).
    let fit = limit / alive.max(1) / (size + 1024);
    fit.clamp(1, depth().unwrap_or(10)) as libc::c_long
}

/// fs.mqueue.msg_max: the most messages a queue may hold without CAP_SYS_RESOURCE.
fn msg_max() -> libc::c_long {
    std::fs::read_to_string("/proc/sys/fs/mqueue/msg_max")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(10)
}

/// `--depth` for a pipe: its buffer set to `bytes` (the kernel rounds up to a power of two of
/// pages), or to fs.pipe-max-size when more is refused (without CAP_SYS_RESOURCE).
fn set_pipe_size(fd: RawFd, bytes: usize) {
    let max: usize = std::fs::read_to_string("/proc/sys/fs/pipe-max-size")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1 << 20);
    for want in [bytes, bytes.min(max)] {
        // SAFETY: F_SETPIPE_SZ on a pipe we hold; no memory is passed.
        if unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, want as libc::c_int) } >= 0 {
            return;
        }
    }
}

/// Message queues outlive their processes until unlinked (and count against the user's
/// RLIMIT_MSGQUEUE): the ones this process created are unlinked by a panic hook too.
pub static MQS: std::sync::Mutex<Vec<std::ffi::CString>> = std::sync::Mutex::new(Vec::new());

pub fn created_mq(name: &std::ffi::CStr, add: bool) {
    let mut v = MQS.lock().unwrap_or_else(|e| e.into_inner());
    v.retain(|n| n.as_c_str() != name);
    if add {
        v.push(name.to_owned());
    }
}

pub fn unlink_mqs_on_panic() {
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(v) = MQS.try_lock() {
            for n in v.iter() {
                // SAFETY: a valid NUL-terminated name.
                unsafe { libc::mq_unlink(n.as_ptr()) };
            }
        }
        prev(info);
    }));
}

/// A connected pair of Unix stream sockets: (ours, the child's).
pub fn socketpair() -> (std::fs::File, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for two descriptors.
    let r = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    assert_eq!(r, 0);
    // SAFETY: fresh descriptors owned by nobody else.
    unsafe {
        (
            std::fs::File::from_raw_fd(fds[0]),
            OwnedFd::from_raw_fd(fds[1]),
        )
    }
}

/// Runs this program again with `args` (a child role's flag and its arguments), its stdout
/// piped to us, handing it `inherit` (the descriptor's number is among `args`; our copy is
/// closed once the child has it), and waits until the child says it is ready ([`say_ready`]).
pub fn spawn_ready(args: &[&dyn std::fmt::Display], inherit: Option<OwnedFd>) -> Child {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(args.iter().map(ToString::to_string))
        .stdout(Stdio::piped())
        .stdin(Stdio::null());
    let raw = inherit.as_ref().map(|fd| fd.as_raw_fd());
    let cpu = crate::pin::next_child();
    if raw.is_some() || cpu.is_some() {
        use std::os::unix::process::CommandExt;
        // SAFETY: between fork and exec we only clear FD_CLOEXEC on one descriptor and set
        // the child's CPU affinity: two system calls, no allocation.
        unsafe {
            cmd.pre_exec(move || {
                if let Some(raw) = raw {
                    libc::fcntl(raw, libc::F_SETFD, 0);
                }
                if let Some(set) = &cpu {
                    crate::pin::apply(set);
                }
                Ok(())
            });
        }
    }
    let mut c = cmd.spawn().unwrap();
    drop(inherit);
    let mut b = [0u8; 1];
    c.stdout.as_mut().unwrap().read_exact(&mut b).unwrap();
    c
}

/// Starts the child end of a run of `sys` on the channels named after `base`, `role` being
/// `--child-rx` or `--child-echo`: its arguments are the system, `base`, `args`, the number of
/// the descriptor `fd` it inherits (`-1`: none), the wait mode and `--depth` (0: not given;
/// [`child_depth`] takes it).
pub fn spawn_peer(
    role: &str,
    sys: Sys,
    base: &str,
    args: &[&dyn std::fmt::Display],
    fd: Option<OwnedFd>,
    mode: Mode,
) -> Child {
    let raw = fd.as_ref().map_or(-1, |f| f.as_raw_fd());
    let (name, mode) = (sys.name(), mode.name());
    let depth = crate::systems::depth().unwrap_or(0);
    let mut all: Vec<&dyn std::fmt::Display> = vec![&role, &name, &base];
    all.extend_from_slice(args);
    all.extend([&raw as &dyn std::fmt::Display, &mode, &depth]);
    spawn_ready(&all, fd)
}

/// In a child started by [`spawn_peer`]: takes the parent's `--depth` (its last argument).
pub fn child_depth(args: &[String]) {
    let d: usize = args.last().and_then(|d| d.parse().ok()).unwrap_or(0);
    crate::systems::set_depth(Some(d));
}

/// In a child: tells the parent that this end is open ([`spawn_ready`] waits for it).
pub fn say_ready() {
    std::io::stdout().write_all(b"r").unwrap();
    std::io::stdout().flush().unwrap();
}

/// Whether `sys` can carry `size`-byte records here (POSIX message queues are limited by
/// `fs.mqueue.msgsize_max`, which root may raise).
pub fn supported(sys: Sys, size: usize) -> bool {
    if sys != Sys::Mq {
        return true;
    }
    let path = "/proc/sys/fs/mqueue/msgsize_max";
    let max: usize = std::fs::read_to_string(path)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(8192);
    max >= size || std::fs::write(path, size.to_string()).is_ok()
}

/// Message queues of 64 KiB records to four consumers need more than the default 800 KiB of
/// RLIMIT_MSGQUEUE; raise it as far as we may (children inherit it). Without the privilege,
/// `make_tx` shortens the queues instead.
pub fn raise_mq_limit() {
    let want = libc::rlimit {
        rlim_cur: 1 << 30,
        rlim_max: 1 << 30,
    };
    // SAFETY: a valid rlimit struct; failure (not root) leaves the limit as it was.
    if unsafe { libc::setrlimit(libc::RLIMIT_MSGQUEUE, &want) } != 0 {
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: a valid, writable rlimit struct.
        if unsafe { libc::getrlimit(libc::RLIMIT_MSGQUEUE, &mut cur) } == 0 {
            cur.rlim_cur = cur.rlim_max;
            // SAFETY: a valid rlimit struct.
            unsafe { libc::setrlimit(libc::RLIMIT_MSGQUEUE, &cur) };
        }
    }
}
