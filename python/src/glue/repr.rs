//! The `repr()` every handle class shares: `<shmio.Class state>` while open,
//! `<shmio.Class closed>` after `close()`.

/// The `repr()` of handle class `class`: `open` describes the open handle (`None`: closed).
pub(crate) fn handle_repr(class: &str, open: Option<String>) -> String {
    match open {
        Some(state) => format!("<shmio.{class} {state}>"),
        None => format!("<shmio.{class} closed>"),
    }
}

#[cfg(test)]
mod tests {
    use super::handle_repr;

    #[test]
    fn open_and_closed_handles_read_alike_in_every_class() {
        let open = handle_repr("Region", Some("/dev/shm/r size=8 version=0".into()));
        assert_eq!(open, "<shmio.Region /dev/shm/r size=8 version=0>");
        assert_eq!(handle_repr("Consumer", None), "<shmio.Consumer closed>");
    }
}
