// nsa against a float64 per-query loop written from NSA §3.3: compress each complete block with φ,
// softmax over the complete blocks, score selection blocks by the overlapping compression blocks,
// pick the forced (current, previous, first) and then the best-scoring blocks, attend the window,
// and mix the three branches with the sigmoid gates.

#include "attention/rope.h"
#include "tests/zoo_helpers.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace mixlab {
namespace MIXLAB_UNITY_ID {
using namespace zoo_test;

struct NsaConfig { int64_t l, delta, lp, n, w; };

// softmax_j(logits) · values[j]; zero vector when there is nothing to attend.
torch::Tensor attend(const std::vector<double>& logits, const std::vector<torch::Tensor>& values, int64_t dh) {
  auto out = torch::zeros({dh}, torch::kFloat64);
  if (logits.empty()) return out;
  double top = *std::max_element(logits.begin(), logits.end()), total = 0;
  std::vector<double> e;
  for (double l : logits) total += e.emplace_back(std::exp(l - top));
  for (size_t j = 0; j < e.size(); ++j) out += e[j] / total * values[j];
  return out;
}

torch::Tensor reference(const TokenMixerPtr& m, const torch::Tensor& u, int64_t heads, const NsaConfig& c) {
  const int64_t batch = u.size(0), n = u.size(1), d = u.size(2), dh = d / heads;
  auto [cos, sin] = rope_tables(torch::arange(n, torch::kLong), dh, 1e4, u.options());
  auto heads_of = [&](const std::string& name, bool rotate) {
    auto t = torch::matmul(u, weight(m, name).t()).view({batch, n, heads, dh}).transpose(1, 2);
    return rotate ? apply_rope(t, cos, sin) : t;
  };
  auto q = heads_of("q_proj.weight", true);
  auto kc = heads_of("k_cmp.weight", true), vc = heads_of("v_cmp.weight", false);
  auto ks = heads_of("k_slc.weight", true), vs = heads_of("v_slc.weight", false);
  auto kw = heads_of("k_proj.weight", true), vw = heads_of("v_proj.weight", false);
  auto gates = torch::sigmoid(torch::matmul(u, weight(m, "gate.weight").t()) + weight(m, "gate.bias"));  // [B, N, 3H]
  auto phi = [&](const std::string& which, const torch::Tensor& raw, int64_t i, const torch::Tensor& pe) {
    std::vector<torch::Tensor> parts;
    for (int64_t r = 0; r < c.l; ++r) parts.push_back(raw[i * c.delta + r] + pe[r]);
    return torch::mv(weight(m, which + ".weight"), torch::cat(parts)) + weight(m, which + ".bias");
  };
  const double scale = 1.0 / std::sqrt(double(dh));
  auto o = torch::zeros({batch, heads, n, dh}, torch::kFloat64);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      std::vector<torch::Tensor> ck, cv;
      for (int64_t i = 0; i * c.delta + c.l <= n; ++i) {
        ck.push_back(phi("phi_k", kc[b][h], i, weight(m, "pe_k")));
        cv.push_back(phi("phi_v", vc[b][h], i, weight(m, "pe_v")));
      }
      for (int64_t t = 0; t < n; ++t) {
        // Compression branch over the complete blocks.
        std::vector<double> logits;
        std::vector<torch::Tensor> values;
        for (size_t i = 0; i < ck.size() && int64_t(i) * c.delta + c.l - 1 <= t; ++i) {
          logits.push_back(torch::dot(q[b][h][t], ck[i]).item<double>() * scale);
          values.push_back(cv[i]);
        }
        auto o_cmp = attend(logits, values, dh);
        std::vector<double> p(logits.size());
        if (!logits.empty()) {
          double top = *std::max_element(logits.begin(), logits.end()), total = 0;
          for (size_t i = 0; i < p.size(); ++i) total += (p[i] = std::exp(logits[i] - top));
          for (double& x : p) x /= total;
        }
        // Selection: importance per block, forced blocks first, then score, ties to the later block.
        const int64_t current = t / c.lp;
        std::vector<int64_t> blocks(current + 1);
        std::iota(blocks.begin(), blocks.end(), 0);
        auto priority = [&](int64_t j) {
          if (j == 0 || j == current || j == current - 1) return std::numeric_limits<double>::infinity();
          double score = 0;
          for (size_t i = 0; i < p.size(); ++i)
            if (int64_t(i) * c.delta < (j + 1) * c.lp && int64_t(i) * c.delta + c.l > j * c.lp) score += p[i];
          return score;
        };
        std::stable_sort(blocks.begin(), blocks.end(), [&](int64_t a, int64_t z) {
          const double pa = priority(a), pz = priority(z);
          return pa != pz ? pa > pz : a > z;
        });
        blocks.resize(std::min<size_t>(blocks.size(), c.n));
        std::vector<double> sl;
        std::vector<torch::Tensor> sv;
        for (int64_t j : blocks)
          for (int64_t s = j * c.lp; s < (j + 1) * c.lp && s <= t; ++s) {
            sl.push_back(torch::dot(q[b][h][t], ks[b][h][s]).item<double>() * scale);
            sv.push_back(vs[b][h][s]);
          }
        auto o_slc = attend(sl, sv, dh);
        std::vector<double> wl;
        std::vector<torch::Tensor> wv;
        for (int64_t s = std::max<int64_t>(0, t - c.w + 1); s <= t; ++s) {
          wl.push_back(torch::dot(q[b][h][t], kw[b][h][s]).item<double>() * scale);
          wv.push_back(vw[b][h][s]);
        }
        auto o_win = attend(wl, wv, dh);
        o[b][h][t] = gates[b][t][h] * o_cmp + gates[b][t][heads + h] * o_slc + gates[b][t][2 * heads + h] * o_win;
      }
    }
  return torch::matmul(o.transpose(1, 2).reshape({batch, n, d}), weight(m, "o_proj.weight").t());
}

