// The interrupt handlers (harness/interrupt.h): a signal sets the flag that the work checks; the
// same signal delivered twice at once (as `timeout` does: to its child, then to the child's
// process group) is one interrupt; a second signal later ends the process.

#include "harness/interrupt.h"

#include <gtest/gtest.h>

#include <chrono>
#include <csignal>
#include <thread>

using namespace mixlab;

TEST(Interrupt, ASignalDeliveredTwiceAtOnceIsOneInterrupt) {
  install_interrupt_handlers();
  EXPECT_FALSE(interrupt_requested());
  std::raise(SIGINT);
  std::raise(SIGINT);  // the process group's copy: must not end the process
  EXPECT_TRUE(interrupt_requested());
  EXPECT_EQ(interrupt_signal(), SIGINT);
  EXPECT_THROW(throw_if_interrupted(), Interrupted);
  install_interrupt_handlers();  // clears the flag
  EXPECT_FALSE(interrupt_requested());
  remove_interrupt_handlers();
}

TEST(Interrupt, ASecondSignalLaterEndsTheProcessAtOnce) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        install_interrupt_handlers();
        std::raise(SIGTERM);
        std::this_thread::sleep_for(std::chrono::milliseconds(800));
        std::raise(SIGTERM);
        std::exit(0);  // not reached: the second signal ends the process
      },
      ::testing::KilledBySignal(SIGTERM), "");
}
