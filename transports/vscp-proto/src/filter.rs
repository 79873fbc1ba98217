//! Filter/mask model and matching rule (events.md §8).

use crate::guid::Guid;

/// A receive filter. A mask bit 1 means "this bit must equal the filter bit", 0 means
/// "don't care"; the all-zero value (the default) passes everything. Priorities are the 0..7
/// value, not head bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Filter {
    pub filter_priority: u8,
    pub mask_priority: u8,
    pub filter_class: u16,
    pub mask_class: u16,
    pub filter_type: u16,
    pub mask_type: u16,
    pub filter_guid: Guid,
    pub mask_guid: Guid,
}
