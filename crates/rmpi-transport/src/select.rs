//! What a receive or probe matches: a [`Source`] and a [`TagMatch`], each a given value or
//! [`Any`].

use crate::comm::Tag;

/// "Any source" or "any tag" (MPI's `MPI_ANY_SOURCE` / `MPI_ANY_TAG`), for every receive and
/// probe: `world.recv::<u8>(Any, Any)`, `world.probe(0, Any)`.
///
/// ```
/// use rmpi::Any;
/// let got = rmpi::local::run(2, |world| {
///     if world.rank() == 0 {
///         world.send(&[5u16], 1, 42)?;
///         Ok(None)
///     } else {
///         let (v, status) = world.recv::<u16>(Any, Any)?;
///         Ok(Some((v[0], status.source, status.tag)))
///     }
/// })?;
/// assert_eq!(got[1], Some((5, 0, 42)));
/// # Ok::<(), rmpi::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Any;

/// Which sender a receive accepts: a rank of the communicator, or any.
///
/// Every receive takes `impl Into<Source>`: pass a rank (`usize`) or [`Any`]. An `Option<usize>`
/// (`None` for any) also converts, for code written before [`Any`] existed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// Any member of the communicator.
    Any,
    /// This communicator rank.
    Rank(usize),
}

impl Source {
    /// The rank, or `None` for any.
    pub fn rank(self) -> Option<usize> {
        match self {
            Source::Any => None,
            Source::Rank(r) => Some(r),
        }
    }
}

impl From<usize> for Source {
    fn from(r: usize) -> Self {
        Source::Rank(r)
    }
}

impl From<Any> for Source {
    fn from(_: Any) -> Self {
        Source::Any
    }
}

impl From<Option<usize>> for Source {
    fn from(r: Option<usize>) -> Self {
        r.map_or(Source::Any, Source::Rank)
    }
}

/// Which tags a receive accepts: one tag, or any.
///
/// Every receive takes `impl Into<TagMatch>`: pass a [`Tag`] or [`Any`]. An `Option<Tag>`
/// (`None` for any) also converts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TagMatch {
    /// Any tag.
    Any,
    /// Exactly this tag.
    Tag(Tag),
}

impl TagMatch {
    /// The tag, or `None` for any.
    pub fn tag(self) -> Option<Tag> {
        match self {
            TagMatch::Any => None,
            TagMatch::Tag(t) => Some(t),
        }
    }
}

impl From<Tag> for TagMatch {
    fn from(t: Tag) -> Self {
        TagMatch::Tag(t)
    }
}

impl From<Any> for TagMatch {
    fn from(_: Any) -> Self {
        TagMatch::Any
    }
}

impl From<Option<Tag>> for TagMatch {
    fn from(t: Option<Tag>) -> Self {
        t.map_or(TagMatch::Any, TagMatch::Tag)
    }
}
