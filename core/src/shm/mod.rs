//! What every shmio object that lives in a file shares (the queue, the region): the file
//! itself ([`file`]: names, exclusive creation through an unpublished file, reservation,
//! opening, checked unlink) and the start of its header ([`header`]: the 128-byte line, and
//! the magic / layout version / header size prefix every format begins with and is checked by).

pub(crate) mod file;
pub(crate) mod header;
