//! The vm C functions: knobs, thresholds, the system's and a file's page cache.

use std::ffi::CString;
use std::ptr;

use crate::status::shmio_status::*;
use crate::vm::*;

#[test]
fn vm_knobs_and_errors() {
    let mut k = std::mem::MaybeUninit::<shmio_vm_knobs>::uninit();
    // SAFETY: valid out pointers or NULL where NULL is the point.
    unsafe {
        assert_eq!(shmio_vm_knobs_get(k.as_mut_ptr()), SHMIO_OK);
        let k = k.assume_init();
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
        let mut t = std::mem::MaybeUninit::<shmio_vm_thresholds>::uninit();
        assert_eq!(shmio_vm_thresholds_get(t.as_mut_ptr()), SHMIO_OK);
        assert!(t.assume_init().dirty_bytes > 0);
        let mut sy = std::mem::MaybeUninit::<shmio_vm_system>::uninit();
        assert_eq!(shmio_vm_system_get(sy.as_mut_ptr()), SHMIO_OK);
        let mut c = std::mem::MaybeUninit::<shmio_page_cache>::uninit();
        let bad = CString::new("/nonexistent/shmio").unwrap();
        assert_eq!(
            shmio_vm_file_cache(bad.as_ptr(), c.as_mut_ptr()),
            SHMIO_ERR_NOT_FOUND
        );
    }
}
