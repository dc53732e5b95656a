// Python classes of the two-network models (core/composite.hpp): VAE and GAN.
// Their networks are reachable as `encoder`/`decoder` and
// `generator`/`discriminator` (engine.Network objects owned by the model).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/convert.hpp"
#include "core/composite.hpp"
#include "core/limits.hpp"
#include "core/philox.hpp"

namespace fusedae {
namespace bindings {

namespace {

py::tuple losses_tuple(const VaeLosses& l) {
  return py::make_tuple(l.total, l.recon, l.kl, l.decay);
}

}  // namespace

void bind_composites(py::module_& m) {
  m.def("latent_normal", [](std::uint64_t seed, std::uint32_t stream, std::int64_t rows,
                            std::int64_t cols, const std::string& dtype, const std::string& isa) {
    if (rows < 0 || cols < 1) throw InvalidArgument("rows, cols: expected rows >= 0, cols >= 1");
    const DType dt = parse_dtype(dtype);
    const std::string pick = resolve_cpu_isa(isa);
    // Checked in floating point first: rows * cols must neither overflow nor
    // ask for more memory than the machine has.
    check_allocation("rows, cols",
                     std::to_string(rows) + " x " + std::to_string(cols) + " draws",
                     static_cast<double>(rows) * static_cast<double>(cols) *
                         static_cast<double>(dtype_size(dt)));
    py::array out(numpy_dtype(dt), {static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)});
    {
      py::gil_scoped_release release;
      latent_normal(pick, dt, seed, stream, rows * cols, out.mutable_data());
    }
    return out;
  }, py::arg("seed"), py::arg("stream"), py::arg("rows"), py::arg("cols"),
     py::arg("dtype") = "float32", py::arg("isa") = "auto",
     "Standard normal draws of stream (latent, `stream`) under `seed`, as a VAE or GAN step "
     "draws them (the kernels of instruction set `isa`).");

  m.def("philox_blocks", [](std::uint64_t seed, std::uint32_t tag, std::uint32_t stream,
                            std::uint64_t first_block, const std::string& isa) {
    const std::string pick = resolve_cpu_isa(isa);
    py::array_t<std::uint32_t> out({static_cast<py::ssize_t>(kPhiloxTestBlocks), py::ssize_t(4)});
    philox_blocks(pick, seed, tag, stream, first_block, out.mutable_data());
    return out;
  }, py::arg("seed"), py::arg("tag"), py::arg("stream"), py::arg("first_block"),
     py::arg("isa") = "auto",
     "The 4 words of each of 64 Philox4x32-10 blocks from `first_block` on (counter: block "
     "low word, high word, stream, tag), as the vectorised kernels of `isa` draw them for the "
     "noise and the latent variables; for the tests.");

