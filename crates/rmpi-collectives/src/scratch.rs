//! Scratch space of one collective call. Short vectors get it on the stack, so the small calls
//! that shared memory makes cheap do not also pay for a zeroed heap allocation every time;
//! longer ones (and element types the stack block cannot hold) get a zeroed vector as before.

use bytemuck::Pod;

/// Bytes of scratch a call may take from the stack.
pub(crate) const STACK_BYTES: usize = 1024;

/// The stack block, aligned for every element type up to 16-byte alignment.
#[repr(C, align(16))]
struct Block([u8; STACK_BYTES]);

/// Runs `f` with `n` zeroed elements of scratch space.
pub(crate) fn with<T: Pod, R>(n: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    let bytes = n.saturating_mul(std::mem::size_of::<T>());
    if bytes <= STACK_BYTES && std::mem::size_of::<T>() > 0 {
        let mut block = Block([0; STACK_BYTES]);
        // The cast fails only for an alignment above 16 (the block's); the heap serves those.
        if let Ok(s) = bytemuck::try_cast_slice_mut::<u8, T>(&mut block.0[..bytes]) {
            return f(s);
        }
    }
    let mut v: Vec<T> = bytemuck::zeroed_vec(n);
    f(&mut v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_and_sized_on_stack_and_heap() {
        for n in [0usize, 1, 7, STACK_BYTES / 8, STACK_BYTES / 8 + 1, 5000] {
            let (len, zero) = with::<u64, _>(n, |s| (s.len(), s.iter().all(|&x| x == 0)));
            assert_eq!((len, zero), (n, true), "n = {n}");
        }
        #[derive(Clone, Copy)]
        #[repr(C, align(32))]
        struct Wide([u8; 32]);
        // SAFETY: 32 plain bytes, no padding (size equals alignment); all zeroes is a value.
        unsafe impl bytemuck::Zeroable for Wide {}
        // SAFETY: as above; every bit pattern is a value and the type is Copy + 'static.
        unsafe impl bytemuck::Pod for Wide {}
        let len = with::<Wide, _>(3, |s| {
            assert_eq!(s.as_ptr() as usize % 32, 0);
            s.len()
        });
        assert_eq!(len, 3);
    }
}
