// fusedae._engine_cuda.VAE and .GAN: the composite models on CUDA
// (cuda/composite_cuda.hpp) for Python, with the CPU classes' constructor
// arguments (bindings/composites.cpp) plus `device_id`, and their methods
// taking raw device addresses (ints: CuPy's `a.data.ptr`), the row count and
// the caller's stream as an int, like _engine_cuda.Network's ops. Their
// networks are reachable as `encoder`/`decoder` and
// `generator`/`discriminator` (_engine_cuda.Network objects owned by the
// model, for the parameters, optimizer state and counters). Every op
// releases the GIL and holds the model's lock and both networks' (BusyError
// for a second thread, as on the CPU).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bindings/convert.hpp"
#include "core/composite.hpp"
#include "core/limits.hpp"
#include "cuda/composite_cuda.hpp"

namespace py = pybind11;
using namespace fusedae;
using namespace fusedae::bindings;
using fusedae::cuda::CudaComposite;
using fusedae::cuda::CudaGan;
using fusedae::cuda::CudaNetwork;
using fusedae::cuda::CudaVae;

namespace {

cudaStream_t as_stream(std::uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

py::tuple losses_tuple(const VaeLosses& l) {
  return py::make_tuple(l.total, l.recon, l.kl, l.decay);
}

// The model's lock and both networks': a call on the model excludes calls on
// either network (and the other way round) from other threads.
struct Locks {
  Guard model, a, b;
  Locks(CudaComposite& m, CudaNetwork& x, CudaNetwork& y)
      : model(m.mutex()), a(x.mutex()), b(y.mutex()) {}
};

template <class M>
void counters(py::class_<M>& c) {
  c.def_property("seed", [](const M& v) { return v.seed; },
                 [](M& v, std::uint64_t s) {
                   Guard g(v.mutex());
                   v.seed = s;
                 })
      .def_property("latent_steps", [](const M& v) { return v.latent_steps; },
                    [](M& v, std::int64_t n) {
                      check_range("latent_steps", n, 0, kMaxCounter);
                      Guard g(v.mutex());
                      v.latent_steps = n;
                    })
      .def_property("epochs", [](const M& v) { return v.epochs; },
                    [](M& v, std::int64_t n) {
                      check_range("epochs", n, 0, kMaxCounter);
                      Guard g(v.mutex());
                      v.epochs = n;
                    })
      .def_property_readonly("device_id", [](const M& v) { return v.device_id(); })
      .def_property_readonly("dtype", [](const M& v) { return dtype_name(v.dtype()); });
}

}  // namespace

void register_composites(py::module_& m) {
  py::class_<CudaVae> vae(m, "VAE",
                          "The VAE (n_conditions > 0: the conditional VAE) on a CUDA GPU: "
                          "fusedae._engine.VAE's model and semantics on device memory.");
  vae.def(py::init([](std::int64_t n_features, std::int64_t n_latent,
                      std::vector<std::int64_t> hidden, const std::string& activation,
                      const std::string& output_activation, const std::string& loss,
                      const std::string& dtype, double weight_decay, std::int64_t n_conditions,
                      int device_id) {
            VaeConfig c;
            c.n_features = n_features;
            c.n_latent = n_latent;
            c.hidden = std::move(hidden);
            c.activation = parse_activation(activation);
            c.output_activation = parse_activation(output_activation);
            c.loss = parse_loss(loss);
            c.dtype = parse_dtype(dtype);
            c.weight_decay = weight_decay;
            c.n_conditions = n_conditions;
            py::gil_scoped_release nogil;  // validated first, then the GPU
            return std::make_unique<CudaVae>(c, device_id);
          }),
          py::arg("n_features"), py::arg("n_latent"), py::arg("hidden"),
          py::arg("activation") = "relu", py::arg("output_activation") = "sigmoid",
          py::arg("loss") = "binary_cross_entropy", py::arg("dtype") = "float32",
          py::arg("weight_decay") = 0.0, py::arg("n_conditions") = 0, py::arg("device_id") = 0)
      .def_property_readonly("encoder", [](CudaVae& v) -> CudaNetwork& { return v.encoder(); },
                             py::return_value_policy::reference_internal)
      .def_property_readonly("decoder", [](CudaVae& v) -> CudaNetwork& { return v.decoder(); },
                             py::return_value_policy::reference_internal)
      .def_property_readonly("n_features", [](const CudaVae& v) { return v.config().n_features; })
      .def_property_readonly("n_latent", [](const CudaVae& v) { return v.config().n_latent; })
      .def_property_readonly("n_conditions",
                             [](const CudaVae& v) { return v.config().n_conditions; });
  counters(vae);
  vae.def("init_params", [](CudaVae& v, std::uint64_t seed) {
        Locks l(v, v.encoder(), v.decoder());
        py::gil_scoped_release nogil;
        v.init_params(seed);
      }, py::arg("seed"),
      "Encoder from Philox(seed), decoder from Philox(seed + 1) (the CPU's values); the "
      "counters reset.")
      .def("set_optimizer", [](CudaVae& v, const std::string& kind, double lr, double momentum,
                               double beta1, double beta2, double eps) {
        const OptimizerConfig o = optimizer_config(kind, lr, momentum, beta1, beta2, eps);
        Locks l(v, v.encoder(), v.decoder());
        py::gil_scoped_release nogil;
        v.set_optimizer(o);
      }, py::arg("kind"), py::arg("learning_rate"), py::arg("momentum") = 0.9,
         py::arg("beta1") = 0.9, py::arg("beta2") = 0.999, py::arg("eps") = 1e-8)
      .def("loss_and_gradient", [](CudaVae& v, std::uintptr_t x, std::uintptr_t y,
                                   std::uintptr_t eps, std::int64_t rows, std::uintptr_t stream) {
        Locks l(v, v.encoder(), v.decoder());
        VaeLosses r;
        {
          py::gil_scoped_release nogil;
          r = v.loss_and_gradient(x, y, eps, rows, as_stream(stream));
        }
        return losses_tuple(r);
      }, py::arg("x_ptr"), py::arg("y_ptr"), py::arg("eps_ptr"), py::arg("rows"),
         py::arg("stream") = 0,
         "(total, recon, kl, decay) at the given ε (rows × n_latent at eps_ptr); gradients "
         "(with λW) in each network's grads. y_ptr 0: no conditions.")
      .def("train_step", [](CudaVae& v, std::uintptr_t x, std::uintptr_t y, std::int64_t rows,
                            std::uintptr_t stream) {
        Locks l(v, v.encoder(), v.decoder());
        VaeLosses r;
        {
          py::gil_scoped_release nogil;
          r = v.train_step(x, y, rows, as_stream(stream));
        }
        return losses_tuple(r);
      }, py::arg("x_ptr"), py::arg("y_ptr"), py::arg("rows"), py::arg("stream") = 0,
         "One optimizer step of both networks, ε from stream (latent, latent_steps); returns "
         "(total, recon, kl, decay). A non-finite loss leaves both networks untouched.")
      .def("fit_epoch", [](CudaVae& v, std::uintptr_t x, std::uintptr_t y, std::int64_t rows,
                           std::int64_t batch_size, bool shuffle, std::uintptr_t stream) {
        Locks l(v, v.encoder(), v.decoder());
        VaeEpoch r;
        {
          py::gil_scoped_release nogil;
          r = v.fit_epoch(x, y, rows, batch_size, shuffle, as_stream(stream));
        }
        return py::make_tuple(losses_tuple(r.mean), r.steps, r.diverged);
      }, py::arg("x_ptr"), py::arg("y_ptr"), py::arg("rows"), py::arg("batch_size") = 64,
         py::arg("shuffle") = true, py::arg("stream") = 0,
         "One epoch on device data; returns ((total, recon, kl, decay) means, steps, diverged).");

  py::class_<CudaGan> gan(m, "GAN",
                          "The GAN on a CUDA GPU: fusedae._engine.GAN's model and semantics on "
                          "device memory.");
  gan.def(py::init([](std::int64_t n_latent, std::int64_t n_features,
                      std::vector<std::int64_t> g_hidden, std::vector<std::int64_t> d_hidden,
                      const std::string& g_activation, const std::string& g_output_activation,
                      const std::string& d_activation, const std::string& dtype,
                      double weight_decay, bool minimax, int device_id) {
            GanConfig c;
            c.n_latent = n_latent;
            c.n_features = n_features;
            c.g_hidden = std::move(g_hidden);
            c.d_hidden = std::move(d_hidden);
            c.g_activation = parse_activation(g_activation);
            c.g_output_activation = parse_activation(g_output_activation);
            c.d_activation = parse_activation(d_activation);
            c.dtype = parse_dtype(dtype);
            c.weight_decay = weight_decay;
            c.minimax = minimax;
            py::gil_scoped_release nogil;
            return std::make_unique<CudaGan>(c, device_id);
          }),
          py::arg("n_latent"), py::arg("n_features"), py::arg("g_hidden"), py::arg("d_hidden"),
          py::arg("g_activation") = "relu", py::arg("g_output_activation") = "sigmoid",
          py::arg("d_activation") = "leaky_relu", py::arg("dtype") = "float32",
          py::arg("weight_decay") = 0.0, py::arg("minimax") = false, py::arg("device_id") = 0)
      .def_property_readonly("generator", [](CudaGan& g) -> CudaNetwork& { return g.generator(); },
                             py::return_value_policy::reference_internal)
      .def_property_readonly("discriminator",
                             [](CudaGan& g) -> CudaNetwork& { return g.discriminator(); },
                             py::return_value_policy::reference_internal)
      .def_property_readonly("n_latent", [](const CudaGan& g) { return g.config().n_latent; })
      .def_property_readonly("n_features", [](const CudaGan& g) { return g.config().n_features; })
      .def_property_readonly("minimax", [](const CudaGan& g) { return g.config().minimax; });
  counters(gan);
  gan.def("init_params", [](CudaGan& g, std::uint64_t seed) {
        Locks l(g, g.generator(), g.discriminator());
        py::gil_scoped_release nogil;
        g.init_params(seed);
      }, py::arg("seed"),
      "Generator from Philox(seed), discriminator from Philox(seed + 1); the counters reset.")
      .def("set_optimizers", [](CudaGan& g, const std::string& kind, double g_lr, double d_lr,
                                double momentum, double beta1, double beta2, double eps) {
        const OptimizerConfig go = optimizer_config(kind, g_lr, momentum, beta1, beta2, eps);
        const OptimizerConfig dop = optimizer_config(kind, d_lr, momentum, beta1, beta2, eps);
        Locks l(g, g.generator(), g.discriminator());
        py::gil_scoped_release nogil;
        g.set_optimizers(go, dop);
      }, py::arg("kind"), py::arg("g_learning_rate"), py::arg("d_learning_rate"),
         py::arg("momentum") = 0.9, py::arg("beta1") = 0.5, py::arg("beta2") = 0.999,
         py::arg("eps") = 1e-8)
      .def("discriminator_step", [](CudaGan& g, std::uintptr_t x, std::int64_t rows,
                                    std::uintptr_t stream) {
        Locks l(g, g.generator(), g.discriminator());
        py::gil_scoped_release nogil;
        return g.discriminator_step(x, rows, as_stream(stream));
      }, py::arg("x_ptr"), py::arg("rows"), py::arg("stream") = 0,
         "D's step on `rows` real rows at x_ptr against as many fresh fakes; its loss.")
      .def("generator_step", [](CudaGan& g, std::int64_t rows, std::uintptr_t stream) {
        Locks l(g, g.generator(), g.discriminator());
        py::gil_scoped_release nogil;
        return g.generator_step(rows, as_stream(stream));
      }, py::arg("batch_size"), py::arg("stream") = 0,
         "G's step on `batch_size` fresh latents against the frozen D; its loss.")
      .def("generator_loss_and_gradient", [](CudaGan& g, std::uintptr_t z, std::int64_t rows,
                                             std::uintptr_t stream) {
        Locks l(g, g.generator(), g.discriminator());
        py::gil_scoped_release nogil;
        return g.generator_loss_and_gradient(z, rows, as_stream(stream));
      }, py::arg("z_ptr"), py::arg("rows"), py::arg("stream") = 0,
         "G's loss at the latents at z_ptr (rows × n_latent) and its gradient (with λW) in the "
         "generator's grads; D is not touched.")
      .def("fit_epoch", [](CudaGan& g, std::uintptr_t x, std::int64_t rows,
                           std::int64_t batch_size, int d_steps, bool train_d, bool train_g,
                           bool shuffle, std::uintptr_t stream) {
        Locks l(g, g.generator(), g.discriminator());
        GanEpoch r;
        {
          py::gil_scoped_release nogil;
          r = g.fit_epoch(x, rows, batch_size, d_steps, train_d, train_g, shuffle,
                          as_stream(stream));
        }
        return py::make_tuple(r.d_losses, r.g_losses, r.diverged);
      }, py::arg("x_ptr"), py::arg("rows"), py::arg("batch_size") = 64, py::arg("d_steps") = 1,
         py::arg("train_d") = true, py::arg("train_g") = true, py::arg("shuffle") = true,
         py::arg("stream") = 0,
         "One pass over the real rows; returns (d_losses, g_losses, diverged).");
}
