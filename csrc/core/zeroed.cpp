#include "core/zeroed.hpp"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#define FUSEDAE_HAVE_MMAP 1
#endif

namespace fusedae {

namespace {

// Every block starts with a header one cache line long: the pointer to free
// and the mapping's length (0: the block came from calloc).
constexpr std::size_t kHeader = 64;
struct Header {
  void* base;
  std::size_t mapped;
};

// Blocks this large are mapped directly: their pages are zero and unbacked
// whatever the C allocator's state. glibc's calloc serves blocks below its
// mmap threshold (128 KiB, growing after frees) from the heap, clearing any
// reused memory, which made an untouched 196 KiB buffer of W-mnist's
// workspace resident; from 64 KiB up the page rounding costs at most 6%.
constexpr std::size_t kMapAtLeast = 64 * 1024;

Header* header_of(void* p) {
  return reinterpret_cast<Header*>(static_cast<unsigned char*>(p) - sizeof(Header));
}

}  // namespace

void* zeroed_alloc(std::size_t bytes) {
  if (bytes < 64) bytes = 64;
  if (bytes > SIZE_MAX - 2 * kHeader) throw std::bad_alloc();
#ifdef FUSEDAE_HAVE_MMAP
  if (bytes >= kMapAtLeast) {
    const std::size_t len = bytes + kHeader;
    void* base = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) throw std::bad_alloc();
    void* p = static_cast<unsigned char*>(base) + kHeader;  // base is page-aligned
    *header_of(p) = Header{base, len};
    return p;
  }
#endif
  // calloc's blocks are 16-byte aligned: up to 48 bytes of slack reach the
  // next multiple of 64, and at least 16 hold the header.
  void* base = std::calloc(1, bytes + kHeader);
  if (!base) throw std::bad_alloc();
  const std::uintptr_t start = reinterpret_cast<std::uintptr_t>(base) + sizeof(Header);
  void* p = reinterpret_cast<void*>((start + 63) & ~std::uintptr_t(63));
  *header_of(p) = Header{base, 0};
  return p;
}

void zeroed_free(void* p) {
  if (!p) return;
  const Header h = *header_of(p);
#ifdef FUSEDAE_HAVE_MMAP
  if (h.mapped) {
    munmap(h.base, h.mapped);
    return;
  }
#endif
  std::free(h.base);
}

void zeroed_clear(void* p, std::size_t bytes) {
  // Reading an unbacked page maps the shared zero page, which costs nothing.
  constexpr std::size_t kPage = 4096;
  unsigned char* c = static_cast<unsigned char*>(p);
  for (std::size_t off = 0; off < bytes; off += kPage) {
    const std::size_t n = bytes - off < kPage ? bytes - off : kPage;
    const std::uint64_t* w = reinterpret_cast<const std::uint64_t*>(c + off);
    std::uint64_t any = 0;
    std::size_t i = 0;
    for (; i + 8 <= n; i += 8) any |= w[i / 8];
    for (; i < n; ++i) any |= c[off + i];
    if (any) std::memset(c + off, 0, n);
  }
}

}  // namespace fusedae
