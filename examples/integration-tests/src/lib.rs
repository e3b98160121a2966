//! Nothing here: the suite is in `tests/`.
