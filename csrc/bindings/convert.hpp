// Shared by the binding files: NumPy arrays as MatrixViews, option parsing,
// and the one-caller-at-a-time guard.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/errors.hpp"
#include "core/network.hpp"

namespace fusedae {
namespace bindings {

namespace py = pybind11;

inline py::dtype numpy_dtype(DType t) {
  return t == DType::Float32 ? py::dtype::of<float>() : py::dtype::of<double>();
}

// A NumPy array as a MatrixView. Only what Python can say better is checked
// here (the object's type and dtype, as TypeError, and its number of
// dimensions); shape, contiguity, alignment and values are checked by the
// engine's ops themselves (core/network.cpp), whoever calls them. `keep`
// holds the array while the view is in use.
inline MatrixView as_matrix(const py::handle& obj, const char* name, DType dt, py::array* keep) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + ": expected a numpy.ndarray, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  auto a = py::reinterpret_borrow<py::array>(obj);
  // Equivalence, not identity: a memory-mapped or unpickled array may carry
  // its own (equal) dtype object. Equivalence includes the byte order.
  const auto& api = py::detail::npy_api::get();
  if (!api.PyArray_EquivTypes_(a.dtype().ptr(), numpy_dtype(dt).ptr()))
    throw py::type_error(std::string(name) + ": expected dtype " + dtype_name(dt) + ", got " +
                         std::string(py::str(a.dtype())));
  if (a.ndim() != 2)
    throw InvalidArgument(std::string(name) + ": expected a 2-D array, got " +
                          std::to_string(a.ndim()) + "-D");
  const auto item = static_cast<std::int64_t>(a.itemsize());
  MatrixView m;
  m.data = const_cast<void*>(a.data());
  m.rows = a.shape(0);
  m.cols = a.shape(1);
  // A byte stride that is not a whole number of elements is never contiguous.
  m.row_stride = a.strides(0) % item == 0 ? a.strides(0) / item : -1;
  m.col_stride = a.strides(1) % item == 0 ? a.strides(1) / item : -1;
  m.dtype = dt;
  m.writeable = a.writeable();
  *keep = a;
  return m;
}

inline DType parse_dtype(const std::string& s) {
  if (s == "float32") return DType::Float32;
  if (s == "float64") return DType::Float64;
  throw InvalidArgument("dtype: expected 'float32' or 'float64', got '" + s + "'");
}

// The Network constructors' arguments (both engines' bindings take the same).
inline NetworkConfig network_config(std::vector<std::int64_t> sizes,
                                    const std::vector<std::string>& activations,
                                    const std::string& loss, const std::string& dtype,
                                    double weight_decay, int sparsity_layer,
                                    double sparsity_target, double sparsity_weight) {
  NetworkConfig cfg;
  cfg.sizes = std::move(sizes);
  for (const auto& a : activations) cfg.activations.push_back(parse_activation(a));
  cfg.loss = parse_loss(loss);
  cfg.dtype = parse_dtype(dtype);
  cfg.weight_decay = weight_decay;
  cfg.sparsity_layer = sparsity_layer;
  cfg.sparsity_target = sparsity_target;
  cfg.sparsity_weight = sparsity_weight;
  return cfg;
}

// One call at a time per network (or model); the GIL is dropped while it runs.
struct Guard {
  std::unique_lock<std::mutex> lock;
  explicit Guard(std::mutex& mu) : lock(mu, std::try_to_lock) {
    if (!lock.owns_lock())
      throw Busy("this network is being used by another thread; a model trains from one thread "
                 "at a time");
  }
  explicit Guard(Network& net) : Guard(net.mutex()) {}
};

inline OptimizerConfig optimizer_config(const std::string& kind, double lr, double momentum,
                                        double beta1, double beta2, double eps) {
  OptimizerConfig o;
  o.kind = parse_optimizer(kind);
  o.learning_rate = lr;
  o.momentum = momentum;
  o.beta1 = beta1;
  o.beta2 = beta2;
  o.eps = eps;
  o.validate();
  return o;
}

// The VAE and GAN classes (bindings/composites.cpp).
void bind_composites(py::module_& m);

}  // namespace bindings
}  // namespace fusedae
