// The registry's validation: unknown names, unknown parameters, wrong types and ranges fail with
// messages that name the valid choices.

#include "core/registry.h"

#include <gtest/gtest.h>

namespace mixlab {
namespace MIXLAB_UNITY_ID {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const RegistryError& e) {
    return e.what();
  }
  return "";
}

TEST(Registry, UnknownMixerListsValidNames) {
  auto message = error_of([] { Registry::global().at("no_such_mixer"); });
  EXPECT_NE(message.find("unknown mixer 'no_such_mixer'"), std::string::npos);
  EXPECT_NE(message.find("attention"), std::string::npos);
  EXPECT_NE(message.find("mlp"), std::string::npos);
}

TEST(Registry, UnknownParameterListsValidParameters) {
  auto message = error_of([] { Registry::global().resolve("mlp", {{"widht", int64_t{3}}}); });
  EXPECT_NE(message.find("unknown parameter 'widht'"), std::string::npos);
  EXPECT_NE(message.find("hidden"), std::string::npos);
}

TEST(Registry, WrongTypeAndRange) {
  EXPECT_NE(error_of([] { Registry::global().resolve("mlp", {{"hidden", std::string("wide")}}); })
                .find("must be of type int"), std::string::npos);
  EXPECT_NE(error_of([] { Registry::global().resolve("mlp", {{"hidden", int64_t{-5}}}); })
                .find("outside the valid range"), std::string::npos);
  EXPECT_NE(error_of([] { Registry::global().resolve("mlp", {{"activation", std::string("gelu")}}); })
                .find("swiglu"), std::string::npos);
  EXPECT_NE(error_of([] { Registry::global().parse("mlp", "hidden", "12x"); }).find("must be of type int"),
            std::string::npos);
}

TEST(Registry, DefaultsAndCoercion) {
  auto params = Registry::global().resolve("mlp", {{"expand", int64_t{4}}});
  EXPECT_EQ(params.integer("hidden"), 0);
  EXPECT_DOUBLE_EQ(params.real("expand"), 4.0);  // an integer is accepted for a real
  EXPECT_EQ(std::get<int64_t>(Registry::global().parse("mlp", "hidden", "96")), 96);
}

}  // namespace
}  // namespace mixlab
