#pragma once
// The ring of shared-memory stages of the sm90 kernels: `Stages` slots, each one tile's worth of
// operands (a Slot: the forwards' key and value tiles, KeyValueSlot below; the backwards' query-side
// tiles, QuerySlot<D> in key_block_backward.cuh), filled by one producer warpgroup with cp.async and
// read by the consumer warpgroups' wgmma products.  Two mbarriers per slot replace the block-wide
// __syncthreads of a double buffer:
//
//   full[s]   the tile is in place.  Count kProducerThreads: each producer thread arrives once per
//             fill through cp.async.mbarrier.arrive.noinc, which fires when its copies landed.
//   empty[s]  every consumer thread is done with the slot.  Count kConsumerThreads: each consumer
//             thread arrives once per tile, after the wgmma.wait_group that completes the last
//             product reading it (or at once, after waiting for `full`, for a tile the warp's
//             warpgroup does not need: see attend_band in online_softmax.cuh and
//             key_block_backward.cuh).  Every thread, not one per warp: each thread's own generic
//             reads of the slot (the backward's lse and D) are then ordered before the refill by
//             its own release-arrive, which is what the PTX memory model and compute-sanitizer's
//             racecheck both see (one lane's arrive after a __syncwarp is correct in the model but
//             left 142,336 potential WAR hazards in racecheck's report, session 21).
//
// Tile i of the block's sequence lives in slot i mod Stages, on its fill r = i / Stages; phase r of
// full[s] completes when that fill lands (parity r & 1), phase r of empty[s] when tile i is
// released.  The producer refills slot s for tile i ≥ Stages after phase r − 1 of empty[s].  Why a
// parity (one bit) cannot alias: a consumer warp waits for full of tile i before it releases tile
// i, and the producer fills tile i + Stages only after every warp released tile i, so neither
// barrier can run a phase ahead of its waiter.

#include <cuda_bf16.h>
#include <cstdint>

#include "attention/cuda/sm90/tile_loads.cuh"
#include "attention/cuda/sm90/wgmma.cuh"

namespace mixlab::cuda::sm90 {

// A producer warpgroup rather than a warp: its copies are spread over the SM's four sub-partitions
// (one warp each).  384 threads cap the registers at 168 (a sub-partition's 16,384 over its three
// warps), as 288 would; the forwards' consumers need 165 (window) and 156 (checkpoint) without
// spilling, so no setmaxnreg hand-over there; the backwards' consumers take the producer's spare
// registers (producer_gives_registers / consumer_takes_registers below).
constexpr int kConsumerWarps = 8;  // two warpgroups: of 64 query rows (forwards), of 64 keys (backwards)
constexpr int kProducerThread0 = 32 * kConsumerWarps;    // the producer warpgroup comes after them
constexpr int kProducerThreads = 128;
constexpr int kConsumerThreads = 32 * kConsumerWarps;
constexpr int kForwardThreads = kProducerThread0 + kProducerThreads;

// Slot: a struct of 1,024-byte aligned tiles (the swizzle's atom), so that every slot is.
template <int Stages, class Slot>
struct alignas(1024) TileRing {
  static_assert(Stages >= 2, "a consumer releases tile i − 1 only after waiting for tile i");
  static_assert(sizeof(Slot) % 1024 == 0, "every slot 1,024-byte aligned");
  Slot slot[Stages];
  uint64_t full[Stages];
  uint64_t empty[Stages];
  float never_written[2];  // the target of hold_wait_below (online_softmax.cuh)
};

// The forwards' slot: Keys rows of K and of V, D bf16 each, as D / 64 swizzled [Keys x 64] column
// blocks, Keys · 128 bytes apart (wgmma.cuh; tile_loads.cuh's load_wide_tile_warpgroup).
template <int Keys, int D = 64>
struct alignas(1024) KeyValueSlot {
  unsigned char k[Keys * D * 2];  // K-major (rows = keys) for S = Q Kᵀ
  unsigned char v[Keys * D * 2];  // MN-major (rows = keys = k of P V) for O += P V
};
template <int Stages, int Keys, int D = 64>
using KeyValueStages = TileRing<Stages, KeyValueSlot<Keys, D>>;

// setmaxnreg's split (producer_gives_registers below): the default, and the rule a split obeys.
constexpr int kProducerRegisters = 40;
constexpr int kConsumerRegisters = 232;
template <int Producer, int Consumer>
constexpr bool register_split_fits = 128 * Producer + 256 * Consumer <= 65536 && Producer % 8 == 0 &&
                                     Consumer % 8 == 0 && Producer >= 24 && Consumer <= 256;
static_assert(register_split_fits<kProducerRegisters, kConsumerRegisters>, "one SM's register file");

#if MIXLAB_SM90A
__device__ __forceinline__ uint32_t shared_address(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbarrier_init(uint64_t* bar, int count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(shared_address(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbarrier_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(shared_address(bar)) : "memory");
}
// Arrives (without raising the expected count) once this thread's earlier cp.async copies landed.
__device__ __forceinline__ void mbarrier_arrive_on_copies(uint64_t* bar) {
  asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(shared_address(bar)) : "memory");
}
// Until the phase of parity `parity` has completed (acquire: its writes are visible afterwards).
__device__ __forceinline__ void mbarrier_wait(uint64_t* bar, int parity) {
  const uint32_t address = shared_address(bar);
  uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
        : "=r"(done)
        : "r"(address), "r"(parity)
        : "memory");
  } while (!done);
}

