// Models made of two engine networks: the variational autoencoder of the
// chapter's §4 (and its conditional form) and the GAN of §5. Each step is one
// call: the networks' fused halves (forward_keep / backward_from /
// step_with_input_grad) with the small elementwise parts between them
// (reparameterisation, Gaussian KL, adversarial deltas) done here, in one pass
// each. The arithmetic of those parts is O(batch × latent), negligible next to
// the GEMMs, so it is compiled once (no per-instruction-set variants).
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/network.hpp"

namespace fusedae {

struct VaeConfig {
  std::int64_t n_features = 0;
  std::int64_t n_latent = 0;
  std::int64_t n_conditions = 0;            // C > 0: a conditional VAE
  std::vector<std::int64_t> hidden;         // encoder widths; the decoder mirrors them
  Activation activation = Activation::Relu;
  Activation output_activation = Activation::Sigmoid;
  Loss loss = Loss::BinaryCrossEntropy;     // reconstruction: BCE or squared error
  DType dtype = DType::Float32;
  double weight_decay = 0.0;
  void validate() const;
  // (D + C) → hidden → 2Z (identity): columns [0, Z) are μ, [Z, 2Z) log σ².
  NetworkConfig encoder() const;
  // (Z + C) → reversed hidden → D (output activation, the reconstruction loss).
  NetworkConfig decoder() const;
};

struct VaeLosses {
  double total = 0.0;   // recon + kl + decay
  double recon = 0.0;   // mean over rows of the reconstruction loss (summed over features)
  double kl = 0.0;      // mean over rows of KL(N(μ, σ²) ‖ N(0, I))
  double decay = 0.0;   // (λ/2)·Σ‖W‖² of both networks
};

struct VaeEpoch {
  VaeLosses mean;       // row-weighted means over the epoch's steps
  std::int64_t steps = 0;
  bool diverged = false;
};

class Vae {
 public:
  Vae(const VaeConfig& cfg, const std::string& isa);
  const VaeConfig& config() const { return cfg_; }
  Network& encoder() { return *enc_; }
  Network& decoder() { return *dec_; }
  std::mutex& mutex() { return mutex_; }

  std::uint64_t seed = 0;
  std::int64_t latent_steps = 0;   // ε stream: one per training step
  std::int64_t epochs = 0;         // shuffle stream

  // Encoder from Philox(seed), decoder from Philox(seed + 1); counters reset.
  void init_params(std::uint64_t seed);
  void set_optimizer(const OptimizerConfig& opt);  // both networks
  // Full batch at the given ε: losses, and the gradients (with λW) left in
  // both networks' grads().
  VaeLosses loss_and_gradient(const MatrixView& x, const MatrixView* y, const MatrixView& eps);
  // One optimizer step; ε from stream (kLatent, latent_steps). A non-finite
  // loss leaves both networks untouched.
  VaeLosses train_step(const MatrixView& x, const MatrixView* y);
  VaeEpoch fit_epoch(const MatrixView& x, const MatrixView* y, std::int64_t batch_size,
                     bool shuffle);

 private:
  void check_inputs(const MatrixView& x, const MatrixView* y) const;
  template <class T>
  VaeLosses run(const T* x, const T* y, std::int64_t rows, const T* eps, bool update);
  void reserve(std::int64_t rows);

  VaeConfig cfg_;
  std::unique_ptr<Network> enc_, dec_;
  std::mutex mutex_;
  // Row buffers, grown (never inside a step) to the largest batch seen.
  std::int64_t capacity_ = 0;
  std::vector<double> storage_;     // every buffer below, 8-byte aligned
  void* enc_in_ = nullptr;          // rows × (D + C): [x | y]
  void* xb_ = nullptr;              // rows × D: gathered targets
  void* yb_ = nullptr;              // rows × C
  void* eps_ = nullptr;             // rows × Z
  void* sd_ = nullptr;              // rows × Z: σ
  void* dec_in_ = nullptr;          // rows × (Z + C): [z | y]
  void* d_dec_in_ = nullptr;        // rows × (Z + C): dJ/d[z | y]
  void* d_enc_out_ = nullptr;       // rows × 2Z: dJ/d[μ | log σ²]
  std::vector<std::int64_t> perm_;
};

struct GanConfig {
  std::int64_t n_latent = 0;
  std::int64_t n_features = 0;
  std::vector<std::int64_t> g_hidden, d_hidden;
  Activation g_activation = Activation::Relu;
  Activation g_output_activation = Activation::Sigmoid;
  Activation d_activation = Activation::LeakyRelu;
  DType dtype = DType::Float32;
  double weight_decay = 0.0;
  bool minimax = false;   // generator loss: log(1 − D(G(z))) instead of −log D(G(z))
  void validate() const;
  NetworkConfig generator() const;      // Z → g_hidden → D
  NetworkConfig discriminator() const;  // D → d_hidden → 1, sigmoid + BCE
};

struct GanEpoch {
  std::vector<double> d_losses, g_losses;  // one per step, in order
  bool diverged = false;
};

class Gan {
 public:
  Gan(const GanConfig& cfg, const std::string& isa);
  const GanConfig& config() const { return cfg_; }
  Network& generator() { return *g_; }
  Network& discriminator() { return *d_; }
  std::mutex& mutex() { return mutex_; }

  std::uint64_t seed = 0;
  std::int64_t latent_steps = 0;  // z stream: one per step of either network
  std::int64_t epochs = 0;        // shuffle stream

  // Generator from Philox(seed), discriminator from Philox(seed + 1).
  void init_params(std::uint64_t seed);
  void set_optimizers(const OptimizerConfig& g, const OptimizerConfig& d);
  // The discriminator's step on real rows against as many fresh fakes:
  // BCE over the stacked [real; fake] batch with targets [1; 0].
  double discriminator_step(const MatrixView& real);
  // The generator's step on `rows` fresh latents against the frozen
  // discriminator.
  double generator_step(std::int64_t rows);
  // The generator's loss at latents z and its gradient (with λW) in the
  // generator's grads(); the discriminator is not touched.
  double generator_loss_and_gradient(const MatrixView& z);
  // One pass over the real rows in minibatches: a discriminator step per
  // minibatch (if train_d) and a generator step after every d_per_g of them
  // (every minibatch when train_d is false), if train_g.
  GanEpoch fit_epoch(const MatrixView& x, std::int64_t batch_size, int d_per_g, bool train_d,
                     bool train_g, bool shuffle);

 private:
  template <class T> double d_step(const T* real, std::int64_t rows);
  template <class T> double g_step(const T* z, std::int64_t rows, bool update);
  // Checks (naming `name`) and grows the row buffers and both networks' workspaces.
  void reserve(std::int64_t rows, const char* name);

  GanConfig cfg_;
  std::unique_ptr<Network> g_, d_;
  std::mutex mutex_;
  std::int64_t capacity_ = 0;
  std::vector<double> storage_;
  void* z_ = nullptr;        // rows × Z
  void* stacked_ = nullptr;  // 2·rows × D: [real; fake]
  void* targets_ = nullptr;  // 2·rows × 1
  void* d_fake_ = nullptr;   // rows × D: dJ/d(fake)
  std::vector<std::int64_t> perm_;
};

}  // namespace fusedae
