//! The vm C functions: knobs, thresholds, the system's and a file's page cache.

use std::ffi::CString;
use std::ptr;

use super::inited;
use crate::status::shmio_status::*;
use crate::vm::*;

#[test]
fn vm_knobs_and_errors() {
    let mut k = inited(shmio_vm_knobs_init);
    // SAFETY: valid out pointers or NULL where NULL is the point.
    unsafe {
        assert_eq!(shmio_vm_knobs_get(&mut k), SHMIO_OK);
        assert_eq!(
            k.dirty_ratio,
            shmio_core::vm::knob(shmio_core::vm::Knob::DirtyRatio).unwrap()
        );
        assert_eq!(shmio_vm_knobs_get(ptr::null_mut()), SHMIO_ERR_NULL_POINTER);
        assert_eq!(
            shmio_vm_knob_set(6, 0, ptr::null_mut()),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            shmio_vm_knob_set(SHMIO_VM_DIRTY_RATIO, 101, ptr::null_mut()),
            SHMIO_ERR_INVALID_ARGUMENT
        );
        let mut t = inited(shmio_vm_thresholds_init);
        assert_eq!(shmio_vm_thresholds_get(&mut t), SHMIO_OK);
        assert!(t.dirty_bytes > 0);
        let mut sy = inited(shmio_vm_system_init);
        assert_eq!(shmio_vm_system_get(&mut sy), SHMIO_OK);
        let mut c = inited(shmio_page_cache_init);
        let bad = CString::new("/nonexistent/shmio").unwrap();
        assert_eq!(
            shmio_vm_file_cache(bad.as_ptr(), &mut c),
            SHMIO_ERR_NOT_FOUND
        );
    }
}
