// Zero-filled, 64-byte aligned buffers whose pages cost no memory until they
// are written.
//
// A network reserves every buffer a call could need up front (parameters,
// gradients, optimizer state, the row workspace sized for the densest batch)
// so that no step allocates. Many of those bytes are never written by a given
// fit: SGD keeps no optimizer state, a fit without noise no second copy of its
// batch, and the nonzero lists of an MNIST-like batch fill a fifth of their
// reservation. Zeroing them with memset would make every page resident; fresh
// anonymous pages are zero already and stay unbacked until first written.
#pragma once

#include <cstddef>

namespace fusedae {

// `bytes` zero bytes (at least 64), 64-byte aligned; throws std::bad_alloc.
void* zeroed_alloc(std::size_t bytes);
// Frees what zeroed_alloc returned; null is ignored.
void zeroed_free(void* p);
// Sets `bytes` bytes at p (from zeroed_alloc) to zero, writing only the pages
// that hold a nonzero byte, so that untouched pages stay unbacked.
void zeroed_clear(void* p, std::size_t bytes);

}  // namespace fusedae