// By one thread, before a __syncthreads and any use.
template <int Stages, class Slot>
__device__ void init_stages(TileRing<Stages, Slot>& st) {
#pragma unroll
  for (int s = 0; s < Stages; ++s) {
    mbarrier_init(&st.full[s], kProducerThreads);
    mbarrier_init(&st.empty[s], kConsumerThreads);
  }
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

// The producer warpgroup: tiles 0 .. tiles − 1 into the ring, `load(i, slot, thread)` issuing the
// cp.async copies of tile i into `slot` (thread: 0 .. 127).  Waits for its copies before returning
// (no copy outlives its thread).
template <int Stages, class Slot, class Load>
__device__ void produce(TileRing<Stages, Slot>& st, int tiles, Load load) {
  const int thread = threadIdx.x - kProducerThread0;
  for (int i = 0; i < tiles; ++i) {
    const int s = i % Stages;
    if (i >= Stages) mbarrier_wait(&st.empty[s], (i / Stages - 1) & 1);  // tile i − Stages released
    load(i, st.slot[s], thread);
    mbarrier_arrive_on_copies(&st.full[s]);
  }
  cp_async_wait_all();
}

// Hands registers from the producer warpgroup to the consumers (PTX setmaxnreg, sm_90a): every warp
// of a warpgroup executes it.  At 384 threads the launch gives each 168 (65,536 / 384, rounded down
// to 8); 128 · Producer + 256 · Consumer ≤ 65,536, both multiples of 8.  The default split 40 / 232
// (the forwards at d 128, the backwards at d 64); the backwards at d 128 take 24 / 240
// (key_block_backward.cuh).
template <int Registers = kProducerRegisters>
__device__ __forceinline__ void producer_gives_registers() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(Registers));
}
template <int Registers = kConsumerRegisters>
__device__ __forceinline__ void consumer_takes_registers() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(Registers));
}

// Named barrier 1 + wg over the 128 threads of consumer warpgroup wg (0 is __syncthreads'); an
// immediate id, so that ptxas counts two barriers, not all sixteen.
__device__ __forceinline__ void warpgroup_sync(int wg) {
  if (wg == 0)
    asm volatile("bar.sync 1, 128;\n" ::: "memory");
  else
    asm volatile("bar.sync 2, 128;\n" ::: "memory");
}
// FlashAttention-3's ping-pong between the two consumer warpgroups: each issues its products only
// on its turn and passes the turn on right after issuing, so that one warpgroup's softmax runs while
// the other's products hold the tensor cores.  Named barrier 3 + wg (256 threads: the waiting
// warpgroup's bar.sync and the other's bar.arrive) is warpgroup wg's turn; warpgroup 1 hands
// warpgroup 0 the first turn.  Both warpgroups must take the same number of turns (the caller turns
// this on only where their key bands are equal); the first turn's arrival is left over at the end
// (a block's barriers start afresh).  `on` is uniform per block.
struct WarpgroupTurns {
  bool on;
  int wg;
  __device__ __forceinline__ void start() const {
    if (on && wg == 1) asm volatile("bar.arrive 3, 256;\n" ::: "memory");
  }
  __device__ __forceinline__ void wait_turn() const {
    if (!on) return;
    if (wg == 0)
      asm volatile("bar.sync 3, 256;\n" ::: "memory");
    else
      asm volatile("bar.sync 4, 256;\n" ::: "memory");
  }
  __device__ __forceinline__ void pass_turn() const {
    if (!on) return;
    if (wg == 0)
      asm volatile("bar.arrive 4, 256;\n" ::: "memory");
    else
      asm volatile("bar.arrive 3, 256;\n" ::: "memory");
  }
};

// Consumer side.  After the wait, a proxy fence: the copies are generic-proxy writes and wgmma
// reads through the async proxy.  __syncwarp: the warp converged again before .aligned wgmma.
template <int Stages, class Slot>
__device__ __forceinline__ void wait_tile(TileRing<Stages, Slot>& st, int i) {
  mbarrier_wait(&st.full[i % Stages], (i / Stages) & 1);
  fence_shared_to_async();
  __syncwarp();
}
// After the wait_group that completed the warpgroup's last product reading tile i: one arrival per
// consumer thread (release semantics: the thread's reads of the slot happen before the producer's
// refill, which waits on empty[s]).
template <int Stages, class Slot>
__device__ __forceinline__ void release_tile(TileRing<Stages, Slot>& st, int i) {
  mbarrier_arrive(&st.empty[i % Stages]);
}
#endif

}  // namespace mixlab::cuda::sm90
