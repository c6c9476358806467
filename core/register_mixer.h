#pragma once
// One registration per mixer: at namespace scope in the mixer's .cpp,
//
//   const RegisterMixer<SlidingWindowAttention> kSlidingWindowAttentionRegistration(
//       "swa", "sliding-window causal attention ...",
//       {ParamSpec::integer("window", 1024, "...", 1), rope_theta_param()},
//       validate_heads);
//
// (named after the class: a unity build compiles several mixers in one translation unit, so each
// file's names at namespace scope must be its own),
// adds the entry to the registry when the program starts, with the factory every entry shares:
// the mixer built from (context, params).  Nothing else needs to change for a new mixer to appear
// in `mixlab list`, in specs and in the registry-wide tests.

#include "core/registry.h"

#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace mixlab {

// The shared factory: Mixer(context, params), or Mixer() for a mixer that needs neither
// (identity).
template <class Mixer>
TokenMixerPtr construct_mixer(const MixerContext& context, const MixerParams& params) {
  if constexpr (std::is_constructible_v<Mixer, const MixerContext&, const MixerParams&>)
    return std::make_shared<Mixer>(context, params);
  else
    return std::make_shared<Mixer>();
}

template <class Mixer>
struct RegisterMixer {
  // validate: extra checks across parameters and the context (MixerEntry::validate); kind:
  // Channel for a channel mixer, Block for a whole block.
  RegisterMixer(std::string name, std::string description, std::vector<ParamSpec> params = {},
                decltype(MixerEntry::validate) validate = nullptr, MixerKind kind = MixerKind::Sequence) {
    Registry::global().add(MixerEntry{std::move(name), std::move(description), kind, std::move(params),
                                      &construct_mixer<Mixer>, std::move(validate)});
  }
};

}  // namespace mixlab