  py::class_<Vae>(m, "VAE")
      .def(py::init([](std::int64_t n_features, std::int64_t n_latent,
                       std::vector<std::int64_t> hidden, const std::string& activation,
                       const std::string& output_activation, const std::string& loss,
                       const std::string& dtype, double weight_decay, std::int64_t n_conditions,
                       const std::string& isa) {
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
             return new Vae(c, isa);
           }),
           py::arg("n_features"), py::arg("n_latent"), py::arg("hidden"),
           py::arg("activation") = "relu", py::arg("output_activation") = "sigmoid",
           py::arg("loss") = "binary_cross_entropy", py::arg("dtype") = "float32",
           py::arg("weight_decay") = 0.0, py::arg("n_conditions") = 0, py::arg("isa") = "auto")
      .def_property_readonly("encoder", [](Vae& v) -> Network& { return v.encoder(); },
                             py::return_value_policy::reference_internal)
      .def_property_readonly("decoder", [](Vae& v) -> Network& { return v.decoder(); },
                             py::return_value_policy::reference_internal)
      .def_readwrite("seed", &Vae::seed)
      .def_property("latent_steps", [](const Vae& v) { return v.latent_steps; },
                    [](Vae& v, std::int64_t n) {
                      check_range("latent_steps", n, 0, kMaxCounter);
                      Guard g(v.mutex());
                      v.latent_steps = n;
                    })
      .def_property("epochs", [](const Vae& v) { return v.epochs; },
                    [](Vae& v, std::int64_t n) {
                      check_range("epochs", n, 0, kMaxCounter);
                      Guard g(v.mutex());
                      v.epochs = n;
                    })
      .def("init_params", [](Vae& v, std::uint64_t seed) {
        Guard g0(v.mutex()), g1(v.encoder()), g2(v.decoder());
        v.init_params(seed);
      }, py::arg("seed"))
      .def("set_optimizer", [](Vae& v, const std::string& kind, double lr, double momentum,
                               double beta1, double beta2, double eps) {
        const OptimizerConfig o = optimizer_config(kind, lr, momentum, beta1, beta2, eps);
        Guard g0(v.mutex()), g1(v.encoder()), g2(v.decoder());
        v.set_optimizer(o);
      }, py::arg("kind"), py::arg("learning_rate"), py::arg("momentum") = 0.9,
         py::arg("beta1") = 0.9, py::arg("beta2") = 0.999, py::arg("eps") = 1e-8)
      .def("loss_and_gradient", [](Vae& v, py::handle x, py::object y, py::handle eps) {
        const DType dt = v.config().dtype;
        py::array xa, ya, ea;
        const MatrixView xm = as_matrix(x, "X", dt, &xa);
        MatrixView ym;
        if (!y.is_none()) ym = as_matrix(y, "Y", dt, &ya);
        const MatrixView em = as_matrix(eps, "eps", dt, &ea);
        Guard g0(v.mutex()), g1(v.encoder()), g2(v.decoder());
        VaeLosses l;
        {
          py::gil_scoped_release nogil;
          l = v.loss_and_gradient(xm, y.is_none() ? nullptr : &ym, em);
        }
        return losses_tuple(l);
      }, py::arg("X"), py::arg("Y"), py::arg("eps"),
         "(total, recon, kl, decay) at the given ε; gradients (with λW) in each network's grads.")
      .def("train_step", [](Vae& v, py::handle x, py::object y) {
        const DType dt = v.config().dtype;
        py::array xa, ya;
        const MatrixView xm = as_matrix(x, "X", dt, &xa);
        MatrixView ym;
        if (!y.is_none()) ym = as_matrix(y, "Y", dt, &ya);
        Guard g0(v.mutex()), g1(v.encoder()), g2(v.decoder());
        VaeLosses l;
        {
          py::gil_scoped_release nogil;
          l = v.train_step(xm, y.is_none() ? nullptr : &ym);
        }
        return losses_tuple(l);
      }, py::arg("X"), py::arg("Y") = py::none())
      .def("fit_epoch", [](Vae& v, py::handle x, py::object y, std::int64_t batch_size,
                           bool shuffle) {
        const DType dt = v.config().dtype;
        py::array xa, ya;
        const MatrixView xm = as_matrix(x, "X", dt, &xa);
        MatrixView ym;
        if (!y.is_none()) ym = as_matrix(y, "Y", dt, &ya);
        Guard g0(v.mutex()), g1(v.encoder()), g2(v.decoder());
        VaeEpoch r;
        {
          py::gil_scoped_release nogil;
          r = v.fit_epoch(xm, y.is_none() ? nullptr : &ym, batch_size, shuffle);
        }
        return py::make_tuple(losses_tuple(r.mean), r.steps, r.diverged);
      }, py::arg("X"), py::arg("Y") = py::none(), py::arg("batch_size") = 64,
         py::arg("shuffle") = true,
         "One epoch; returns ((total, recon, kl, decay) means, steps, diverged).");

