//! The command's error: a message for standard error and the exit status (see `--help`).

use std::fmt::Display;

use shmio::ErrorKind;

/// Exit status of an error that has no more specific one.
pub const ERROR: u8 = 1;
/// Exit status when the object or directory named does not exist.
pub const NOT_FOUND: u8 = 3;
/// Exit status when the file's permissions refuse us.
pub const PERMISSION_DENIED: u8 = 4;

/// A failure: what to print, and the exit status.
#[derive(Debug)]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    pub fn new(code: u8, message: impl Into<String>) -> CliError {
        CliError {
            code,
            message: message.into(),
        }
    }

    /// A failure already reported on standard error: exit with `code` and print nothing more.
    pub fn quiet(code: u8) -> CliError {
        CliError::new(code, "")
    }

    /// A shmio error, with its exit status chosen by its kind.
    pub fn shmio(kind: ErrorKind, e: impl Display) -> CliError {
        let code = match kind {
            ErrorKind::NotFound => NOT_FOUND,
            ErrorKind::PermissionDenied => PERMISSION_DENIED,
            _ => ERROR,
        };
        CliError::new(code, e.to_string())
    }

    /// An I/O error on `what`.
    pub fn io(what: impl Display, e: &std::io::Error) -> CliError {
        let code = match e.kind() {
            std::io::ErrorKind::NotFound => NOT_FOUND,
            std::io::ErrorKind::PermissionDenied => PERMISSION_DENIED,
            _ => ERROR,
        };
        CliError::new(code, format!("{what}: {e}"))
    }
}

impl From<shmio::queue::Error> for CliError {
    fn from(e: shmio::queue::Error) -> CliError {
        CliError::shmio(e.kind(), e)
    }
}

impl From<shmio::region::Error> for CliError {
    fn from(e: shmio::region::Error) -> CliError {
        CliError::shmio(e.kind(), e)
    }
}
