//! Status codes, the last-error message and the panic boundary, as C sees them.

use std::ptr;

use super::text;
use crate::ffi::last_error_string;
use crate::status::shmio_status::{self, *};
use crate::*;

#[test]
fn version_matches_core() {
    assert_eq!(text(shmio_version()), shmio_core::VERSION);
    assert_eq!(text(shmio_version()), "0.1.0");
}

#[test]
fn status_str_covers_every_status() {
    let mut seen = std::collections::HashSet::new();
    for (i, s) in shmio_status::ALL.iter().enumerate() {
        // 0..=27 dense, then the poller's statuses from 30.
        let want = if i <= 27 {
            i as u32
        } else {
            30 + (i as u32 - 28)
        };
        assert_eq!(*s as u32, want, "ALL is in numeric order");
        assert_eq!(shmio_status::from_u32(want), Some(*s));
        let d = text(shmio_status_str(*s as u32));
        assert_ne!(d, "unknown status", "{s:?}");
        assert!(seen.insert(d), "descriptions are distinct");
    }
    assert_eq!(SHMIO_ERR_PANIC as u32, 20);
    assert_eq!(SHMIO_ERR_TORN as u32, 21);
    assert_eq!(SHMIO_ERR_FORKED as u32, 22);
    assert_eq!(SHMIO_ERR_CANCELLED as u32, 23);
    assert_eq!(SHMIO_ERR_NO_SPACE as u32, 24);
    assert_eq!(text(shmio_status_str(24)), "no space on the file system");
    assert_eq!(SHMIO_ERR_STALE as u32, 25);
    assert_eq!(SHMIO_ERR_READ_ONLY as u32, 26);
    assert_eq!(SHMIO_ERR_WRITER_EXISTS as u32, 27);
    assert!(text(shmio_status_str(25)).starts_with("stale replica"));
    assert_eq!(text(shmio_status_str(28)), "unknown status");
    assert_eq!(text(shmio_status_str(29)), "unknown status");
    assert_eq!(SHMIO_ERR_NOT_REGISTERED as u32, 30);
    assert_eq!(SHMIO_ERR_WRONG_THREAD as u32, 31);
    assert_eq!(text(shmio_status_str(32)), "unknown status");
    assert_eq!(text(shmio_status_str(u32::MAX)), "unknown status");
}

#[test]
fn last_error_is_reset_by_each_call() {
    // SAFETY: valid pointers (NULL where tested).
    unsafe {
        assert_eq!(shmio_queue_unlink(ptr::null()), SHMIO_ERR_NULL_POINTER);
        assert_ne!(text(shmio_last_error_message()), "");
        // Neither of these resets it.
        let _ = shmio_status_str(0);
        let _ = shmio_version();
        assert_ne!(text(shmio_last_error_message()), "");
        let mut o = std::mem::MaybeUninit::uninit();
        assert_eq!(shmio_queue_options_init(o.as_mut_ptr()), SHMIO_OK);
        assert_eq!(text(shmio_last_error_message()), "");
    }
    // Each thread has its own.
    std::thread::spawn(|| {
        // SAFETY: NULL is tested.
        unsafe { shmio_queue_unlink(ptr::null()) };
    })
    .join()
    .unwrap();
    assert_eq!(text(shmio_last_error_message()), "");
}

#[test]
fn panics_become_status() {
    let st = crate::ffi::boundary("test_fn", || panic!("boom"));
    assert_eq!(st, SHMIO_ERR_PANIC);
    assert_eq!(last_error_string(), "test_fn: panic: boom");
}

