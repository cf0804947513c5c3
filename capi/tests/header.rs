//! Fails when the committed `include/shmio.h` is not what cbindgen generates from the source.

use std::path::Path;

#[test]
fn committed_header_is_up_to_date() {
    let generated_path = env!("SHMIO_GENERATED_HEADER");
    let committed_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../include/shmio.h");
    let generated = std::fs::read_to_string(generated_path).expect("read the generated header");
    let committed = std::fs::read_to_string(&committed_path).unwrap_or_default();
    if generated == committed {
        return;
    }
    let first_diff = generated
        .lines()
        .zip(committed.lines().chain(std::iter::repeat("<end of file>")))
        .enumerate()
        .find(|(_, (g, c))| g != c)
        .map_or_else(
            || "the committed header has extra lines at the end".to_owned(),
            |(i, (g, c))| {
                format!(
                    "first difference at line {}:\n  generated: {g}\n  committed: {c}",
                    i + 1
                )
            },
        );
    panic!(
        "include/shmio.h is stale: {first_diff}\n\
         compare: diff -u {} {generated_path}\n\
         to update it, run SHMIO_UPDATE_HEADER=1 cargo build -p shmio-capi and commit the result",
        committed_path.display()
    );
}
