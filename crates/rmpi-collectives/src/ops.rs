//! Reduction operators: the [`Op`] trait, the built-in operators and user closures.
//!
//! An operator combines two equally long slices element by element. Collectives only ever call
//! [`Op::combine`] (`inout = inout ∘ rhs`) and [`Op::combine_rev`] (`inout = lhs ∘ inout`), so the
//! left operand always covers lower ranks than the right one. Built-in operators are zero-sized
//! types whose loops are monomorphized per element type (no dynamic dispatch per element), so
//! LLVM vectorizes them.

use bytemuck::{Pod, Zeroable};

/// A reduction operator on slices of `T`.
///
/// The result of a reduction over ranks `0..p` is `x0 ∘ x1 ∘ ... ∘ x(p-1)`; for a
/// non-commutative operator the collectives apply it in exactly that rank order (with some
/// grouping, so the operator must be associative). A commutative operator may see its operands
/// in any order.
pub trait Op<T>: Sync {
    /// `inout[i] = inout[i] ∘ rhs[i]`: `inout` holds the lower ranks' partial result.
    fn combine(&self, inout: &mut [T], rhs: &[T]);

    /// `inout[i] = lhs[i] ∘ inout[i]`: `lhs` holds the lower ranks' partial result.
    fn combine_rev(&self, lhs: &[T], inout: &mut [T]);

    /// Whether `a ∘ b == b ∘ a`, which lets the collectives pick order-free algorithms.
    fn commutative(&self) -> bool;
}

/// An elementwise binary function; the built-in operators are made of these.
trait Binary<T>: Sync {
    fn apply(a: T, b: T) -> T;
}

/// The two directions of an elementwise operator as plain loops (vectorized by LLVM).
#[inline]
fn zip_apply<T: Copy, B: Binary<T>>(inout: &mut [T], rhs: &[T]) {
    let n = inout.len().min(rhs.len());
    let (inout, rhs) = (&mut inout[..n], &rhs[..n]);
    for (x, y) in inout.iter_mut().zip(rhs) {
        *x = B::apply(*x, *y);
    }
}

#[inline]
fn zip_apply_rev<T: Copy, B: Binary<T>>(lhs: &[T], inout: &mut [T]) {
    let n = inout.len().min(lhs.len());
    let (inout, lhs) = (&mut inout[..n], &lhs[..n]);
    for (x, y) in inout.iter_mut().zip(lhs) {
        *x = B::apply(*y, *x);
    }
}

/// Numbers that can be added and multiplied (integers wrap on overflow, like C).
pub trait Arith: Pod {
    /// `a + b`.
    fn add(a: Self, b: Self) -> Self;
    /// `a * b`.
    fn mul(a: Self, b: Self) -> Self;
}

/// Numbers with an order for [`Min`]/[`Max`] (for floats: a NaN operand on the right is
/// ignored, one on the left is kept).
pub trait Ordered: Pod {
    /// The smaller of two values (`a` on a tie).
    fn min_of(a: Self, b: Self) -> Self;
    /// The larger of two values (`a` on a tie).
    fn max_of(a: Self, b: Self) -> Self;
}

/// Integers, for the bitwise and logical operators (nonzero is true; logical results are 0/1).
pub trait Bits: Pod {
    /// `a & b`.
    fn and(a: Self, b: Self) -> Self;
    /// `a | b`.
    fn or(a: Self, b: Self) -> Self;
    /// `a ^ b`.
    fn xor(a: Self, b: Self) -> Self;
    /// Logical and: 1 when both are nonzero, else 0.
    fn land(a: Self, b: Self) -> Self;
    /// Logical or: 1 when either is nonzero, else 0.
    fn lor(a: Self, b: Self) -> Self;
    /// Logical exclusive or: 1 when exactly one is nonzero, else 0.
    fn lxor(a: Self, b: Self) -> Self;
}

macro_rules! int_traits {
    ($($t:ty),*) => {$(
        impl Arith for $t {
            #[inline(always)]
            fn add(a: Self, b: Self) -> Self { a.wrapping_add(b) }
            #[inline(always)]
            fn mul(a: Self, b: Self) -> Self { a.wrapping_mul(b) }
        }
        impl Ordered for $t {
            #[inline(always)]
            fn min_of(a: Self, b: Self) -> Self { if b < a { b } else { a } }
            #[inline(always)]
            fn max_of(a: Self, b: Self) -> Self { if b > a { b } else { a } }
        }
        impl Bits for $t {
            #[inline(always)]
            fn and(a: Self, b: Self) -> Self { a & b }
            #[inline(always)]
            fn or(a: Self, b: Self) -> Self { a | b }
            #[inline(always)]
            fn xor(a: Self, b: Self) -> Self { a ^ b }
            #[inline(always)]
            fn land(a: Self, b: Self) -> Self { ((a != 0) & (b != 0)) as $t }
            #[inline(always)]
            fn lor(a: Self, b: Self) -> Self { ((a != 0) | (b != 0)) as $t }
            #[inline(always)]
            fn lxor(a: Self, b: Self) -> Self { ((a != 0) ^ (b != 0)) as $t }
        }
    )*};
}
int_traits!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

