//! `shmio`: list, inspect, watch, tail and clean up shmio queues and regions.
//!
//! This file only parses the command line and dispatches; each subcommand has its own module.

mod doctor;
mod error;
mod gc;
mod ls;
mod objects;
mod stat;
mod tail;
mod top;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use error::CliError;

const EXIT_CODES: &str = "\
Exit status:
  0  success
  1  error (a corrupt file, a failed system call, an object that is not a shmio object)
  2  usage error (bad arguments)
  3  not found (no such queue, region or directory)
  4  permission denied

Names: a bare NAME is looked up in $SHMIO_DIR, or /dev/shm if that is unset; a path starts
with '/', './' or '../'. The read-only subcommands (ls, stat, top, tail) open files read-only
and need read permission only.";

#[derive(Parser)]
#[command(
    name = "shmio",
    version,
    about = "Inspect and manage shmio queues and regions",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every shmio queue and region in DIR (default: $SHMIO_DIR or /dev/shm).
    ///
    /// Files are recognised by their magic number; anything else, and files that cannot be
    /// read, are skipped silently. Objects of another layout version are listed as such.
    #[command(after_help = EXIT_CODES)]
    Ls {
        /// The directory to list.
        dir: Option<PathBuf>,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show a queue's head, oldest record, producer and every consumer (position, lag, lost,
    /// received, liveness), or a region's size, version, torn range and writer.
    #[command(after_help = EXIT_CODES)]
    Stat {
        /// A queue or region name, or a path.
        name: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Print again every MS milliseconds until interrupted (the screen is cleared between
        /// reports when standard output is a terminal).
        #[arg(long, value_name = "MS")]
        watch: Option<u64>,
        /// With --watch: stop after N reports.
        #[arg(long, value_name = "N", requires = "watch")]
        count: Option<u64>,
    },
    /// Live rates (records per second, from head deltas) and lags of every queue in DIR,
    /// refreshed in the terminal (plain reports, one after another, when standard output is
    /// not a terminal).
    #[command(after_help = EXIT_CODES)]
    Top {
        /// The directory to watch (default: $SHMIO_DIR or /dev/shm).
        dir: Option<PathBuf>,
        /// Milliseconds between refreshes.
        #[arg(long, value_name = "MS", default_value_t = 1000)]
        interval: u64,
        /// Stop after N refreshes.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
    },
    /// Print a queue's records as they arrive, as a read-only observer.
    ///
    /// tail opens the queue read-only and never joins it: it takes no consumer slot and writes
    /// nothing to the file, so a back-pressure producer never waits for it (stat shows no
    /// consumer for it). It cannot sleep on the queue's futex either (that needs a write), so
    /// it polls the head, backing off from 50 µs to 2 ms while nothing arrives. A producer
    /// faster than tail laps it: tail then skips to the oldest record still held and reports
    /// on standard error how many records it lost. Each record is copied between two checks
    /// of its slot's stamp, so a record overwritten during the copy is never printed.
    #[command(after_help = EXIT_CODES)]
    Tail {
        /// A queue name or path.
        name: String,
        /// How each record is printed: as text (trailing NUL padding dropped, control
        /// characters escaped), as hex, or its length only.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Stop after N records.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Where to start: the oldest record still held, or the next one committed.
        #[arg(long, value_enum, default_value_t = From::Newest)]
        from: From,
        /// Print each record's sequence number before it.
        #[arg(long)]
        seq: bool,
    },
    /// Remove queues and regions; anything that is not a shmio object is refused and left.
    #[command(after_help = EXIT_CODES)]
    Rm {
        /// Queue or region names, or paths.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove queues left behind by killed processes.
    ///
    /// A queue is garbage when no process holds any of its roles (no live producer, no live
    /// consumer: liveness is the kernel's robust-futex marking, checked against each role's
    /// file lock) and at least one role was left by a process that died without closing (a
    /// dead producer or a dead consumer). A queue whose producer and consumers all closed
    /// cleanly is idle, not garbage, and is kept unless --all-idle is given. Queues of another
    /// layout version are kept. Regions are always kept: a process that only reads a region
    /// leaves no trace in it, so shmio cannot tell whether one is in use.
    #[command(after_help = EXIT_CODES)]
    Gc {
        /// The directory to clean (default: $SHMIO_DIR or /dev/shm).
        dir: Option<PathBuf>,
        /// Only print what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Also remove idle queues: no live role, none left by a dead process.
        #[arg(long)]
        all_idle: bool,
    },
    /// What this machine allows, and what each limit means for shmio.
    #[command(after_help = EXIT_CODES)]
    Doctor {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// How `tail` prints a record.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Hex,
    Len,
}

/// Where `tail` starts.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum From {
    Oldest,
    Newest,
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Ls { dir, json } => ls::run(dir, json),
        Command::Stat {
            name,
            json,
            watch,
            count,
        } => stat::run(&name, json, watch, count),
        Command::Top {
            dir,
            interval,
            count,
        } => top::run(dir, interval, count),
        Command::Tail {
            name,
            format,
            count,
            from,
            seq,
        } => tail::run(&name, format, count, from == From::Oldest, seq),
        Command::Rm { names } => gc::rm(&names),
        Command::Gc {
            dir,
            dry_run,
            all_idle,
        } => gc::gc(dir, dry_run, all_idle),
        Command::Doctor { json } => doctor::run(json),
    }
}

fn main() -> ExitCode {
    // Die quietly of SIGPIPE when the reader of our output goes away (`shmio ls | head`), as
    // other command-line tools do, instead of failing on every write.
    // SAFETY: setting a signal's disposition to the default, before any other thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !e.message.is_empty() {
                eprintln!("shmio: {}", e.message);
            }
            ExitCode::from(e.code)
        }
    }
}
