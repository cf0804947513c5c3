//! The header compiles as strict C11 (and C++), and a C program links against the built
//! library (shared, through the in-tree `shmio.pc` when pkg-config is installed, and static)
//! and runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `target/<profile>`, where the library and `shmio.pc` are built (told by build.rs).
fn profile_dir() -> PathBuf {
    PathBuf::from(env!("SHMIO_PROFILE_DIR"))
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const CFLAGS: [&str; 5] = ["-Wall", "-Wextra", "-Werror", "-std=c11", "-pedantic"];

fn smoke_c() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/abi_smoke.c")
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok()
}

#[test]
fn header_compiles_as_strict_c11_and_cxx() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let include = repo().join("include");
    run(Command::new("cc")
        .args(CFLAGS)
        .arg("-I")
        .arg(&include)
        .arg("-c")
        .arg(smoke_c())
        .arg("-o")
        .arg(tmp.join("abi_smoke.o")));
    if have("c++") {
        run(Command::new("c++")
            .args(["-Wall", "-Wextra", "-Werror", "-std=c++17", "-pedantic"])
            .args(["-fsyntax-only", "-x", "c++"])
            .arg(include.join("shmio.h")));
    }
}

fn link_and_run(exe: &Path, link_args: &[String]) {
    let include = repo().join("include");
    run(Command::new("cc")
        .args(CFLAGS)
        .arg("-I")
        .arg(&include)
        .arg(smoke_c())
        .arg("-o")
        .arg(exe)
        .args(link_args));
    let out = run(&mut Command::new(exe));
    assert!(out.contains("c abi smoke: ok"), "{out}");
}

/// Builds the library into the profile directory this test belongs to, once per test run.
/// `cargo test` does not build a cdylib/staticlib-only library target for integration tests, so
/// without this the C program would link whatever `cargo build` left there last. (Cargo holds
/// no build lock while the tests run.)
fn library(file: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = profile_dir();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "shmio-capi", "--lib", "--target-dir"])
            .arg(dir.parent().expect("profile dir has a parent"));
        match dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
            None => panic!("odd profile dir {}", dir.display()),
        }
        let out = cmd.output().expect("run cargo build");
        assert!(
            out.status.success(),
            "{cmd:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
    let p = profile_dir().join(file);
    assert!(p.exists(), "{} was not built", p.display());
    p
}

#[test]
fn c_program_links_shared_library_and_runs() {
    library("libshmio.so");
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let libs: Vec<String> = if have("pkg-config") {
        let flags = run(Command::new("pkg-config")
            .env("PKG_CONFIG_PATH", profile_dir())
            .args(["--cflags", "--libs", "shmio"]));
        flags.split_whitespace().map(str::to_owned).collect()
    } else {
        eprintln!("pkg-config not installed: linking with explicit flags");
        let dir = profile_dir().display().to_string();
        vec![
            format!("-L{dir}"),
            format!("-Wl,-rpath,{dir}"),
            "-lshmio".into(),
        ]
    };
    link_and_run(&tmp.join("abi_smoke_shared"), &libs);
}

#[test]
fn c_program_links_static_library_and_runs() {
    let lib = library("libshmio.a");
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    // The system libraries the static library needs: Libs.private of shmio.pc.in.
    let pc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("shmio.pc.in"))
        .expect("read shmio.pc.in");
    let private = pc
        .lines()
        .find_map(|l| l.strip_prefix("Libs.private:"))
        .expect("shmio.pc.in has Libs.private");
    let mut args = vec![lib.display().to_string()];
    args.extend(private.split_whitespace().map(str::to_owned));
    link_and_run(&tmp.join("abi_smoke_static"), &args);
}

/// `nm -D --defined-only` of the shared library: its exported functions.
fn exported(lib: &Path) -> Vec<String> {
    let out = run(Command::new("nm").args(["-D", "--defined-only"]).arg(lib));
    let mut names: Vec<String> = out
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, kind, name) = (f.next()?, f.next()?, f.next()?);
            // Functions, and any data or other kind: everything exported counts.
            (kind != "U" && kind != "w" && kind != "v").then(|| name.to_string())
        })
        .collect();
    names.sort();
    names
}

