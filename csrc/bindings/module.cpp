// The pybind11 surface of the engine. It trusts nothing: every array is
// checked for type, dtype, shape, contiguity and finite values here, so the
// kernels only ever see what they were written for, whoever calls them.
// The GIL is released around every kernel; a network refuses a second caller
// while a call is in flight.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <string>

#include "bindings/convert.hpp"
#include "core/errors.hpp"
#include "core/limits.hpp"
#include "core/network.hpp"
#include "core/philox.hpp"
#include "cpu/blas.hpp"
#include "cpu/thread_pool.hpp"

namespace py = pybind11;
using namespace fusedae;
using namespace fusedae::bindings;

namespace {

// Runs `op` on an (X, Y) batch with the GIL released; the op checks both.
double on_batch(Network& n, py::handle x, py::handle y,
                double (Network::*op)(const MatrixView&, const MatrixView&)) {
  py::array xa, ya;
  const MatrixView xm = as_matrix(x, "X", n.dtype(), &xa);
  const MatrixView ym = y.is(x) ? xm : as_matrix(y, "Y", n.dtype(), &ya);
  Guard g(n);
  py::gil_scoped_release nogil;
  return (n.*op)(xm, ym);
}

py::array param_view(py::object self, void* data, std::int64_t n, DType dt, bool writeable) {
  py::array a(numpy_dtype(dt), {n}, {static_cast<std::int64_t>(dtype_size(dt))}, data, self);
  if (!writeable) py::detail::array_proxy(a.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return a;
}

}  // namespace

PYBIND11_MODULE(_engine, m) {
  m.doc() = "fusedae's compiled engine: fused dense training steps (CPU).";

  m.def("load_blas", &blas::load, py::arg("path"),
        "Open the BLAS shared library at `path` (scipy-openblas32's).");
  m.def("blas_loaded", &blas::loaded);
  m.def("blas_corename", &blas::corename, "The kernel family OpenBLAS chose for this CPU.");
  m.def("set_num_threads", [](std::int64_t n) {
    if (n < 1 || n > kMaxThreads)
      throw InvalidArgument("n_threads: expected an integer in [1, " + std::to_string(kMaxThreads) +
                            "], got " + std::to_string(n));
    py::gil_scoped_release nogil;  // waits for a step in flight on another thread
    ThreadPool::instance().set_size(static_cast<int>(n));
  }, py::arg("n"), "Threads the engine uses (its own pool; OpenBLAS runs inside it).");
  m.def("get_num_threads", [] { return ThreadPool::instance().size(); });
  m.attr("max_threads") = kMaxThreads;  // set_num_threads' upper bound
  m.def("supported_isas", &supported_cpu_isas, "Kernel variants this CPU runs, best first.");
  m.def("preferred_blas_coretype", &preferred_blas_coretype,
        "OpenBLAS core type to ask for on this CPU ('' = OpenBLAS's own choice); measures the "
        "256- and 512-bit FMA rates (a few milliseconds).");

  m.def("fma_rates", [] {
    py::dict out;
    for (const auto& [bits, rate] : fma_rates()) out[py::int_(bits)] = rate;
    return out;
  }, "Single-precision flop/s of one core with 256- and 512-bit FMAs, measured on the calling "
     "thread ({bits: flop/s}; a few milliseconds). The CPU's FMA ceiling per core.");

  m.def("philox4x32", [](py::array_t<std::uint32_t, py::array::c_style | py::array::forcecast> ctr,
                         std::uint64_t seed) {
    if (ctr.ndim() != 2 || ctr.shape(1) != 4)
      throw InvalidArgument("counter: expected shape (n, 4)");
    py::array_t<std::uint32_t> out({ctr.shape(0), py::ssize_t(4)});
    auto in = ctr.unchecked<2>();
    auto o = out.mutable_unchecked<2>();
    for (py::ssize_t i = 0; i < ctr.shape(0); ++i) {
      philox::U4 c{{in(i, 0), in(i, 1), in(i, 2), in(i, 3)}};
      const philox::U4 r = philox::philox4x32_10(c, static_cast<std::uint32_t>(seed),
                                                 static_cast<std::uint32_t>(seed >> 32));
      for (int k = 0; k < 4; ++k) o(i, k) = r.v[k];
    }
    return out;
  }, py::arg("counter"), py::arg("seed"),
     "Philox4x32-10 of each counter row under key (seed low 32, seed high 32).");

  m.def("own_gemm", [](py::array_t<float> a_in, py::array_t<float> b_in,
                       py::array_t<float, py::array::c_style | py::array::forcecast> c,
                       bool trans_a, bool trans_b, float alpha, float beta) -> py::object {
    if (a_in.ndim() != 2 || b_in.ndim() != 2 || c.ndim() != 2)
      throw InvalidArgument("a, b, c: expected 2-D arrays");
    // A view of whole rows with a longer stride (x[:, j0:j1]) is passed as it
    // is, its row stride the leading dimension, as a step passes a block of a
    // wider matrix; any other layout is copied to C order first.
    const auto rows_of = [](const py::array_t<float>& x) -> py::array_t<float> {
      const py::ssize_t f = sizeof(float);
      if (x.strides(1) == f && x.strides(0) > 0 && x.strides(0) % f == 0 &&
          x.strides(0) >= x.shape(1) * f)
        return x;
      return py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(x);
    };
    const py::array_t<float> a = rows_of(a_in), b = rows_of(b_in);
    const py::ssize_t lda = a.strides(0) / static_cast<py::ssize_t>(sizeof(float));
    const py::ssize_t ldb = b.strides(0) / static_cast<py::ssize_t>(sizeof(float));
    const py::ssize_t m = trans_a ? a.shape(1) : a.shape(0), k = trans_a ? a.shape(0) : a.shape(1);
    const py::ssize_t kb = trans_b ? b.shape(1) : b.shape(0), n = trans_b ? b.shape(0) : b.shape(1);
    if (kb != k) throw InvalidArgument("b: expected op(b) with as many rows as op(a) has columns");
    if (c.shape(0) != m || c.shape(1) != n)
      throw InvalidArgument("c: expected shape (" + std::to_string(m) + ", " + std::to_string(n) + ")");
    const py::ssize_t limit = std::numeric_limits<int>::max();
    if (m < 1 || n < 1 || k < 1 || a.shape(0) > limit || lda > limit || b.shape(0) > limit ||
        ldb > limit)
      throw InvalidArgument("a, b: expected dimensions from 1 to 2^31-1");
    py::array_t<float> out({m, n});
    std::memcpy(out.mutable_data(), c.data(), sizeof(float) * static_cast<std::size_t>(m * n));
    bool done;
    {
      py::gil_scoped_release release;
      done = own_gemm_f32(trans_a, trans_b, static_cast<int>(m), static_cast<int>(n),
                          static_cast<int>(k), alpha, a.data(), static_cast<int>(lda),
                          b.data(), static_cast<int>(ldb), beta, out.mutable_data(),
                          static_cast<int>(n));
    }
    if (!done) return py::none();
    return std::move(out);
  }, py::arg("a"), py::arg("b"), py::arg("c"), py::arg("trans_a") = false,
     py::arg("trans_b") = false, py::arg("alpha") = 1.0f, py::arg("beta") = 0.0f,
     "alpha·op(a)·op(b) + beta·c in float32 by the engine's own AVX-512 GEMM (the kernel a "
     "float32 step uses for its dense products on AVX-512), for its tests; None where this CPU "
     "has no AVX-512.");

  py::class_<Network>(m, "Network")
      .def(py::init([](std::vector<std::int64_t> sizes, std::vector<std::string> activations,
                       const std::string& loss, const std::string& dtype, double weight_decay,
                       int sparsity_layer, double sparsity_target, double sparsity_weight,
                       const std::string& isa) {
             NetworkConfig cfg = network_config(std::move(sizes), activations, loss, dtype,
                                                weight_decay, sparsity_layer, sparsity_target,
                                                sparsity_weight);
             return make_cpu_network(cfg, isa);
           }),
           py::arg("sizes"), py::arg("activations"), py::arg("loss") = "squared_error",
           py::arg("dtype") = "float32", py::arg("weight_decay") = 0.0,
           py::arg("sparsity_layer") = 0, py::arg("sparsity_target") = 0.05,
           py::arg("sparsity_weight") = 0.0, py::arg("isa") = "auto")
      .def_property_readonly("isa", &Network::isa)
      .def_property_readonly("dtype", [](const Network& n) { return dtype_name(n.dtype()); })
      .def_property_readonly("sizes", [](const Network& n) { return n.config().sizes; })
      .def_property_readonly("n_params", &Network::n_params)
      .def("weight_offset", [](const Network& n, int l) {
        if (l < 1 || l > n.config().n_layers()) throw InvalidArgument("layer: out of range");
        return n.weight_offset(l);
      })
      .def("bias_offset", [](const Network& n, int l) {
        if (l < 1 || l > n.config().n_layers()) throw InvalidArgument("layer: out of range");
        return n.bias_offset(l);
      })
      .def_property_readonly("params", [](py::object self) {
        auto& n = self.cast<Network&>();
        return param_view(self, n.params(), n.n_params(), n.dtype(), true);
      }, "All parameters, one flat writable view: [W1 (n0×n1, C order), b1, W2, b2, ...].")
      .def_property_readonly("grads", [](py::object self) {
        auto& n = self.cast<Network&>();
        return param_view(self, n.grads(), n.n_params(), n.dtype(), false);
      }, "Gradient of the last loss_and_gradient (with λW), or of the last momentum or Adam "
         "step (without it). SGD steps fold the gradient into the update and leave it as it "
         "was.")
      .def("optimizer_state", [](py::object self, int k) {
        auto& n = self.cast<Network&>();
        if (k < 0 || k > 1) throw InvalidArgument("k: expected 0 (momentum / Adam m) or 1 (Adam v)");
        return param_view(self, n.state(k), n.n_params(), n.dtype(), true);
      }, py::arg("k"))
      .def_readwrite("seed", &Network::seed)
      .def_property("optimizer_steps", [](const Network& n) { return n.optimizer_steps; },
                    [](Network& n, std::int64_t v) {
                      check_range("optimizer_steps", v, 0, kMaxCounter);
                      Guard g(n);
                      n.optimizer_steps = v;
                    })
      .def_property("noise_steps", [](const Network& n) { return n.noise_steps; },
                    [](Network& n, std::int64_t v) {
                      check_range("noise_steps", v, 0, kMaxCounter);
                      Guard g(n);
                      n.noise_steps = v;
                    })
      .def_property("epochs", [](const Network& n) { return n.epochs; },
                    [](Network& n, std::int64_t v) {
                      check_range("epochs", v, 0, kMaxCounter);
                      Guard g(n);
                      n.epochs = v;
                    })
      .def("set_optimizer", [](Network& n, const std::string& kind, double lr, double momentum,
                               double beta1, double beta2, double eps) {
             const OptimizerConfig o = optimizer_config(kind, lr, momentum, beta1, beta2, eps);
             Guard g(n);
             n.set_optimizer(o);
           },
           py::arg("kind"), py::arg("learning_rate"), py::arg("momentum") = 0.9,
           py::arg("beta1") = 0.9, py::arg("beta2") = 0.999, py::arg("eps") = 1e-8)
      .def("init_params", [](Network& n, std::uint64_t seed) {
        Guard g(n);
        n.init_params(seed);
      }, py::arg("seed"))
      .def("forward", [](Network& n, py::handle x, int start, int stop) {
        const int L = n.config().n_layers();
        if (stop < 0) stop += L + 1;  // -1: the output layer
        if (start < 0 || start >= L || stop <= start || stop > L)
          throw InvalidArgument("layers: expected 0 <= start < stop <= " + std::to_string(L));
        py::array xa, keep;
        const MatrixView xm = as_matrix(x, "X", n.dtype(), &xa);
        py::array out(numpy_dtype(n.dtype()), {std::max<py::ssize_t>(xm.rows, 0),
                                               static_cast<py::ssize_t>(n.config().sizes[stop])});
        const MatrixView om = as_matrix(out, "out", n.dtype(), &keep);
        Guard g(n);
        {
          py::gil_scoped_release nogil;
          n.forward(xm, start, stop, om);
        }
        return out;
      }, py::arg("X"), py::arg("start") = 0, py::arg("stop") = -1,
         "Output of layer `stop` (-1: the last) given the output of layer `start` (0: X).")
      .def("loss_and_gradient", [](Network& n, py::handle x, py::handle y) {
        return on_batch(n, x, y, &Network::loss_and_gradient);
      }, py::arg("X"), py::arg("Y"))
      .def("train_step", [](Network& n, py::handle x, py::handle y) {
        return on_batch(n, x, y, &Network::train_step);
      }, py::arg("X"), py::arg("Y"))
      .def("fit_epoch", [](Network& n, py::handle x, py::object y, std::int64_t batch_size,
                           bool shuffle, const std::string& noise, double noise_level) {
        py::array xa, ya;
        const MatrixView xm = as_matrix(x, "X", n.dtype(), &xa);
        MatrixView ym;
        if (!y.is_none()) ym = as_matrix(y, "Y", n.dtype(), &ya);
        EpochOptions o;
        o.batch_size = batch_size;
        o.shuffle = shuffle;
        o.noise = parse_noise(noise);
        o.noise_level = noise_level;
        Guard g(n);
        EpochResult r;
        {
          py::gil_scoped_release nogil;
          r = n.fit_epoch(xm, y.is_none() ? nullptr : &ym, o);
        }
        return py::make_tuple(r.mean_loss, r.steps, r.diverged);
      }, py::arg("X"), py::arg("Y") = py::none(), py::arg("batch_size") = 64,
         py::arg("shuffle") = true, py::arg("noise") = "none", py::arg("noise_level") = 0.0);

  bind_composites(m);

  py::register_exception<Busy>(m, "BusyError", PyExc_RuntimeError);
  py::register_exception<BlasMissing>(m, "BlasMissingError", PyExc_RuntimeError);
}