TEST(NativeSparseAttention, MatchesPerQueryReferenceAndStep) {
  auto u = random_input(2, 41, 16, 11);
  for (const NsaConfig& c : std::vector<NsaConfig>{{4, 2, 4, 4, 5}, {8, 4, 4, 5, 3}, {4, 4, 8, 3, 8}, {6, 3, 3, 6, 1}, {8, 8, 8, 1, 50}}) {
    auto m = make_f64("nsa", tiny_context(16, 2),
                      {{"cmp_block", c.l}, {"cmp_stride", c.delta}, {"select_block", c.lp}, {"select_count", c.n}, {"window", c.w}});
    auto expected = reference(m, u, 2, c);
    const std::string label = "l=" + std::to_string(c.l) + " δ=" + std::to_string(c.delta) + " l'=" +
                              std::to_string(c.lp) + " n=" + std::to_string(c.n) + " w=" + std::to_string(c.w);
    EXPECT_LT(max_abs_diff(m->forward(u), expected), 1e-12) << label;
    auto state = m->initial_state(2, u.options());
    std::vector<torch::Tensor> outputs;
    for (int64_t t = 0; t < u.size(1); ++t) outputs.push_back(m->step(u.select(1, t), state));
    EXPECT_LT(max_abs_diff(torch::stack(outputs, 1), expected), 1e-12) << "step, " << label;
    EXPECT_DOUBLE_EQ(static_cast<double>(state.bytes()), m->cost(CostShape{2, 41, 8}).state_bytes) << label;
  }
}

TEST(NativeSparseAttention, StrideMustDivideTheCompressionBlock) {
  EXPECT_THROW(Registry::global().create("nsa", tiny_context(16, 2), {{"cmp_block", 6}, {"cmp_stride", 4}}), RegistryError);
}

}  // namespace
}  // namespace mixlab
