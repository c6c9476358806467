#pragma once
// Counts the FLOPs of the matrix products a piece of code issues, by observing the ATen
// operators it dispatches (at::RecordFunction), independently of any mixer's cost() formula.
//
//   mm / addmm:         [m, k] x [k, n]          -> 2·m·k·n
//   bmm / baddbmm:      [b, m, k] x [b, k, n]    -> 2·b·m·k·n
//   mv / addmv, dot:    [m, k] x [k]             -> 2·m·k ;  2·k
// Composite operators (linear, matmul, einsum) are not counted themselves: they dispatch to the
// products above, which are.  Only operators run on the calling thread are seen (the forward
// pass; not autograd's backward threads).
//
//   FlopCounter counter;             // starts counting
//   auto y = mixer->forward(x);
//   double flops = counter.matmul_flops();

#include <map>
#include <string>

namespace mixlab {

class FlopCounter {
 public:
  FlopCounter();
  ~FlopCounter();
  FlopCounter(const FlopCounter&) = delete;
  FlopCounter& operator=(const FlopCounter&) = delete;

  double matmul_flops() const { return matmul_flops_; }
  // Operator name -> number of calls seen (all operators, for diagnostics).
  const std::map<std::string, int64_t>& calls() const { return calls_; }

  void record(const std::string& op, double flops);

 private:
  double matmul_flops_ = 0;
  std::map<std::string, int64_t> calls_;
  uint64_t handle_ = 0;
  FlopCounter* previous_ = nullptr;
};

}  // namespace mixlab
