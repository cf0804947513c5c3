//! What the bridge's namespace tests share: the programs, the lease, the bound on every wait,
//! one test at a time, and the hosts (or a skip where they cannot be made).

#![allow(dead_code)] // each test file uses its own part

use std::sync::Mutex;
use std::time::Duration;

use shmio_bridge::netns::{Hosts, field};

pub const BRIDGE: &str = env!("CARGO_BIN_EXE_shmio-bridge");
pub const TOOL: &str = env!("CARGO_BIN_EXE_shmio-bridge-tool");
/// The lease the bridges run with in these tests: the bound on noticing a silent link.
pub const LEASE_MS: u64 = 1000;
pub const LEASE: &str = "1000";
pub const T: Duration = Duration::from_secs(60);

/// One test at a time: each moves a lot through two processes per host, on a small machine.
pub static SERIAL: Mutex<()> = Mutex::new(());

/// The two hosts, or `None` (with a message saying why) where they cannot be created.
pub fn hosts() -> Option<Hosts> {
    match Hosts::create() {
        Ok(h) => Some(h),
        Err(e) => {
            eprintln!("SKIPPED: network namespaces cannot be created here ({e})");
            None
        }
    }
}

/// The number after `key=` in a `key=value` line.
pub fn num(line: &str, key: &str) -> u64 {
    field(line, key).unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}
