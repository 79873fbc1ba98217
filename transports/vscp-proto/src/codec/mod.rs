//! Event text codecs.