macro_rules! float_traits {
    ($($t:ty),*) => {$(
        impl Arith for $t {
            #[inline(always)]
            fn add(a: Self, b: Self) -> Self { a + b }
            #[inline(always)]
            fn mul(a: Self, b: Self) -> Self { a * b }
        }
        impl Ordered for $t {
            #[inline(always)]
            fn min_of(a: Self, b: Self) -> Self { if b < a { b } else { a } }
            #[inline(always)]
            fn max_of(a: Self, b: Self) -> Self { if b > a { b } else { a } }
        }
    )*};
}
float_traits!(f32, f64);

macro_rules! builtin_op {
    ($(#[$doc:meta])* $name:ident, $bound:ident, $f:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
        pub struct $name;

        impl<T: $bound> Binary<T> for $name {
            #[inline(always)]
            fn apply(a: T, b: T) -> T { T::$f(a, b) }
        }

        impl<T: $bound> Op<T> for $name {
            fn combine(&self, inout: &mut [T], rhs: &[T]) {
                zip_apply::<T, $name>(inout, rhs)
            }
            fn combine_rev(&self, lhs: &[T], inout: &mut [T]) {
                zip_apply_rev::<T, $name>(lhs, inout)
            }
            fn commutative(&self) -> bool { true }
        }
    };
}

builtin_op!(
    /// Sum (MPI_SUM); integers wrap on overflow.
    Sum, Arith, add
);
builtin_op!(
    /// Product (MPI_PROD); integers wrap on overflow.
    Prod, Arith, mul
);
builtin_op!(
    /// Minimum (MPI_MIN).
    Min, Ordered, min_of
);
builtin_op!(
    /// Maximum (MPI_MAX).
    Max, Ordered, max_of
);
builtin_op!(
    /// Bitwise and (MPI_BAND).
    BAnd, Bits, and
);
builtin_op!(
    /// Bitwise or (MPI_BOR).
    BOr, Bits, or
);
builtin_op!(
    /// Bitwise exclusive or (MPI_BXOR).
    BXor, Bits, xor
);
builtin_op!(
    /// Logical and (MPI_LAND): nonzero is true, the result is 0 or 1.
    LAnd, Bits, land
);
builtin_op!(
    /// Logical or (MPI_LOR): nonzero is true, the result is 0 or 1.
    LOr, Bits, lor
);
builtin_op!(
    /// Logical exclusive or (MPI_LXOR): nonzero is true, the result is 0 or 1.
    LXor, Bits, lxor
);

/// Value types that can be paired with an index in [`Loc`] (the index has the value's size, so
/// the pair has no padding).
pub trait LocValue: Pod + PartialOrd {
    /// The index type paired with this value type.
    type Index: Pod + Ord;
}

macro_rules! loc_value {
    ($($v:ty => $i:ty),*) => {$(
        impl LocValue for $v {
            type Index = $i;
        }
    )*};
}
loc_value!(f64 => u64, f32 => u32, i64 => u64, u64 => u64, i32 => u32, u32 => u32);

/// A value with its location (usually a rank), for [`MinLoc`] and [`MaxLoc`] (MPI's
/// `MPI_DOUBLE_INT` and friends).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Loc<V: LocValue> {
    /// The value compared.
    pub value: V,
    /// Where it came from; the smaller index wins a tie.
    pub index: V::Index,
}

impl<V: LocValue> Loc<V> {
    /// A value at an index.
    pub fn new(value: V, index: V::Index) -> Self {
        Loc { value, index }
    }
}

// SAFETY: `Loc` is `repr(C)` with two `Pod` fields of the same size and alignment (see the
// `LocValue` impls: 8+8 or 4+4 bytes), so it has no padding, and every bit pattern is valid.
unsafe impl<V: LocValue> Zeroable for Loc<V> {}
// SAFETY: as above; `V` and `V::Index` are `Pod`, hence `Copy + 'static`.
unsafe impl<V: LocValue> Pod for Loc<V> {}

/// Minimum with location (MPI_MINLOC): the smallest value, and the smallest index among equals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MinLoc;

/// Maximum with location (MPI_MAXLOC): the largest value, and the smallest index among equals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MaxLoc;

impl<V: LocValue> Binary<Loc<V>> for MinLoc {
    #[inline(always)]
    fn apply(a: Loc<V>, b: Loc<V>) -> Loc<V> {
        if b.value < a.value || (b.value == a.value && b.index < a.index) {
            b
        } else {
            a
        }
    }
}

impl<V: LocValue> Binary<Loc<V>> for MaxLoc {
    #[inline(always)]
    fn apply(a: Loc<V>, b: Loc<V>) -> Loc<V> {
        if b.value > a.value || (b.value == a.value && b.index < a.index) {
            b
        } else {
            a
        }
    }
}

