#pragma once
// Whether the sm90 kernels can run here: a compute-capability 9.x GPU, and this build compiled
// them for sm_90a (wgmma exists only there; a build for other architectures compiles them to a
// trap).  The launchers check it and throw instead of trapping.

namespace mixlab::cuda::sm90 {

bool available();

}  // namespace mixlab::cuda::sm90
