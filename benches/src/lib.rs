//! Shared helpers of the OSU-style benchmark programs.