  py::class_<Gan>(m, "GAN")
      .def(py::init([](std::int64_t n_latent, std::int64_t n_features,
                       std::vector<std::int64_t> g_hidden, std::vector<std::int64_t> d_hidden,
                       const std::string& g_activation, const std::string& g_output_activation,
                       const std::string& d_activation, const std::string& dtype,
                       double weight_decay, bool minimax, const std::string& isa) {
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
             return new Gan(c, isa);
           }),
           py::arg("n_latent"), py::arg("n_features"), py::arg("g_hidden"), py::arg("d_hidden"),
           py::arg("g_activation") = "relu", py::arg("g_output_activation") = "sigmoid",
           py::arg("d_activation") = "leaky_relu", py::arg("dtype") = "float32",
           py::arg("weight_decay") = 0.0, py::arg("minimax") = false, py::arg("isa") = "auto")
      .def_property_readonly("generator", [](Gan& g) -> Network& { return g.generator(); },
                             py::return_value_policy::reference_internal)
      .def_property_readonly("discriminator",
                             [](Gan& g) -> Network& { return g.discriminator(); },
                             py::return_value_policy::reference_internal)
      .def_readwrite("seed", &Gan::seed)
      .def_property("latent_steps", [](const Gan& v) { return v.latent_steps; },
                    [](Gan& v, std::int64_t n) {
                      check_range("latent_steps", n, 0, kMaxCounter);
                      Guard g(v.mutex());
                      v.latent_steps = n;
                    })
      .def_property("epochs", [](const Gan& v) { return v.epochs; },
                    [](Gan& v, std::int64_t n) {
                      check_range("epochs", n, 0, kMaxCounter);
                      Guard g(v.mutex());
                      v.epochs = n;
                    })
      .def("init_params", [](Gan& g, std::uint64_t seed) {
        Guard g0(g.mutex()), g1(g.generator()), g2(g.discriminator());
        g.init_params(seed);
      }, py::arg("seed"))
      .def("set_optimizers", [](Gan& g, const std::string& kind, double g_lr, double d_lr,
                                double momentum, double beta1, double beta2, double eps) {
        const OptimizerConfig go = optimizer_config(kind, g_lr, momentum, beta1, beta2, eps);
        const OptimizerConfig dop = optimizer_config(kind, d_lr, momentum, beta1, beta2, eps);
        Guard g0(g.mutex()), g1(g.generator()), g2(g.discriminator());
        g.set_optimizers(go, dop);
      }, py::arg("kind"), py::arg("g_learning_rate"), py::arg("d_learning_rate"),
         py::arg("momentum") = 0.9, py::arg("beta1") = 0.5, py::arg("beta2") = 0.999,
         py::arg("eps") = 1e-8)
      .def("discriminator_step", [](Gan& g, py::handle x) {
        py::array xa;
        const MatrixView xm = as_matrix(x, "X", g.config().dtype, &xa);
        Guard g0(g.mutex()), g1(g.generator()), g2(g.discriminator());
        py::gil_scoped_release nogil;
        return g.discriminator_step(xm);
      }, py::arg("X"))
      .def("generator_step", [](Gan& g, std::int64_t rows) {
        Guard g0(g.mutex()), g1(g.generator()), g2(g.discriminator());
        py::gil_scoped_release nogil;
        return g.generator_step(rows);
      }, py::arg("batch_size"))
      .def("generator_loss_and_gradient", [](Gan& g, py::handle z) {
        py::array za;
        const MatrixView zm = as_matrix(z, "Z", g.config().dtype, &za);
        Guard g0(g.mutex()), g1(g.generator()), g2(g.discriminator());
        py::gil_scoped_release nogil;
        return g.generator_loss_and_gradient(zm);
      }, py::arg("Z"))
      .def("fit_epoch", [](Gan& g, py::handle x, std::int64_t batch_size, int d_steps,
                           bool train_d, bool train_g, bool shuffle) {
        py::array xa;
        const MatrixView xm = as_matrix(x, "X", g.config().dtype, &xa);
        Guard g0(g.mutex()), g1(g.generator()), g2(g.discriminator());
        GanEpoch r;
        {
          py::gil_scoped_release nogil;
          r = g.fit_epoch(xm, batch_size, d_steps, train_d, train_g, shuffle);
        }
        return py::make_tuple(r.d_losses, r.g_losses, r.diverged);
      }, py::arg("X"), py::arg("batch_size") = 64, py::arg("d_steps") = 1,
         py::arg("train_d") = true, py::arg("train_g") = true, py::arg("shuffle") = true);
}

}  // namespace bindings
}  // namespace fusedae
