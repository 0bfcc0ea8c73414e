//! A global allocator wrapper that counts, per thread, the bytes allocated minus the bytes
//! freed. A playbook replay runs on one thread: the difference between the counter at the
//! start and now is (about) what the script holds, which `playbook/engine.rs` checks against
//! `max_memory_mib` between operations. Memory freed on another thread than the one that
//! allocated it skews the count of both; a replay's values live and die on its thread.
//!
//! The binary and the benches install it around mimalloc ([`SERVER_ALLOCATOR`]), the
//! library's unit tests around the system allocator (`lib.rs`). Without it installed,
//! [`thread_bytes`] stays 0 and the memory limit is not enforced.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;

thread_local! {
    static NET: Cell<i64> = const { Cell::new(0) };
}

/// Counts what the wrapped allocator hands out on each thread.
pub struct Metered<A>(pub A);

/// The allocator of `osprey serve`: mimalloc, metered. The binary installs it (`main.rs`), and
/// so does each bench (`benches/`), so that what they measure is what the server does.
pub type ServerAllocator = Metered<mimalloc::MiMalloc>;

/// The one [`ServerAllocator`] a `#[global_allocator]` static is set to.
pub const SERVER_ALLOCATOR: ServerAllocator = Metered(mimalloc::MiMalloc);

fn add(n: i64) {
    // `try_with`: allocations during thread teardown find the counter gone.
    let _ = NET.try_with(|c| c.set(c.get().wrapping_add(n)));
}

unsafe impl<A: GlobalAlloc> GlobalAlloc for Metered<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { self.0.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as i64);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { self.0.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size() as i64);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { self.0.dealloc(ptr, layout) };
        add(-(layout.size() as i64));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { self.0.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as i64 - layout.size() as i64);
        }
        p
    }
}

/// Bytes allocated minus bytes freed on this thread so far (0 without the meter).
pub fn thread_bytes() -> i64 {
    NET.try_with(Cell::get).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_meter_sees_what_this_thread_holds() {
        let before = super::thread_bytes();
        let v = vec![0u8; 10 << 20];
        let held = super::thread_bytes() - before;
        assert!(held >= 10 << 20, "{held}");
        drop(v);
        assert!(super::thread_bytes() - before < 1 << 20);
    }
}
