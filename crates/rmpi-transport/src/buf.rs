//! Buffers the engine owns or borrows.

use bytemuck::Pod;

/// A heap buffer of `len` bytes aligned to 8, so that it can be viewed as any `Pod` type with an
/// alignment up to 8 and turned into a `Vec<f64>`/`Vec<u64>`/`Vec<i64>` without a copy.
#[derive(Debug, Default)]
pub(crate) struct AlignedBuf {
    words: Vec<u64>,
    len: usize,
}

impl AlignedBuf {
    /// A zeroed buffer (large ones come straight from `calloc`, so untouched pages cost nothing).
    pub(crate) fn zeroed(len: usize) -> Self {
        AlignedBuf { words: vec![0u64; len.div_ceil(8)], len }
    }

    /// Like [`AlignedBuf::zeroed`], but `None` instead of aborting the process when the memory
    /// cannot be had (a peer's frame header may claim any length up to the message limit).
    pub(crate) fn try_zeroed(len: usize) -> Option<Self> {
        let n = len.div_ceil(8);
        if n == 0 {
            return Some(AlignedBuf::default());
        }
        let layout = std::alloc::Layout::array::<u64>(n).ok()?;
        // SAFETY: the layout has a nonzero size (n > 0).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<u64>();
        if ptr.is_null() {
            return None;
        }
        // SAFETY: ptr was allocated by the global allocator with the layout of `n` u64s, as a
        // Vec<u64> of capacity n would be, and all n words are initialised (zeroed).
        let words = unsafe { Vec::from_raw_parts(ptr, n, n) };
        Some(AlignedBuf { words, len })
    }

    pub(crate) fn from_bytes(b: &[u8]) -> Self {
        let mut a = Self::zeroed(b.len());
        a.as_mut_bytes().copy_from_slice(b);
        a
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }

    pub(crate) fn as_mut_bytes(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.len]
    }

    /// The bytes as a `Vec<T>`: moved when `T` has the size and alignment of `u64`, copied
    /// otherwise. The caller has checked that `len` is a multiple of `size_of::<T>()`.
    pub(crate) fn into_vec<T: Pod>(self) -> Vec<T> {
        let sz = std::mem::size_of::<T>();
        if sz == 0 {
            return Vec::new();
        }
        if sz == 8 && std::mem::align_of::<T>() == 8 && self.len % 8 == 0 {
            let mut w = self.words;
            w.truncate(self.len / 8);
            if let Ok(v) = bytemuck::allocation::try_cast_vec::<u64, T>(w) {
                return v;
            }
            // Unreachable for size-8 align-8 types; fall through to a copy would need the words
            // back, so rebuild from scratch in that impossible case.
            return Vec::new();
        }
        let bytes = self.as_bytes();
        let n = bytes.len() / sz;
        let mut out: Vec<T> = Vec::with_capacity(n);
        if std::mem::align_of::<T>() <= 8 {
            out.extend_from_slice(bytemuck::cast_slice(&bytes[..n * sz]));
        } else {
            out.extend(bytes.chunks_exact(sz).map(bytemuck::pod_read_unaligned::<T>));
        }
        out
    }
}

/// A raw view of caller memory that the engine reads from (sends) or writes into (receives).
///
/// Safety contract: whoever creates one guarantees the memory stays valid, and is not otherwise
/// accessed in a conflicting way, until the engine has let go of it (the request completed, failed
/// or was cancelled). `Communicator` upholds this by waiting or cancelling before a borrow ends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawBuf {
    pub(crate) ptr: *mut u8,
    pub(crate) len: usize,
}

// SAFETY: a RawBuf is only dereferenced under the engine's state lock, and the memory it points to
// is kept alive and unaliased by the contract above, whichever thread makes progress.
unsafe impl Send for RawBuf {}

impl RawBuf {
    pub(crate) fn from_slice(s: &[u8]) -> Self {
        RawBuf { ptr: s.as_ptr() as *mut u8, len: s.len() }
    }

    pub(crate) fn from_mut(s: &mut [u8]) -> Self {
        RawBuf { ptr: s.as_mut_ptr(), len: s.len() }
    }

    /// # Safety
    /// The contract of [`RawBuf`] holds.
    pub(crate) unsafe fn bytes<'a>(&self) -> &'a [u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: per the type's contract.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// # Safety
    /// The contract of [`RawBuf`] holds and the buffer was created from a mutable borrow.
    pub(crate) unsafe fn bytes_mut<'a>(&self) -> &'a mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: per the type's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buf_conversions() {
        let src: Vec<f64> = (0..100).map(|i| i as f64 * 0.5).collect();
        let a = AlignedBuf::from_bytes(bytemuck::cast_slice(&src));
        assert_eq!(a.into_vec::<f64>(), src);
        let src32: Vec<f32> = (0..7).map(|i| i as f32).collect();
        let a = AlignedBuf::from_bytes(bytemuck::cast_slice(&src32));
        assert_eq!(a.len(), 28);
        assert_eq!(a.into_vec::<f32>(), src32);
        let src128: Vec<u128> = vec![1, u128::MAX, 3];
        let a = AlignedBuf::from_bytes(bytemuck::cast_slice(&src128));
        assert_eq!(a.into_vec::<u128>(), src128);
        assert!(AlignedBuf::zeroed(0).into_vec::<u8>().is_empty());
        assert!(AlignedBuf::try_zeroed(0).is_some_and(|b| b.len() == 0));
        let b = AlignedBuf::try_zeroed(1 << 20).expect("1 MiB");
        assert!(b.len() == 1 << 20 && b.as_bytes().iter().all(|&x| x == 0));
        // More than an address space holds: refused, not an abort.
        assert!(AlignedBuf::try_zeroed(usize::MAX).is_none());
        assert!(AlignedBuf::try_zeroed((1 << 63) + 8).is_none());
    }
}
