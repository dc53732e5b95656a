// fusedae._engine_cuda: the CUDA backend's Network for Python, a module of
// its own so that the CPU package never needs CUDA libraries at run time.
// Compiled by the host compiler; links the CUDA objects (csrc/cuda), the
// CUDA runtime statically and cuBLAS as libcublas.so.13 (which the Python
// side preloads from the nvidia-cublas wheel when it is not on the loader's
// path).
//
// Device data is passed as raw device addresses (ints: CuPy's
// `a.data.ptr`, PyTorch's `t.data_ptr()`) with the row count, and the
// caller's stream as an int (a cudaStream_t; 0 is the legacy default
// stream). Arguments are parsed and validated like _engine.Network's; every
// op releases the GIL and holds the network's lock, so a second thread
// calling the same network is refused (BusyError) rather than interleaved.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bindings/convert.hpp"
#include "core/errors.hpp"
#include "core/limits.hpp"
#include "core/network.hpp"
#include "cuda/cuda_check.hpp"
#include "cuda/device.hpp"
#include "cuda/network_cuda.hpp"

namespace py = pybind11;
using namespace fusedae;
using namespace fusedae::bindings;
using fusedae::cuda::CudaNetwork;

namespace {

cudaStream_t as_stream(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

py::array host_vector(const CudaNetwork& n) {
  return py::array(numpy_dtype(n.dtype()),
                   std::vector<py::ssize_t>{static_cast<py::ssize_t>(n.n_params())});
}

// A 1-D host array of n_params elements in the network's dtype (converted
// if it is another real dtype, as assigning into the CPU's params view does).
py::array host_input(const CudaNetwork& n, py::handle obj, const char* name) {
  py::array a;
  if (n.dtype() == DType::Float32)
    a = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(obj);
  else
    a = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(obj);
  if (!a) {
    PyErr_Clear();
    throw py::type_error(std::string(name) + ": expected an array of real numbers");
  }
  if (a.ndim() != 1 || a.shape(0) != n.n_params())
    throw InvalidArgument(std::string(name) + ": expected a 1-D array of " +
                          std::to_string(n.n_params()) + " elements");
  return a;
}

void check_k(int k) {
  if (k < 0 || k > 1) throw InvalidArgument("k: expected 0 (momentum / Adam m) or 1 (Adam v)");
}

void check_layer(const CudaNetwork& n, int l) {
  if (l < 1 || l > n.n_layers()) throw InvalidArgument("layer: out of range");
}

}  // namespace

PYBIND11_MODULE(_engine_cuda, m) {
  m.doc() = "fusedae's compiled engine on CUDA GPUs: fused dense training steps on device "
            "memory (cuBLAS GEMMs, fused epilogues, CUDA graphs).";

  m.def("device_count", &cuda::device_count,
        "Number of usable CUDA GPUs; 0 when there is no driver or no GPU (never raises).");
  m.def("device_name", &cuda::device_name, py::arg("i"), "The name of CUDA device `i`.");
  m.def("runtime_version", &cuda::runtime_version,
        "Version of the CUDA runtime built in (1000·major + 10·minor, e.g. 13000).");
  m.attr("cuda_architectures") = FUSEDAE_CUDA_ARCHS;

  py::class_<CudaNetwork>(m, "Network")
      .def(py::init([](std::vector<std::int64_t> sizes, std::vector<std::string> activations,
                       const std::string& loss, const std::string& dtype, double weight_decay,
                       int sparsity_layer, double sparsity_target, double sparsity_weight,
                       int device_id) {
             NetworkConfig cfg = network_config(std::move(sizes), activations, loss, dtype,
                                                weight_decay, sparsity_layer, sparsity_target,
                                                sparsity_weight);
             cfg.validate();  // with the GIL: nothing touches the GPU before the arguments pass
             py::gil_scoped_release nogil;  // the first call on a device creates its context
             return std::make_unique<CudaNetwork>(cfg, device_id);
           }),
           py::arg("sizes"), py::arg("activations"), py::arg("loss") = "squared_error",
           py::arg("dtype") = "float32", py::arg("weight_decay") = 0.0,
           py::arg("sparsity_layer") = 0, py::arg("sparsity_target") = 0.05,
           py::arg("sparsity_weight") = 0.0, py::arg("device_id") = 0)
      .def_property_readonly("isa", [](const CudaNetwork& n) { return n.isa(); })
      .def_property_readonly("dtype", [](const CudaNetwork& n) { return dtype_name(n.dtype()); })
      .def_property_readonly("sizes", [](const CudaNetwork& n) { return n.config().sizes; })
      .def_property_readonly("n_params", &CudaNetwork::n_params)
      .def_property_readonly("device_id", &CudaNetwork::device_id)
      .def_property_readonly("params_ptr", [](const CudaNetwork& n) {
        return reinterpret_cast<std::uintptr_t>(n.params());
      }, "Device address of the flat parameters [W1 (n0×n1, C order), b1, W2, b2, ...].")
      .def_property_readonly("grads_ptr", [](const CudaNetwork& n) {
        return reinterpret_cast<std::uintptr_t>(n.grads());
      }, "Device address of the gradient of the last loss_and_gradient (with λW) or "
         "train_step (without it).")
      .def("state_ptr", [](const CudaNetwork& n, int k) {
        check_k(k);
        return reinterpret_cast<std::uintptr_t>(n.state(k));
      }, py::arg("k"), "Device address of optimizer state k (0: momentum / Adam m, 1: Adam v).")
      .def("weight_offset", [](const CudaNetwork& n, int l) {
        check_layer(n, l);
        return n.weight_offset(l);
      }, py::arg("l"))
      .def("bias_offset", [](const CudaNetwork& n, int l) {
        check_layer(n, l);
        return n.bias_offset(l);
      }, py::arg("l"))
      .def_property("seed", [](const CudaNetwork& n) { return n.seed; },
                    [](CudaNetwork& n, std::uint64_t v) {
                      Guard g(n.mutex());
                      n.seed = v;
                    })
      .def_property("optimizer_steps", [](const CudaNetwork& n) { return n.optimizer_steps; },
                    [](CudaNetwork& n, std::int64_t v) {
                      check_range("optimizer_steps", v, 0, kMaxCounter);
                      Guard g(n.mutex());
                      n.optimizer_steps = v;
                    })
      .def_property("noise_steps", [](const CudaNetwork& n) { return n.noise_steps; },
                    [](CudaNetwork& n, std::int64_t v) {
                      check_range("noise_steps", v, 0, kMaxCounter);
                      Guard g(n.mutex());
                      n.noise_steps = v;
                    })
      .def_property("epochs", [](const CudaNetwork& n) { return n.epochs; },
                    [](CudaNetwork& n, std::int64_t v) {
                      check_range("epochs", v, 0, kMaxCounter);
                      Guard g(n.mutex());
                      n.epochs = v;
                    })
      .def("get_params", [](CudaNetwork& n) {
        py::array out = host_vector(n);
        void* dst = out.mutable_data();  // with the GIL: NumPy's API
        Guard g(n.mutex());
        {
          py::gil_scoped_release nogil;
          n.get_params(dst);
        }
        return out;
      }, "A host copy of the parameters.")
      .def("set_params", [](CudaNetwork& n, py::handle values) {
        py::array a = host_input(n, values, "params");
        const void* src = a.data();
        Guard g(n.mutex());
        py::gil_scoped_release nogil;
        n.set_params(src);
      }, py::arg("params"))
      .def("get_optimizer_state", [](CudaNetwork& n, int k) {
        check_k(k);
        py::array out = host_vector(n);
        void* dst = out.mutable_data();
        Guard g(n.mutex());
        {
          py::gil_scoped_release nogil;
          n.get_state(k, dst);
        }
        return out;
      }, py::arg("k"))
      .def("set_optimizer_state", [](CudaNetwork& n, int k, py::handle values) {
        check_k(k);
        py::array a = host_input(n, values, "state");
        const void* src = a.data();
        Guard g(n.mutex());
        py::gil_scoped_release nogil;
        n.set_state(k, src);
      }, py::arg("k"), py::arg("state"))
      .def("set_optimizer", [](CudaNetwork& n, const std::string& kind, double lr, double momentum,
                               double beta1, double beta2, double eps) {
             const OptimizerConfig o = optimizer_config(kind, lr, momentum, beta1, beta2, eps);
             Guard g(n.mutex());
             py::gil_scoped_release nogil;
             n.set_optimizer(o);
           },
           py::arg("kind"), py::arg("learning_rate"), py::arg("momentum") = 0.9,
           py::arg("beta1") = 0.9, py::arg("beta2") = 0.999, py::arg("eps") = 1e-8)
      .def("init_params", [](CudaNetwork& n, std::uint64_t seed) {
        Guard g(n.mutex());
        py::gil_scoped_release nogil;
        n.init_params(seed);
      }, py::arg("seed"))
      .def("forward", [](CudaNetwork& n, std::uintptr_t x, std::int64_t rows, int start, int stop,
                         std::uintptr_t out, std::uintptr_t stream) {
        if (stop < 0) stop += n.n_layers() + 1;  // -1: the output layer
        Guard g(n.mutex());
        py::gil_scoped_release nogil;
        n.forward(x, rows, start, stop, out, as_stream(stream));
      }, py::arg("x_ptr"), py::arg("rows"), py::arg("start"), py::arg("stop"), py::arg("out_ptr"),
         py::arg("stream") = 0,
         "Output of layer `stop` (-1: the last) for `rows` rows of layer `start`'s output at "
         "x_ptr (0: the inputs), written to out_ptr. Returns once the work is queued on "
         "`stream` (after a NaN/infinity check of the input, which waits).")
      .def("loss_and_gradient", [](CudaNetwork& n, std::uintptr_t x, std::uintptr_t y,
                                   std::int64_t rows, std::uintptr_t stream) {
        Guard g(n.mutex());
        py::gil_scoped_release nogil;
        return n.loss_and_gradient(x, y, rows, as_stream(stream));
      }, py::arg("x_ptr"), py::arg("y_ptr"), py::arg("rows"), py::arg("stream") = 0,
         "Full-batch loss; the full gradient (with λW) is left in the grads buffer.")
      .def("train_step", [](CudaNetwork& n, std::uintptr_t x, std::uintptr_t y, std::int64_t rows,
                            std::uintptr_t stream) {
        Guard g(n.mutex());
        py::gil_scoped_release nogil;
        return n.train_step(x, y, rows, as_stream(stream));
      }, py::arg("x_ptr"), py::arg("y_ptr"), py::arg("rows"), py::arg("stream") = 0,
         "One optimizer step on this batch; returns the loss before the update. A non-finite "
         "loss leaves parameters and optimizer state untouched.")
      .def("fit_epoch", [](CudaNetwork& n, std::uintptr_t x, std::uintptr_t y, std::int64_t rows,
                           std::int64_t batch_size, bool shuffle, const std::string& noise,
                           double noise_level, std::uintptr_t stream) {
        EpochOptions o;
        o.batch_size = batch_size;
        o.shuffle = shuffle;
        o.noise = parse_noise(noise);
        o.noise_level = noise_level;
        Guard g(n.mutex());
        EpochResult r;
        {
          py::gil_scoped_release nogil;
          r = n.fit_epoch(x, y, rows, o, as_stream(stream));
        }
        return py::make_tuple(r.mean_loss, r.steps, r.diverged);
      }, py::arg("x_ptr"), py::arg("y_ptr"), py::arg("rows"), py::arg("batch_size") = 64,
         py::arg("shuffle") = true, py::arg("noise") = "none", py::arg("noise_level") = 0.0,
         py::arg("stream") = 0,
         "One epoch (shuffle, minibatches, noise, steps) on device data; y_ptr 0: Y = X. "
         "Returns (mean_loss, steps, diverged).");
  void register_composites(py::module_&); register_composites(m);  // bindings/cuda_composites.cpp

  // Module-local: the CPU module registers translators for the same C++
  // names, and each module's exceptions must become its own Python classes.
  py::register_local_exception<Busy>(m, "BusyError", PyExc_RuntimeError);
  py::register_local_exception<cuda::CudaError>(m, "CudaError", PyExc_RuntimeError);
  py::register_local_exception<cuda::OutOfMemory>(m, "OutOfMemoryError", PyExc_MemoryError);
}