macro_rules! loc_op {
    ($name:ident) => {
        impl<V: LocValue> Op<Loc<V>> for $name {
            fn combine(&self, inout: &mut [Loc<V>], rhs: &[Loc<V>]) {
                zip_apply::<Loc<V>, $name>(inout, rhs)
            }
            fn combine_rev(&self, lhs: &[Loc<V>], inout: &mut [Loc<V>]) {
                zip_apply_rev::<Loc<V>, $name>(lhs, inout)
            }
            fn commutative(&self) -> bool {
                true
            }
        }
    };
}
loc_op!(MinLoc);
loc_op!(MaxLoc);

/// An operator from a closure `f(inout, rhs)` that computes `inout = inout ∘ rhs` elementwise.
///
/// ```
/// use rmpi::collectives::{Op, UserOp};
/// // 2x2 matrix product, stored as [a, b, c, d]: associative, not commutative.
/// let matmul = UserOp::new(|x: &mut [[i64; 4]], y: &[[i64; 4]]| {
///     for (a, b) in x.iter_mut().zip(y) {
///         *a = [a[0] * b[0] + a[1] * b[2], a[0] * b[1] + a[1] * b[3],
///               a[2] * b[0] + a[3] * b[2], a[2] * b[1] + a[3] * b[3]];
///     }
/// }, false);
/// let mut m = [[1, 1, 0, 1]];
/// matmul.combine(&mut m, &[[1, 0, 1, 1]]);
/// assert_eq!(m, [[2, 1, 1, 1]]);
/// assert!(!matmul.commutative());
/// ```
pub struct UserOp<F> {
    f: F,
    commutative: bool,
}

impl<F> std::fmt::Debug for UserOp<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserOp").field("commutative", &self.commutative).finish()
    }
}

impl<F> UserOp<F> {
    /// An operator from `f`; say whether it is commutative (non-commutative ones are applied in
    /// rank order, with algorithms that allow it).
    pub fn new<T>(f: F, commutative: bool) -> Self
    where
        F: Fn(&mut [T], &[T]) + Sync,
    {
        UserOp { f, commutative }
    }
}

impl<T: Pod, F: Fn(&mut [T], &[T]) + Sync> Op<T> for UserOp<F> {
    fn combine(&self, inout: &mut [T], rhs: &[T]) {
        (self.f)(inout, rhs)
    }

    fn combine_rev(&self, lhs: &[T], inout: &mut [T]) {
        let mut tmp = lhs.to_vec();
        (self.f)(&mut tmp, inout);
        inout.copy_from_slice(&tmp);
    }

    fn commutative(&self) -> bool {
        self.commutative
    }
}

impl<T, O: Op<T>> Op<T> for &O {
    fn combine(&self, inout: &mut [T], rhs: &[T]) {
        (**self).combine(inout, rhs)
    }
    fn combine_rev(&self, lhs: &[T], inout: &mut [T]) {
        (**self).combine_rev(lhs, inout)
    }
    fn commutative(&self) -> bool {
        (**self).commutative()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_both_directions() {
        let mut a = [1i32, 5, -3];
        Op::<i32>::combine(&Sum, &mut a, &[2, 2, 2]);
        assert_eq!(a, [3, 7, -1]);
        let mut a = [1.0f64, 5.0];
        Op::<f64>::combine_rev(&Max, &[4.0, 2.0], &mut a);
        assert_eq!(a, [4.0, 5.0]);
        let mut a = [i32::MAX];
        Op::<i32>::combine(&Sum, &mut a, &[1]);
        assert_eq!(a, [i32::MIN]);
        let mut a = [0b1100u8, 0, 3];
        Op::<u8>::combine(&BXor, &mut a, &[0b1010, 0, 0]);
        assert_eq!(a, [0b0110, 0, 3]);
        let mut a = [0i64, 2, 7];
        Op::<i64>::combine(&LAnd, &mut a, &[5, 3, 0]);
        assert_eq!(a, [0, 1, 0]);
        let mut a = [0i64, 2, 0];
        Op::<i64>::combine(&LOr, &mut a, &[5, 0, 0]);
        assert_eq!(a, [1, 1, 0]);
        let mut a = [Loc::new(1.0f64, 3u64), Loc::new(2.0, 1)];
        MinLoc.combine(&mut a, &[Loc::new(1.0, 2), Loc::new(3.0, 0)]);
        assert_eq!(a, [Loc::new(1.0, 2), Loc::new(2.0, 1)]);
        let mut a = [Loc::new(1i32, 3u32)];
        MaxLoc.combine_rev(&[Loc::new(1, 0)], &mut a);
        assert_eq!(a, [Loc::new(1, 0)]);
    }

    #[test]
    fn user_op_rev_keeps_order() {
        let concat = UserOp::new(
            |a: &mut [u64], b: &[u64]| {
                for (x, y) in a.iter_mut().zip(b) {
                    *x = *x * 10 + *y;
                }
            },
            false,
        );
        let mut v = [2u64];
        concat.combine_rev(&[1], &mut v);
        assert_eq!(v, [12]);
    }
}
