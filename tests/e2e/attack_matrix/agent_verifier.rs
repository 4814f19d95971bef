//! Attack-matrix cases: see [`super`].