#[test]
fn core_error_kinds_map_alike_in_every_capability() {
    use crate::status::of;
    use shmio_core::{IoError, poll, queue, region, tqueue, vm};
    use std::path::PathBuf;
    let of_queue = |e: &queue::Error| of(e.kind());
    let of_region = |e: &region::Error| of(e.kind());
    let of_vm = |e: &vm::Error| of(e.kind());
    let of_poll = |e: &poll::Error| of(e.kind());
    let of_tqueue = |e: &tqueue::Error<()>| of(e.kind());
    let p = || PathBuf::from("/x");
    let s = || String::from("x");
    let io = || std::io::Error::from_raw_os_error(libc::EIO);
    // One row per kind: the status of that kind in every error type that has it.
    let rows: [(&str, Vec<shmio_status>); 14] = [
        (
            "InvalidArgument",
            vec![
                of_queue(&queue::Error::InvalidArgument(s())),
                of_region(&region::Error::InvalidArgument(s())),
                of_vm(&vm::Error::InvalidArgument(s())),
                of_poll(&poll::Error::InvalidArgument(s())),
                of_tqueue(&tqueue::Error::<()>::InvalidCapacity),
            ],
        ),
        (
            "AlreadyExists",
            vec![
                of_queue(&queue::Error::AlreadyExists(p())),
                of_region(&region::Error::AlreadyExists(p())),
            ],
        ),
        (
            "NotFound",
            vec![
                of_queue(&queue::Error::NotFound(p())),
                of_region(&region::Error::NotFound(p())),
                of_vm(&vm::Error::NotFound(p())),
            ],
        ),
        (
            "PermissionDenied",
            vec![
                of_queue(&queue::Error::PermissionDenied(p())),
                of_region(&region::Error::PermissionDenied(p())),
                of_vm(&vm::Error::PermissionDenied(p())),
            ],
        ),
        (
            "Corrupt",
            vec![
                of_queue(&queue::Error::Corrupt(s())),
                of_region(&region::Error::Corrupt(s())),
            ],
        ),
        (
            "VersionMismatch",
            vec![
                of_queue(&queue::Error::VersionMismatch {
                    found: 1,
                    expected: 2,
                }),
                of_region(&region::Error::VersionMismatch {
                    found: 1,
                    expected: 2,
                }),
            ],
        ),
        (
            "NoSpace",
            vec![
                of_queue(&queue::Error::NoSpace {
                    path: p(),
                    needed: 2,
                    available: 1,
                }),
                of_region(&region::Error::NoSpace {
                    path: p(),
                    needed: 2,
                    available: 1,
                }),
            ],
        ),
        (
            "WouldBlock",
            vec![
                of_queue(&queue::Error::WouldBlock),
                of_region(&region::Error::WouldBlock),
                of_tqueue(&tqueue::Error::<()>::WouldBlock(None)),
            ],
        ),
        (
            "Timeout",
            vec![
                of_queue(&queue::Error::Timeout),
                of_region(&region::Error::Timeout),
                of_tqueue(&tqueue::Error::<()>::Timeout(None)),
            ],
        ),
        (
            "Interrupted",
            vec![
                of_queue(&queue::Error::Interrupted),
                of_region(&region::Error::Interrupted),
                of_poll(&poll::Error::Interrupted),
            ],
        ),
        (
            "Closed",
            vec![
                of_queue(&queue::Error::Closed),
                of_tqueue(&tqueue::Error::<()>::Closed(None)),
            ],
        ),
        (
            "Forked",
            vec![
                of_queue(&queue::Error::Forked),
                of_poll(&poll::Error::Forked),
            ],
        ),
        (
            "Unsupported",
            vec![
                of_queue(&queue::Error::Unsupported(s())),
                of_region(&region::Error::Unsupported(s())),
                of_vm(&vm::Error::Unsupported(s())),
            ],
        ),
        (
            "Io",
            vec![
                of_queue(&queue::Error::Io(IoError::new("op", io()))),
                of_region(&region::Error::Io(IoError::new("op", io()))),
                of_vm(&vm::Error::Io(IoError::new("op", io()))),
                of_poll(&poll::Error::Io(IoError::new("op", io()))),
            ],
        ),
    ];
    for (kind, statuses) in &rows {
        assert!(
            statuses.windows(2).all(|w| w[0] == w[1]),
            "{kind}: {statuses:?}"
        );
    }
}

#[test]
fn kinds_of_one_capability_keep_their_documented_status() {
    use crate::status::of;
    use shmio_core::{poll, region, vm};
    let of_poll = |e: &poll::Error| of(e.kind());
    let of_region = |e: &region::Error| of(e.kind());
    let of_vm = |e: &vm::Error| of(e.kind());
    // The poller's "held already" kinds, which Python reports as classes of their own, are
    // SHMIO_ERR_ALREADY_EXISTS in C (see status.rs).
    for e in [
        poll::Error::AlreadyRegistered(3),
        poll::Error::RtSigInUse,
        poll::Error::FileInUse(3),
        poll::Error::WakerExists { token: 1 },
    ] {
        assert_eq!(of_poll(&e), SHMIO_ERR_ALREADY_EXISTS, "{e:?}");
    }
    assert_eq!(
        of_poll(&poll::Error::FdTooLarge { fd: 9, limit: 8 }),
        SHMIO_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        of_poll(&poll::Error::NotRegistered(3)),
        SHMIO_ERR_NOT_REGISTERED
    );
    assert_eq!(
        of_poll(&poll::Error::WrongThread {
            owner: 1,
            caller: 2
        }),
        SHMIO_ERR_WRONG_THREAD
    );
    assert_eq!(
        of_region(&region::Error::OutOfBounds {
            offset: 1,
            len: 1,
            size: 1
        }),
        SHMIO_ERR_INVALID_ARGUMENT
    );
    assert_eq!(
        of_region(&region::Error::Torn { offset: 0, len: 1 }),
        SHMIO_ERR_TORN
    );
    let stale = region::Error::Stale {
        staleness: None,
        applied: 1,
        seen: 2,
    };
    assert_eq!(of_region(&stale), SHMIO_ERR_STALE);
    assert_eq!(
        of_region(&region::Error::ReadOnly(String::from("x"))),
        SHMIO_ERR_READ_ONLY
    );
    assert_eq!(
        of_region(&region::Error::WriterExists { pid: 1 }),
        SHMIO_ERR_WRITER_EXISTS
    );
    assert_eq!(
        of_vm(&vm::Error::Parse {
            path: "/proc/x".into(),
            what: "x".into()
        }),
        SHMIO_ERR_IO
    );
}

#[test]
fn the_header_limits_are_the_cores_and_the_version_number_its_version() {
    use shmio_core::queue;
    assert_eq!(crate::SHMIO_MAX_SLOTS, queue::MAX_SLOTS);
    assert_eq!(crate::SHMIO_MAX_SLOT_SIZE, queue::MAX_SLOT_SIZE);
    assert_eq!(crate::SHMIO_MAX_CONSUMERS, queue::MAX_CONSUMERS);
    let long = "n".repeat(crate::SHMIO_MAX_NAME_LEN as usize);
    assert!(queue::resolve(&long).is_ok());
    assert!(queue::resolve(&format!("{long}n")).is_err());
    let n = crate::shmio_version_number();
    let v: Vec<u32> = shmio_core::VERSION
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    assert_eq!((n >> 16, (n >> 8) & 0xff, n & 0xff), (v[0], v[1], v[2]));
}
