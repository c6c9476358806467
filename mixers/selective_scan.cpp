// The selective scan's reference path (see selective_scan.h for the equations).
//
// The recurrence is sequential in t, so the reference loops over time; every step is one fused
// multiply-add over the whole [B, E, n] state (never a loop over channels):
//   h_t = a_t ⊙ h_{t−1} + b_t,   a_t = exp(Δ_t A) [B, E, n],   b_t = Δ_t u_t B_t [B, E, n].
// a and b for all t are formed up front in time-major layout [N, B, E, n], so each step reads a
// contiguous slice; the readout <h_t, C_t> is one batched matrix-vector product over all t.
// Memory: three [N, B, E, n] tensors (a, b and the stacked states autograd needs anyway).

#include "mixers/selective_scan.h"

#include "core/implementation.h"

#ifdef MIXLAB_WITH_CUDA
#include "mixers/cuda/kernels.h"
#endif

#include <cmath>
#include <vector>

#include <algorithm>

namespace mixlab {
namespace {

torch::Tensor cast(const torch::Tensor& tensor, torch::ScalarType type) {
  return tensor.defined() ? tensor.to(type) : tensor;
}

}  // namespace

torch::Tensor selective_scan(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                             const torch::Tensor& B, const torch::Tensor& C, const torch::Tensor& D,
                             const torch::Tensor& z, const torch::Tensor& delta_bias) {
  TORCH_CHECK(u.dim() == 3 && delta.sizes() == u.sizes(), "selective_scan: u and delta must be [B, E, N]");
  TORCH_CHECK(A.dim() == 2 && A.size(0) == u.size(1), "selective_scan: A must be [E, n]");
  TORCH_CHECK(B.dim() == 3 && B.size(0) == u.size(0) && B.size(1) == A.size(1) && B.size(2) == u.size(2) &&
                  C.sizes() == B.sizes(),
              "selective_scan: B and C must be [B, n, N]");
#ifdef MIXLAB_WITH_CUDA
  if (cuda::selective_scan_supported(u, delta, A, B, C, D, z, delta_bias)) {
    record_implementation("selective_scan", Implementation::kernel);
    return cuda::selective_scan(u, delta, A, B, C, D, z, delta_bias);
  }
#endif
  record_implementation("selective_scan", Implementation::reference);
  const auto type = recurrence_type(u);
  const int64_t batch = u.size(0), channels = u.size(1), seq_len = u.size(2), d_state = A.size(1);

  auto step_size = cast(delta, type);  // Δ before the softplus: [B, E, N]
  if (delta_bias.defined()) step_size = step_size + cast(delta_bias, type).unsqueeze(-1);
  step_size = torch::softplus(step_size);
  auto input = cast(u, type);

  // Time-major operands: [N, B, E] and [N, B, n].
  auto step_tm = step_size.permute({2, 0, 1}).contiguous();
  auto input_tm = input.permute({2, 0, 1}).contiguous();
  auto B_tm = cast(B, type).permute({2, 0, 1}).contiguous();
  auto C_tm = cast(C, type).permute({2, 0, 1}).contiguous();

  auto decay = torch::exp(step_tm.unsqueeze(-1) * cast(A, type));           // a: [N, B, E, n]
  auto drive = (step_tm * input_tm).unsqueeze(-1) * B_tm.unsqueeze(2);       // b: [N, B, E, n]

  // unbind, not decay[t]: the backward of one indexing op per step would allocate a whole
  // [N, B, E, n] gradient each time (O(N²) work); unbind's backward stacks once.
  const auto decay_steps = decay.unbind(0), drive_steps = drive.unbind(0);
  std::vector<torch::Tensor> states;
  states.reserve(seq_len);
  auto h = torch::zeros({batch, channels, d_state}, input.options());
  for (int64_t t = 0; t < seq_len; ++t) {
    h = torch::addcmul(drive_steps[t], decay_steps[t], h);  // h_t = a_t ⊙ h_{t−1} + b_t
    states.push_back(h);
  }
  auto all_states = torch::stack(states, 0);                                   // [N, B, E, n]
  auto y = torch::matmul(all_states, C_tm.unsqueeze(-1)).squeeze(-1);          // [N, B, E]
  y = y.permute({1, 2, 0});                                                    // [B, E, N]
  if (D.defined()) y = y + cast(D, type).unsqueeze(-1) * input;
  if (z.defined()) y = y * torch::silu(cast(z, type));
  return y.to(u.scalar_type());
}

torch::Tensor selective_scan_step(torch::Tensor& state, const torch::Tensor& u_t,
                                  const torch::Tensor& delta_t, const torch::Tensor& A,
                                  const torch::Tensor& B_t, const torch::Tensor& C_t,
                                  const torch::Tensor& D, const torch::Tensor& z_t,
                                  const torch::Tensor& delta_bias, const torch::Tensor& delta_weight) {
#ifdef MIXLAB_WITH_CUDA
  if (cuda::selective_state_update_supported(state, u_t, delta_t, A, B_t, C_t, D, z_t, delta_bias, delta_weight)) {
    record_implementation("selective_scan_step", Implementation::kernel);
    return cuda::selective_state_update(state, u_t, delta_t, A, B_t, C_t, D, z_t, delta_bias, delta_weight);
  }
#endif
  record_implementation("selective_scan_step", Implementation::reference);
  const auto type = state.scalar_type();
  // δ W_Δᵀ: [B, R] · [R, E] where the dt projection comes with the step, else δ as given: [B, E]
  auto step_size = delta_weight.defined() ? torch::matmul(cast(delta_t, type), cast(delta_weight, type).t())
                                          : cast(delta_t, type);
  if (delta_bias.defined()) step_size = step_size + cast(delta_bias, type);
  step_size = torch::softplus(step_size);
  auto input = cast(u_t, type);
  auto decay = torch::exp(step_size.unsqueeze(-1) * cast(A, type));                    // [B, E, n]
  auto drive = (step_size * input).unsqueeze(-1) * cast(B_t, type).unsqueeze(1);       // [B, E, n]
  state = torch::addcmul(drive, decay, state);
  auto y = torch::matmul(state, cast(C_t, type).unsqueeze(-1)).squeeze(-1);            // [B, E]
  if (D.defined()) y = y + cast(D, type) * input;
  if (z_t.defined()) y = y * torch::silu(cast(z_t, type));
  return y.to(u_t.scalar_type());
}

torch::Tensor selective_scan_final_state(const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A,
                                         const torch::Tensor& B, const torch::Tensor& delta_bias,
                                         int64_t chunk_elements) {
  const auto type = recurrence_type(u);
  auto step_size = cast(delta, type);  // [B, E, N]
  if (delta_bias.defined()) step_size = step_size + cast(delta_bias, type).unsqueeze(-1);
  step_size = torch::softplus(step_size);
  const auto after = torch::flip(torch::cumsum(torch::flip(step_size, {-1}), -1), {-1}) - step_size;  // R_t
  const auto drive = step_size * cast(u, type);  // Δ_t u_t: [B, E, N]
  const auto decay_rates = cast(A, type).unsqueeze(0).unsqueeze(-1);  // [1, E, n, 1]
  const auto inputs = cast(B, type).unsqueeze(1);                     // [B, 1, n, N]
  const int64_t batch = u.size(0), E = u.size(1), n = A.size(1), N = u.size(2);
  const int64_t chunk = std::max<int64_t>(1, chunk_elements / std::max<int64_t>(1, batch * E * n));
  auto state = torch::zeros({batch, E, n}, u.options().dtype(type));
  for (int64_t t0 = 0; t0 < N; t0 += chunk) {
    const int64_t T = std::min(chunk, N - t0);
    auto decay = torch::exp(decay_rates * after.narrow(-1, t0, T).unsqueeze(2));  // [B, E, n, T]
    state += (decay * drive.narrow(-1, t0, T).unsqueeze(2) * inputs.narrow(-1, t0, T)).sum(-1);
  }
  return state;
}

std::pair<torch::Tensor, torch::Tensor> selective_scan_with_final_state(
    const torch::Tensor& u, const torch::Tensor& delta, const torch::Tensor& A, const torch::Tensor& B,
    const torch::Tensor& C, const torch::Tensor& D, const torch::Tensor& z, const torch::Tensor& delta_bias) {
#ifdef MIXLAB_WITH_CUDA
  const bool wants_grad = torch::GradMode::is_enabled() &&
                          (u.requires_grad() || delta.requires_grad() || A.requires_grad() || B.requires_grad() ||
                           C.requires_grad() || (D.defined() && D.requires_grad()) ||
                           (z.defined() && z.requires_grad()) || (delta_bias.defined() && delta_bias.requires_grad()));
  if (!wants_grad && cuda::selective_scan_supported(u, delta, A, B, C, D, z, delta_bias)) {
    record_implementation("selective_scan", Implementation::kernel);
    return cuda::selective_scan_with_final_state(u, delta, A, B, C, D, z, delta_bias);
  }
#endif
  auto out = selective_scan(u, delta, A, B, C, D, z, delta_bias);
  return {out, selective_scan_final_state(u, delta, A, B, delta_bias)};
}

torch::Tensor inverse_softplus(const torch::Tensor& y) { return y + torch::log(-torch::expm1(-y)); }

torch::Tensor sample_dt_bias(int64_t count, double dt_min, double dt_max, double floor) {
  const double log_min = std::log(dt_min), log_max = std::log(dt_max);
  auto dt = torch::exp(torch::rand({count}, torch::kDouble) * (log_max - log_min) + log_min);
  return inverse_softplus(dt.clamp_min(floor)).to(torch::kFloat);
}

}  // namespace mixlab
