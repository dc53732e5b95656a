// Errors the engine reports. The bindings map each kind to a Python exception:
// InvalidArgument -> ValueError, Busy/BlasMissing -> RuntimeError.
#pragma once
#include <stdexcept>
#include <string>

namespace fusedae {

struct InvalidArgument : std::invalid_argument {
  explicit InvalidArgument(const std::string& what) : std::invalid_argument(what) {}
};

// A network is driven from one thread at a time; a second caller is refused
// rather than allowed to interleave with a step in flight.
struct Busy : std::runtime_error {
  explicit Busy(const std::string& what) : std::runtime_error(what) {}
};

struct BlasMissing : std::runtime_error {
  explicit BlasMissing(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace fusedae