#[test]
fn the_exports_are_exactly_the_committed_list_and_the_soname_is_major() {
    let lib = library("libshmio.so");
    let listed: Vec<String> =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("symbols.txt"))
            .expect("read capi/symbols.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(str::to_owned)
            .collect();
    let got = exported(&lib);
    let added: Vec<_> = got.iter().filter(|s| !listed.contains(s)).collect();
    let removed: Vec<_> = listed.iter().filter(|s| !got.contains(s)).collect();
    assert!(
        added.is_empty() && removed.is_empty(),
        "exports differ from capi/symbols.txt: added {added:?}, removed {removed:?}"
    );
    assert!(got.iter().all(|s| s.starts_with("shmio_")), "{got:?}");
    let dynamic = run(Command::new("readelf").arg("-d").arg(&lib));
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    assert!(
        dynamic.contains(&format!("Library soname: [libshmio.so.{major}]")),
        "{dynamic}"
    );
}

#[test]
fn an_installed_copy_alone_builds_and_runs_c_programs_dynamically_and_statically() {
    library("libshmio.so");
    library("libshmio.a");
    if !have("pkg-config") {
        eprintln!("skipped: pkg-config is not installed");
        return;
    }
    let tmp =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let prefix = tmp.join("prefix");
    // The shmio command that install.sh installs beside the library, built into the same
    // profile directory (`cargo test -p shmio-capi` alone does not build it).
    let profile = profile_dir();
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .args(["build", "-q", "-p", "shmio-cli"])
        .current_dir(repo())
        .env("CARGO_TARGET_DIR", profile.parent().unwrap());
    if profile.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    run(&mut build);
    run(Command::new("bash")
        .arg(repo().join("scripts/install.sh"))
        .arg(&prefix)
        .arg("--from")
        .arg(profile_dir()));
    let lib = prefix.join("lib");
    let version = env!("CARGO_PKG_VERSION");
    let major = env!("CARGO_PKG_VERSION_MAJOR");
    // The links, the stripped library and its split-off debug info.
    assert_eq!(
        std::fs::read_link(lib.join("libshmio.so")).unwrap(),
        Path::new(&format!("libshmio.so.{major}"))
    );
    assert_eq!(
        std::fs::read_link(lib.join(format!("libshmio.so.{major}"))).unwrap(),
        Path::new(&format!("libshmio.so.{version}"))
    );
    let sections = |f: &Path| run(Command::new("readelf").arg("-S").arg(f));
    let real = sections(&lib.join(format!("libshmio.so.{version}")));
    assert!(
        !real.contains(".debug_info") && real.contains(".gnu_debuglink"),
        "{real}"
    );
    assert!(
        sections(&lib.join(format!("debug/libshmio.so.{version}.debug"))).contains(".debug_info")
    );
    let pc = |args: &[&str]| -> Vec<String> {
        run(Command::new("pkg-config")
            .env("PKG_CONFIG_PATH", lib.join("pkgconfig"))
            .env_remove("PKG_CONFIG_LIBDIR")
            .args(args)
            .arg("shmio"))
        .split_whitespace()
        .map(str::to_owned)
        .collect()
    };
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/installed.c");
    let work = tmp.join("work");
    std::fs::create_dir_all(&work).unwrap();
    for (name, flags, extra) in [
        (
            "dynamic",
            pc(&["--cflags", "--libs"]),
            vec![format!("-Wl,-rpath,{}", lib.display())],
        ),
        (
            "static",
            pc(&["--static", "--cflags", "--libs"]),
            vec!["-static".to_string()],
        ),
    ] {
        let exe = tmp.join(format!("installed-{name}"));
        run(Command::new("cc")
            .args(CFLAGS)
            .args(&extra)
            .arg(&src)
            .args(&flags)
            .arg("-o")
            .arg(&exe));
        // Only the installed copy: no search path into the build tree.
        let out = run(Command::new(&exe).arg(&work).env_remove("LD_LIBRARY_PATH"));
        assert_eq!(out.trim(), format!("ok {version}"), "{name}");
        let dynamic = run(Command::new("readelf").arg("-d").arg(&exe));
        assert_eq!(
            dynamic.contains(&format!("[libshmio.so.{major}]")),
            name == "dynamic",
            "{name}: {dynamic}"
        );
    }
    // The command, installed and runnable from the prefix.
    let out = run(Command::new(prefix.join("bin/shmio")).arg("--version"));
    assert_eq!(out.trim(), format!("shmio {version}"));
    let _ = std::fs::remove_dir_all(&tmp);
}
