// The composite models' configurations: their checks and the layouts of
// their two networks. Apart from core/composite.cpp so that the CUDA engine
// (csrc/cuda/composite_cuda.cu) builds the very same networks with the very
// same messages.
#include <string>
#include <vector>

#include "core/composite.hpp"
#include "core/errors.hpp"
#include "core/limits.hpp"

namespace fusedae {

namespace {

void check_widths(const std::vector<std::int64_t>& widths, const char* name) {
  for (auto w : widths)
    if (w < 1 || w > kMaxDim)
      throw InvalidArgument(std::string(name) + ": every width must be in [1, 2^31), got " +
                            std::to_string(w));
}

// A width of a layer the model builds from two of its arguments (e.g. the
// encoder's input D + C): the sum must be a valid width too.
void check_sum(const char* name, std::int64_t a, std::int64_t b) {
  if (a + b > kMaxDim)  // a, b < 2^31 here: no overflow
    throw InvalidArgument(std::string(name) + ": " + std::to_string(a) + " + " +
                          std::to_string(b) + " is wider than a layer may be (2^31-1)");
}

bool elementwise(Activation a) { return a != Activation::Softmax; }

}  // namespace

// ---------------------------------------------------------------- the VAE

void VaeConfig::validate() const {
  check_range("n_features", n_features, 1, kMaxDim);
  // The encoder's output is [mu | log sigma^2], 2Z wide.
  check_range("n_latent", n_latent, 1, kMaxDim / 2);
  check_range("n_conditions", n_conditions, 0, kMaxDim);
  check_sum("n_features, n_conditions", n_features, n_conditions);
  check_sum("n_latent, n_conditions", n_latent, n_conditions);
  check_widths(hidden, "hidden");
  if (!elementwise(activation) || !elementwise(output_activation))
    throw InvalidArgument("activation: 'softmax' is not available in a VAE");
  if (loss != Loss::SquaredError && loss != Loss::BinaryCrossEntropy)
    throw InvalidArgument("loss: expected 'binary_cross_entropy' or 'squared_error'");
}

NetworkConfig VaeConfig::encoder() const {
  NetworkConfig c;
  c.sizes.push_back(n_features + n_conditions);
  for (auto h : hidden) c.sizes.push_back(h);
  c.sizes.push_back(2 * n_latent);
  c.activations.assign(hidden.size(), activation);
  c.activations.push_back(Activation::Identity);
  c.dtype = dtype;
  c.weight_decay = weight_decay;
  return c;
}

NetworkConfig VaeConfig::decoder() const {
  NetworkConfig c;
  c.sizes.push_back(n_latent + n_conditions);
  for (auto it = hidden.rbegin(); it != hidden.rend(); ++it) c.sizes.push_back(*it);
  c.sizes.push_back(n_features);
  c.activations.assign(hidden.size(), activation);
  c.activations.push_back(output_activation);
  c.loss = loss;
  c.dtype = dtype;
  c.weight_decay = weight_decay;
  return c;
}

// ---------------------------------------------------------------- the GAN

void GanConfig::validate() const {
  check_range("n_latent", n_latent, 1, kMaxDim);
  check_range("n_features", n_features, 1, kMaxDim);
  check_widths(g_hidden, "g_hidden");
  check_widths(d_hidden, "d_hidden");
  if (!elementwise(g_activation) || !elementwise(g_output_activation) ||
      !elementwise(d_activation))
    throw InvalidArgument("activation: 'softmax' is not available in a GAN");
}

NetworkConfig GanConfig::generator() const {
  NetworkConfig c;
  c.sizes.push_back(n_latent);
  for (auto h : g_hidden) c.sizes.push_back(h);
  c.sizes.push_back(n_features);
  c.activations.assign(g_hidden.size(), g_activation);
  c.activations.push_back(g_output_activation);
  c.dtype = dtype;
  c.weight_decay = weight_decay;
  return c;
}

NetworkConfig GanConfig::discriminator() const {
  NetworkConfig c;
  c.sizes.push_back(n_features);
  for (auto h : d_hidden) c.sizes.push_back(h);
  c.sizes.push_back(1);
  c.activations.assign(d_hidden.size(), d_activation);
  c.activations.push_back(Activation::Sigmoid);
  c.loss = Loss::BinaryCrossEntropy;
  c.dtype = dtype;
  c.weight_decay = weight_decay;
  return c;
}

}  // namespace fusedae
